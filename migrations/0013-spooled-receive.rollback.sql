-- Remove spooled receiving and the hook's commit setting
do $$
begin
    execute format('alter role sync_hook_login in database %I reset synchronous_commit',
                   current_database());
end;
$$;
drop function sync.receive_spooled(uuid, timestamptz, bytea, text, inet, text);
