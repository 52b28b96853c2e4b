-- name.placeholder says punctuation alone ("?", "...") is a placeholder; fragrance_id.out_of_range judges the catalog
-- depends: 0068-fixes-a-dba-can-run

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
-- fragrance_id.out_of_range judges deltas only again; its open findings
-- close at the next catalog check.
update sync.rule
set applies_to = 'delta',
    description = 'fragrance_id is outside 0 to 2,147,483,647 (the serial column).'
where code = 'fragrance_id.out_of_range';
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

-- The rules without it are a new version, unless sync.rule's trigger made it.
insert into sync.rule_version (changed_by, rules)
select 'migration 0069 rolled back',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules #>> '{fragrance_id.out_of_range,applies_to}' = 'delta');
