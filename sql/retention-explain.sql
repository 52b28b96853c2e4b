-- Benchmark: the inbox's hot queries at size, with EXPLAIN (ANALYZE, BUFFERS).
-- Run ONLY on a scratch database migrated with yoyo (it refuses a non-empty inbox):
--   createdb scratch && yoyo apply --batch --database postgresql+psycopg:///scratch migrations
--   psql -X -v ON_ERROR_STOP=1 -v rows=10000000 -d scratch -f sql/retention-explain.sql
-- 100 days of deliveries: nearly all applied or ignored, a rejected one in 2,000,
-- a discarded one in 20,000, the newest 50 pending. docs/retention-explain.md has a run.
\if :{?rows}
\else
\set rows 10000000
\endif
\timing on
do $$
begin
    if exists (select from sync.inbox) then
        raise exception 'sync.inbox is not empty: run this benchmark on a scratch database only';
    end if;
end;
$$;
-- Rows inserted directly are not processed (they wait for apply_pending): no trigger to switch off.
insert into sync.inbox (received_at, body, fragrance_id, status, attempts)
select now() - (:rows - i) * (interval '100 days' / :rows),
       convert_to('{"fragrance_id": ' || i % 5000 || ', "forbidden": true}', 'UTF8'),
       i % 5000,
       case when i > :rows - 50 then 'pending'
            when i % 20000 = 0 then 'discarded'
            when i % 2000 = 0 then 'rejected'
            when i % 10 = 0 then 'ignored'
            else 'applied' end,
       1
from generate_series(1, :rows) as i;
vacuum analyze sync.inbox;
select pg_size_pretty(pg_total_relation_size('sync.inbox')) as inbox_size,
       (select count(*) from sync.inbox) as inbox_rows;
\timing off

\echo '== pending queue (sync.apply_pending)'
begin;
explain (analyze, buffers, costs off)
select id from sync.inbox where status = 'pending' order by id limit 1000 for update skip locked;
rollback;
\echo '== quarantine listing (sync.quarantine)'
explain (analyze, buffers, costs off) select * from sync.quarantine;
\echo '== one fragrance''s latest deliveries'
explain (analyze, buffers, costs off)
select * from sync.inbox where fragrance_id = 7 order by id desc limit 20;
\echo '== newest delivery (health)'
explain (analyze, buffers, costs off) select max(received_at) from sync.inbox;
\echo '== inbox position at a time (drift snapshots)'
explain (analyze, buffers, costs off)
select id from sync.inbox where received_at <= now() - interval '3 days'
order by received_at desc limit 1;
\echo '== purge a batch of the oldest (sync.purge_applied with p_limit), rolled back'
begin;
explain (analyze, buffers, costs off)
delete from sync.inbox where id = any (array(
    select id from sync.inbox
    where received_at < now() - interval '97 days' and status in ('applied', 'ignored')
    order by received_at limit 10000));
rollback;
\echo '== purge one day (sync.purge_applied(''99 days'')), rolled back'
begin;
explain (analyze, buffers, costs off)
delete from sync.inbox
where received_at < now() - interval '99 days' and status in ('applied', 'ignored');
rollback;
