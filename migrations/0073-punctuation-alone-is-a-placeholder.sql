-- name.placeholder says a text of punctuation alone ("?", "...", "—") is a placeholder
-- depends: 0067-earlier-discards-kept

-- A name "?", "." or "..." passed every rule: it is the placeholder an
-- editor types where a form wants a value and none is known, and the
-- application showed it as the fragrance's name (hostile review).
-- sync_private.placeholder (db/10-rules.sql, loaded after the migrations)
-- now reports such a text as name.placeholder or description.placeholder;
-- here the rule's description says so. No table is altered, no rule,
-- severity or version changes: rows already at rest open their findings at
-- the next catalog check (nightly, or
-- select * from sync.run_job('check_catalog');) or when written.
-- The trigger that refuses a change of the description (FS070) is for DBAs.
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule disable trigger _100_check_rule_change;
    end if;
end
$$;
update sync.rule
set description = 'name is a placeholder left where no value was given: null, undefined, none, nil, NaN, n/a, TBD, TBA, TODO, FIXME, test, xxx, untitled, [object Object] or string, in any case and trimmed, a text that starts with Lorem ipsum, or a text of punctuation alone ("?", ".", "...", "—", between spaces or not). JavaScript writes several of them for a missing value, an editor types the punctuation where no value is known; the application shows them as the name. A warning: such a word may be meant.'
where code = 'name.placeholder';
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;
