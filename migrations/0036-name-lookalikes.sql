-- The rule name.lookalike (names that differ only in case or width) with an index on the folded name; noncharacters are control characters
-- depends: 0035-open-findings-by-rule

-- "CHANEL", "Chanel" and the full-width "ＣＨＡＮＥＬ" are three names to
-- name.duplicate, one to a reader. Refusing them would be a product
-- decision; the data at rest shows them: a finding of the catalog (never a
-- reason on a delta), a warning, on each fragrance whose name another
-- fragrance's equals once both are folded (Unicode NFKC, then lower case,
-- sync_private.name_key in db/45-findings.sql, whose expression the index
-- below is: an ASCII name is its own NFKC, and skips normalize()) but not
-- as written.
insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
values ('name.lookalike', 'name', 'catalog', 'warning', null, 'warning', null, '{severity}', null, null,
        'name differs from another fragrance''s only in case, width or another compatibility form (the same under Unicode NFKC and lower case, e.g. "CHANEL", "Chanel" and full-width "ＣＨＡＮＥＬ"): a reader takes them for one name. List a group with: select fragrance_id, name from public.fragrances where lower(normalize(name, nfkc)) = lower(normalize(''Chanel'', nfkc));');

-- Each fragrance written asks whether another holds its folded name with
-- other letters: one probe of this index per fragrance, on each side of
-- its own name (the name as the second column), whatever the size of its
-- group. Built-in functions only: the code load drops and recreates every
-- function of ours, which an index on public.fragrances must not depend on.
-- lower() follows the column's collation, as every comparison of names does.
create index if not exists sync_fragrances_name_key_idx on public.fragrances (
    lower(case when octet_length(name::text) = char_length(name::text) then name::text
               else normalize(name::text, nfkc) end),
    name);
comment on index public.sync_fragrances_name_key_idx is
    'Fragrance sync: names folded (NFKC, lower case), then as written, for name.lookalike (db/45-findings.sql). Changes no row; the rollback of migration 0036 drops it.';

comment on table sync_private.name_turn is
    'One row per turn of names (1,024): a writer of a name locks the row of its folded name (sync_private.name_turn_of) FOR UPDATE until it commits, so two writers of one name, or of two names that fold alike, judge name.duplicate and name.lookalike in turn (sync_private.lock_names); a writer of many names locks their rows, at most all 1,024, never the table. The hook''s merger passes over a turn held longer than a merge holds one (sync_private.take_turns). Granted to nobody.';
comment on column sync_private.name_turn.turn is
    'sync_private.name_turn_of(name), a hash of the folded name: names that share a turn wait for each other, which is safe, only slower.';

-- <field>.control_character refuses noncharacters too (sync_private.first_control):
-- "Rose" U+FFFF passed every rule. Their descriptions say so; sync.rule's
-- trigger refuses a change of a description (FS070), which is for DBAs:
-- the owner's migration sets it aside for this statement, as 0031 did.
-- (The trigger exists only on an upgrade: a fresh install loads db/ after the migrations.)
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule disable trigger _100_check_rule_change;
    end if;
end
$$;
update sync.rule
set description = case code
    when 'name.control_character' then
        'name holds a control character (C0, DEL or C1), e.g. a bell or an ANSI colour, a line break of any kind (line feed, carriage return, next line, line and paragraph separators U+2028 and U+2029), or a noncharacter (U+FDD0-FDEF, U+FFFE and U+FFFF of every plane: for a program''s internal use, never text).'
    else
        'description holds a control character other than tab, line feed and carriage return (the line and paragraph separators U+2028 and U+2029 are line breaks, not controls: they pass), or a noncharacter (U+FDD0-FDEF, U+FFFE and U+FFFF of every plane).'
    end
where code in ('name.control_character', 'description.control_character');
do $$
begin
    if exists (select from pg_catalog.pg_trigger
               where tgrelid = 'sync.rule'::regclass and tgname = '_100_check_rule_change') then
        alter table sync.rule enable trigger _100_check_rule_change;
    end if;
end
$$;

-- The rules with name.lookalike and the wider control_character rules are a new version: made here unless sync.rule's
-- trigger made it already (it is loaded with db/ after the migrations).
insert into sync.rule_version (changed_by, rules)
select 'migration 0036',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule
having not exists (select from sync.rule_version as v
                   where v.version = (select max(w.version) from sync.rule_version as w)
                     and v.rules ? 'name.lookalike');
