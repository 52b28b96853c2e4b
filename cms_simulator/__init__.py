"""A stand-in for the third-party CMS: ticks, a webhook listener, and optional chaos."""
