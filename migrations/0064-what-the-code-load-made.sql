-- What the last code load made in schemas sync and sync_private, so the deploy tells a site's own objects there from ours
-- depends: 0063-the-librarys-login-outlives-the-sync

-- The code load drops every view, function, procedure, aggregate and
-- composite type of sync and sync_private, and every trigger calling a
-- function there, then makes ours again from db/*.sql: a site's own view
-- or function made in schema sync went with every deploy, without a word
-- (hostile review). The load records here what it made; the next one
-- refuses, before it changes anything, when those schemas hold an object
-- not recorded. The table starts empty: the first load after this
-- migration takes what is there as its own (nothing tells a site's objects
-- apart before a load has recorded ours) and records it.
create table sync_private.code_object (
    type text not null,
    identity text not null,
    primary key (type, identity)
);
comment on table sync_private.code_object is
    'Every object the last code load (migrations/9999-database-code.py) made in schemas sync and sync_private, and every trigger it made on a function there: the next load drops these and refuses when those schemas hold one it did not make (a site''s own view or function).';
comment on column sync_private.code_object.type is 'The object''s type as pg_identify_object names it: function, procedure, aggregate, view, composite type, trigger.';
comment on column sync_private.code_object.identity is 'The object''s identity as pg_identify_object gives it: sync.health_at(timestamp with time zone), sync.health, _900_record_insert on public.fragrances.';
