-- Remove the inbox, its settings and the sync schema (must be empty of later migrations' objects by now)
drop function sync.receive(bytea, text, inet, text);
drop trigger _100_protect_receipt on sync.inbox;
drop function sync._protect_receipt();
drop type sync.receipt;
drop table sync.inbox;
drop table sync.settings;
drop schema sync;
