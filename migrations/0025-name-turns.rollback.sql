-- Name turns in a table nobody else can lock, instead of advisory locks any login can take
-- depends: 0022-code-by-concern 0024-room-for-updates

drop table sync_private.name_turn;
