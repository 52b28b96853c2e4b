-- The field clock keeps the position a repair's write counts at, so the purge of its inbox row does not move it
-- depends: 0071-a-repair-counts-at-its-snapshot

alter table sync.field_version add column positions jsonb not null default '{}';
comment on column sync.field_version.positions is
    'Per field, the receipt position its last writer counts at when that is not its clock value in versions: a repair''s snapshot position (sync.inbox.counts_at), kept here so that it outlives the purge of the repair''s inbox row. A field absent here counts at its clock value.';

-- The repairs' writes so far: their position was read from their inbox rows
-- (a repair already purged counted at its id, and is left so). A hand change
-- whose position equals a repair's id is the hand change's, at that position.
update sync.field_version as v
set positions = p.positions
from (select c.fragrance_id, jsonb_object_agg(x.key, i.counts_at) as positions
      from sync.field_version as c
      cross join jsonb_each_text(c.versions) as x
      join sync.inbox as i on i.id = x.value::bigint and i.counts_at is not null
      where not exists (select from sync.fragrance_history as h
                        where h.fragrance_id = c.fragrance_id and h.inbox_id is null
                          and h.inbox_position = x.value::bigint
                          and (h.operation <> 'update' or h.new_values ? x.key))
      group by c.fragrance_id) as p
where p.fragrance_id = v.fragrance_id;

comment on column sync.inbox.counts_at is
    'The receipt position this delivery counts at in the per-field order, when not its own id: a repair''s, the inbox position of the snapshot it repairs from (a delivery received after that position is newer than it, whenever it is stored or merged); a revert''s, right after everything it read of its fragrance (a delivery of it the revert did not see is newer). Null: its id. Never changes (FS010).';
