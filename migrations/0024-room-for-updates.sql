-- Leave room in the pages of the tables the merge updates, so an update stays on its page
-- depends: 0023-findings-keyed-by-fragrance

alter table sync.finding set (fillfactor = 70);
alter table sync.field_version set (fillfactor = 70);
