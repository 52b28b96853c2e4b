-- Fill the pages again as 0004 and 0021 made them
alter table sync.finding reset (fillfactor);
alter table sync.field_version reset (fillfactor);
