"""The webhook receiver: stores each CMS delivery in sync.inbox, durably, and answers."""
