-- name.placeholder says a text of punctuation alone ("?", "...", "—") is a placeholder
-- depends: 0067-earlier-discards-kept

-- The description as migration 0055 wrote it: the release rolled back to
-- lets punctuation alone pass. Open findings of such texts stay open until
-- the next catalog check closes them (select * from sync.run_job('check_catalog');).
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule disable trigger _100_check_rule_change;
    end if;
end
$$;
update sync.rule
set description = 'name is a placeholder left where no value was given: null, undefined, none, nil, NaN, n/a, TBD, TBA, TODO, FIXME, test, xxx, untitled, [object Object] or string, in any case and trimmed, or a text that starts with Lorem ipsum. JavaScript writes several of them for a missing value; the application shows them as the name. A warning: such a word may be meant.'
where code = 'name.placeholder';
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
