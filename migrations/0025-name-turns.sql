-- Name turns in a table nobody else can lock, instead of advisory locks any login can take
-- depends: 0022-code-by-concern 0024-room-for-updates

-- Two transactions writing one name take turns so each judges name.duplicate
-- after the other's commit. Advisory locks did this until now, but any login
-- can take any advisory lock (and read its key in pg_locks), so a reader
-- could stall every merge that writes a name. A row of this table, locked
-- FOR UPDATE, is a turn only the owner's code can take.
create table sync_private.name_turn (
    turn smallint primary key
);
insert into sync_private.name_turn (turn)
select t from generate_series(0, 1023) as t;

comment on table sync_private.name_turn is
    'One row per turn of names (1,024): a writer of a name locks the row hashtext(name) & 1023 FOR UPDATE until it commits, so two writers of one name judge name.duplicate in turn (sync_private.lock_names). A writer of many names locks the table itself. Granted to nobody.';
comment on column sync_private.name_turn.turn is
    'hashtext(name) & 1023: names that share a turn wait for each other, which is safe, only slower.';
