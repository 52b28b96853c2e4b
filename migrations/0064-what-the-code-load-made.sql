-- What the last code load made in schemas sync and sync_private, so the deploy tells a site's own objects there from ours
-- depends: 0063-the-librarys-login-outlives-the-sync

-- The code load drops every view, function, procedure, aggregate and
-- composite type of sync and sync_private, and every trigger calling a
-- function there, then makes ours again from db/*.sql: a site's own view
-- or function made in schema sync went with every deploy, without a word
-- (hostile review). The load records here what it made; the next one
-- refuses, before it changes anything, when those schemas hold an object
-- not recorded. Objects that are there now are recorded as the code load's:
-- nothing tells them apart before a load has recorded its own.
create table sync_private.code_object (
    type text not null,
    identity text not null,
    primary key (type, identity)
);
comment on table sync_private.code_object is
    'Every object the last code load (migrations/9999-database-code.py) made in schemas sync and sync_private, and every trigger it made on a function there: the next load drops these and refuses when those schemas hold one it did not make (a site''s own view or function).';
comment on column sync_private.code_object.type is 'The object''s type as pg_identify_object names it: function, procedure, aggregate, view, composite type, trigger.';
comment on column sync_private.code_object.identity is 'The object''s identity as pg_identify_object gives it: sync.health_at(timestamp with time zone), sync.health, _900_record_insert on public.fragrances.';

insert into sync_private.code_object (type, identity)
select o.type, o.identity
from (select 'pg_catalog.pg_class'::regclass as classid, c.oid as objid
      from pg_catalog.pg_class as c
      where c.relkind in ('v', 'c')
        and c.relnamespace in (select oid from pg_catalog.pg_namespace
                               where nspname in ('sync', 'sync_private'))
      union all
      select 'pg_catalog.pg_proc'::regclass, p.oid from pg_catalog.pg_proc as p
      where p.pronamespace in (select oid from pg_catalog.pg_namespace
                               where nspname in ('sync', 'sync_private'))
      union all
      select 'pg_catalog.pg_trigger'::regclass, t.oid from pg_catalog.pg_trigger as t
      join pg_catalog.pg_proc as f on f.oid = t.tgfoid
      where not t.tgisinternal
        and f.pronamespace in (select oid from pg_catalog.pg_namespace
                               where nspname in ('sync', 'sync_private'))) as x
cross join lateral pg_catalog.pg_identify_object(x.classid, x.objid, 0) as o
on conflict do nothing;
