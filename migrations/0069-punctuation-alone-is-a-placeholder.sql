-- name.placeholder says punctuation alone ("?", "...") is a placeholder; fragrance_id.out_of_range judges the catalog
-- depends: 0068-fixes-a-dba-can-run

-- A name "?", "." or "..." passed every rule: it is the placeholder an
-- editor types where a form wants a value and none is known, and the
-- application showed it as the fragrance's name (hostile review).
-- sync_private.placeholder (db/10-rules.sql, loaded after the migrations)
-- now reports such a text as name.placeholder or description.placeholder;
-- here the rule's description says so. No table is altered, and nothing
-- of the rule changes but its description: rows already at rest open their findings at
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
-- A row written by hand with a negative id (the column is an integer, and
-- takes one) was no finding: every delta of the CMS that names it is
-- refused as fragrance_id.out_of_range, so the sync never changes it, and
-- nobody was told (hostile review). The rule now applies to the catalog
-- too: sync_private.violations judges each row's id. Rows already at rest
-- open their findings at the next catalog check, as above.
update sync.rule
set applies_to = 'both',
    description = 'fragrance_id is outside 0 to 2,147,483,647 (the serial column). At rest, a negative id written by hand: no delta can name it, so the sync never changes the fragrance.'
where code = 'fragrance_id.out_of_range';
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

-- The rules with fragrance_id.out_of_range at rest are a new version: made
-- here unless sync.rule's trigger made it already (it is loaded with db/
-- after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0069',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules #>> '{fragrance_id.out_of_range,applies_to}' = 'both');
