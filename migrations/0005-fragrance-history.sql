-- Keep the history of every change to public.fragrances, by deliveries and by hand
-- depends: 0004-ordered-merge

create table sync.fragrance_history (
    id bigint generated always as identity primary key,
    fragrance_id integer not null,
    operation text not null check (operation in ('insert', 'update', 'delete')),
    old_values jsonb,
    new_values jsonb,
    inbox_id bigint,
    db_user text not null default session_user,
    changed_at timestamptz not null default clock_timestamp(),
    transaction_id bigint not null default txid_current()
);
comment on table sync.fragrance_history is
    'Every change to public.fragrances, whoever made it: the columns that changed with old and new values. No foreign key to sync.inbox, so history outlives any inbox purge.';
comment on column sync.fragrance_history.old_values is
    'Changed columns before the change (the whole row for a delete); null for an insert.';
comment on column sync.fragrance_history.new_values is
    'Changed columns after the change (the whole row for an insert); null for a delete.';
comment on column sync.fragrance_history.inbox_id is
    'The sync.inbox delivery that caused the change; null for a change made directly in the database (by hand or by another application).';
comment on column sync.fragrance_history.db_user is
    'The database login (session_user) that made the change.';
comment on column sync.fragrance_history.transaction_id is
    'The transaction that made the change, to group the rows of one edit.';

create index fragrance_history_fragrance_idx on sync.fragrance_history (fragrance_id, id);
create index fragrance_history_inbox_idx on sync.fragrance_history (inbox_id) where inbox_id is not null;

-- sync._record_history
-- Trigger: writes one history row per changed fragrance row; hand edits also move the field clock.
create function sync._record_history() returns trigger
    language plpgsql
    security definer
    set search_path = pg_catalog, pg_temp
as $$
declare
    v_inbox_id bigint := nullif(current_setting('sync.inbox_id', true), '')::bigint;
    v_old jsonb;
    v_new jsonb;
    v_changed text[];
    v_position bigint;
begin
    if tg_op = 'INSERT' then
        v_new := to_jsonb(new);
        v_changed := array(select jsonb_object_keys(v_new));
    elsif tg_op = 'DELETE' then
        v_old := to_jsonb(old);
    else
        select jsonb_object_agg(n.key, o.value), jsonb_object_agg(n.key, n.value), array_agg(n.key)
        into v_old, v_new, v_changed
        from jsonb_each(to_jsonb(new)) as n
        join jsonb_each(to_jsonb(old)) as o using (key)
        where n.value is distinct from o.value;
        if v_changed is null then
            return null;
        end if;
    end if;

    insert into sync.fragrance_history (fragrance_id, operation, old_values, new_values, inbox_id)
    values (coalesce(new.fragrance_id, old.fragrance_id), lower(tg_op), v_old, v_new, v_inbox_id);

    if tg_op = 'DELETE' then
        delete from sync.field_version where fragrance_id = old.fragrance_id;
    elsif tg_op = 'UPDATE' and v_inbox_id is null then
        -- A hand edit counts as received now: deliveries already in the inbox
        -- are older and must not undo it, later ones may. A row inserted by
        -- hand is a baseline instead, so a quarantined change can be retried
        -- onto it.
        select case when is_called then last_value else 0 end into v_position from sync.inbox_id_seq;
        insert into sync.field_version as fv (fragrance_id, name_inbox_id, description_inbox_id, cost_inbox_id, forbidden_inbox_id)
        values (
            new.fragrance_id,
            case when 'name' = any (v_changed) then v_position else 0 end,
            case when 'description' = any (v_changed) then v_position else 0 end,
            case when 'cost' = any (v_changed) then v_position else 0 end,
            case when 'forbidden' = any (v_changed) then v_position else 0 end)
        on conflict (fragrance_id) do update
            set name_inbox_id = greatest(fv.name_inbox_id, excluded.name_inbox_id),
                description_inbox_id = greatest(fv.description_inbox_id, excluded.description_inbox_id),
                cost_inbox_id = greatest(fv.cost_inbox_id, excluded.cost_inbox_id),
                forbidden_inbox_id = greatest(fv.forbidden_inbox_id, excluded.forbidden_inbox_id);
    end if;
    return null;
end;
$$;
comment on function sync._record_history() is
    'Trigger (AFTER INSERT/UPDATE/DELETE on public.fragrances): records the change in sync.fragrance_history, attributed to the delivery in sync.inbox_id or to the database user; a hand UPDATE also advances sync.field_version so older deliveries cannot undo it.';

create trigger _900_sync_record_history
    after insert or update or delete on public.fragrances
    for each row execute function sync._record_history();
