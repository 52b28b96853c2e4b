-- Remove the DBA views
drop view sync.unknown_field;
drop index sync.inbox_unknown_field_idx;
drop view sync.quarantine;
