-- The data rules as a table a DBA tunes, with versions; findings about the catalog at rest; scheduled jobs
-- depends: 0020-inbox-origin

-- sync.rule: every data rule, its severity and its parameter. A DBA changes a
-- severity or a parameter with one UPDATE; a trigger (db/10-rules.sql)
-- refuses what the rule cannot take, and each change makes a new version.
create table sync.rule (
    code text primary key,
    field text,
    applies_to text not null check (applies_to in ('delta', 'catalog', 'both')),
    severity text not null check (severity in ('error', 'warning', 'off')),
    parameter numeric,
    default_severity text not null check (default_severity in ('error', 'warning', 'off')),
    default_parameter numeric,
    tunable text[] not null default '{}' check (tunable <@ '{severity,parameter}'),
    parameter_min numeric,
    parameter_max numeric,
    description text not null
);
comment on table sync.rule is
    'The data rules: what each checks, where it runs (deltas, the catalog at rest, or both), its severity (error rejects a delta, warning records it, off skips it) and its parameter. Change one with UPDATE sync.rule SET severity = ..., parameter = ... WHERE code = ...; each change makes a new sync.rule_version.';
comment on column sync.rule.code is 'The reason code a violation carries, e.g. name.too_long.';
comment on column sync.rule.field is 'The field it is about (null for the whole body).';
comment on column sync.rule.applies_to is 'delta (incoming changes), catalog (public.fragrances at rest) or both.';
comment on column sync.rule.severity is 'error (a delta is rejected; a catalog finding is an error), warning (recorded, never blocks) or off (not checked).';
comment on column sync.rule.parameter is 'The rule''s number where it has one: a length limit, the largest cost, the most decimal places.';
comment on column sync.rule.default_severity is 'The severity the rule ships with.';
comment on column sync.rule.default_parameter is 'The parameter the rule ships with.';
comment on column sync.rule.tunable is 'What a DBA may change: severity, parameter, both or neither (a type rule cannot be loosened: the merge could not store the value).';
comment on column sync.rule.parameter_min is 'The smallest parameter accepted.';
comment on column sync.rule.parameter_max is 'The largest parameter accepted (a length limit up to the column''s).';
comment on column sync.rule.description is 'What the rule checks, in a sentence.';

insert into sync.rule (code, field, applies_to, severity, parameter, default_severity, default_parameter,
                       tunable, parameter_min, parameter_max, description)
select r.code, r.field, r.applies_to, r.severity, r.parameter, r.severity, r.parameter,
       r.tunable::text[], r.parameter_min, r.parameter_max, r.description
from (values
    ('body.empty', null, 'delta', 'error', null, '{}', null, null, 'The body has no bytes.'),
    ('body.not_utf8', null, 'delta', 'error', null, '{}', null, null, 'The body is not valid UTF-8 (a NUL byte included).'),
    ('body.unsupported_unicode', null, 'delta', 'error', null, '{}', null, null, 'The JSON holds \u0000, which jsonb cannot store (the bytes are kept).'),
    ('body.not_json', null, 'delta', 'error', null, '{}', null, null, 'The body is not JSON (NaN and Infinity are not JSON).'),
    ('body.duplicate_key', null, 'delta', 'error', null, '{}', null, null, 'The object names a key twice: ambiguous, so refused.'),
    ('body.not_object', null, 'delta', 'error', null, '{}', null, null, 'The JSON is an array, string, number, boolean or null.'),
    ('fragrance_id.missing', 'fragrance_id', 'delta', 'error', null, '{}', null, null, 'No fragrance_id.'),
    ('fragrance_id.null', 'fragrance_id', 'delta', 'error', null, '{}', null, null, 'fragrance_id is null.'),
    ('fragrance_id.not_integer', 'fragrance_id', 'delta', 'error', null, '{}', null, null, 'fragrance_id is a string, boolean or fraction (7.0 counts as 7).'),
    ('fragrance_id.out_of_range', 'fragrance_id', 'delta', 'error', null, '{}', null, null, 'fragrance_id is outside 0 to 2,147,483,647 (the serial column).'),
    ('fragrance_id.unknown', 'fragrance_id', 'delta', 'error', null, '{}', null, null, 'No such fragrance, and the delta does not carry every field to create it.'),
    ('field.unknown', null, 'delta', 'warning', null, '{severity}', null, null, 'A key the rules do not know: schema drift in the CMS.'),
    ('name.null', 'name', 'both', 'error', null, '{}', null, null, 'name is null: absent means unchanged in a delta, and the application needs a name.'),
    ('name.not_string', 'name', 'delta', 'error', null, '{}', null, null, 'name is not a JSON string.'),
    ('name.too_long', 'name', 'both', 'error', 150, '{parameter}', 1, 150, 'name has more characters than the limit (the column holds 150).'),
    ('name.blank', 'name', 'both', 'error', null, '{severity}', null, null, 'name shows nothing: only spaces, controls, invisible or combining characters, in any locale.'),
    ('name.control_character', 'name', 'both', 'error', null, '{severity}', null, null, 'name holds a control character (C0, DEL or C1), e.g. a bell or an ANSI colour.'),
    ('name.bidi_control', 'name', 'both', 'error', null, '{severity}', null, null, 'name holds a bidirectional embedding, override or isolate: it displays in another order than it is stored.'),
    ('name.untrimmed', 'name', 'both', 'warning', null, '{severity}', null, null, 'name starts or ends with whitespace.'),
    ('name.duplicate', 'name', 'catalog', 'warning', null, '{severity}', null, null, 'Another fragrance has the same name (the smart library''s model declares names unique).'),
    ('description.null', 'description', 'both', 'error', null, '{}', null, null, 'description is null.'),
    ('description.not_string', 'description', 'delta', 'error', null, '{}', null, null, 'description is not a JSON string (empty is allowed).'),
    ('description.too_long', 'description', 'both', 'error', 1024, '{parameter}', 1, 1024, 'description has more characters than the limit (the column holds 1,024).'),
    ('description.control_character', 'description', 'both', 'error', null, '{severity}', null, null, 'description holds a control character other than tab, line feed and carriage return.'),
    ('description.bidi_control', 'description', 'both', 'error', null, '{severity}', null, null, 'description holds a bidirectional embedding, override or isolate.'),
    ('description.untrimmed', 'description', 'both', 'warning', null, '{severity}', null, null, 'description starts or ends with whitespace.'),
    ('cost.null', 'cost', 'both', 'error', null, '{}', null, null, 'cost is null: the smart library serves int(cost), which fails on null.'),
    ('cost.not_number', 'cost', 'delta', 'error', null, '{}', null, null, 'cost is not a JSON number.'),
    ('cost.not_finite', 'cost', 'both', 'error', null, '{}', null, null, 'cost does not fit a double (1e400).'),
    ('cost.negative', 'cost', 'both', 'error', null, '{severity}', null, null, 'cost is below 0.'),
    ('cost.too_large', 'cost', 'both', 'error', 9007199254740991, '{severity,parameter}', 0, 9007199254740991, 'cost is above the limit (by default 2^53 - 1, the largest whole number every JSON reader holds exactly).'),
    ('cost.too_precise', 'cost', 'both', 'error', 2, '{severity,parameter}', 0, 6, 'cost has more decimal places than the limit (1e-400 is 0 as a double).'),
    ('cost.fractional', 'cost', 'both', 'warning', null, '{severity}', null, null, 'cost has a fractional part: the smart library serves int(cost), so 12.5 reaches the application as 12.'),
    ('forbidden.null', 'forbidden', 'both', 'error', null, '{}', null, null, 'forbidden is null.'),
    ('forbidden.not_boolean', 'forbidden', 'delta', 'error', null, '{}', null, null, 'forbidden is not true or false ("true" and 1 are not).')
) as r (code, field, applies_to, severity, parameter, tunable, parameter_min, parameter_max, description);

-- sync.rule_version: the rules as they were at each change.
create table sync.rule_version (
    version bigint generated always as identity primary key,
    changed_at timestamptz not null default now(),
    changed_by text not null default session_user,
    rules jsonb not null check (jsonb_typeof(rules) = 'object')
);
comment on table sync.rule_version is
    'Every version of the rules: a new row each time sync.rule changes. Inbox decisions and findings record the version they were judged by.';
comment on column sync.rule_version.version is 'The version number; the highest is in force.';
comment on column sync.rule_version.changed_at is 'When the rules changed.';
comment on column sync.rule_version.changed_by is 'Who changed them (the database login).';
comment on column sync.rule_version.rules is 'Every rule''s severity, parameter and reach at this version: {"name.too_long": {"severity": "error", "parameter": 150, "applies_to": "both"}, ...}.';
insert into sync.rule_version (changed_by, rules)
select 'migration 0021',
       jsonb_object_agg(code, jsonb_build_object('severity', severity, 'parameter', parameter, 'applies_to', applies_to))
from sync.rule;

alter table sync.inbox add column rules_version bigint;
comment on column sync.inbox.rules_version is
    'The version of the rules (sync.rule_version) this delivery was last judged by; null while pending, or when judged before rule versions existed.';

-- sync.finding: what breaks a rule in public.fragrances, from when it was
-- first seen to when it was fixed. Findings never block or change a row.
create table sync.finding (
    id bigint generated always as identity primary key,
    rule text not null references sync.rule (code),
    fragrance_id integer not null,
    field text,
    value jsonb,
    message text not null,
    severity text not null check (severity in ('error', 'warning')),
    rules_version bigint not null references sync.rule_version (version),
    first_seen_at timestamptz not null default now(),
    closed_at timestamptz,
    closed_by text,
    check ((closed_at is null) = (closed_by is null))
);
comment on table sync.finding is
    'Data-quality findings about public.fragrances at rest: each rule broken by a fragrance, opened when first seen (by sync.check_catalog() or by the write that broke it) and closed when it is gone. Open ones: sync.open_finding. Never blocks the smart library, never changes a row.';
comment on column sync.finding.id is 'Order in which findings were opened.';
comment on column sync.finding.rule is 'The rule broken (sync.rule.code).';
comment on column sync.finding.fragrance_id is 'The fragrance that breaks it.';
comment on column sync.finding.field is 'The field at fault.';
comment on column sync.finding.value is 'The value at fault, as JSON.';
comment on column sync.finding.message is 'What is wrong, in a sentence.';
comment on column sync.finding.severity is 'error or warning, as the rule says in the version that judged it.';
comment on column sync.finding.rules_version is 'The rules version that last judged it (a change of value, message or severity is recorded with the version in force).';
comment on column sync.finding.first_seen_at is 'When it was first seen: "since when".';
comment on column sync.finding.closed_at is 'When it was fixed (the value changed, the row went, or the rule was loosened); null while open.';
comment on column sync.finding.closed_by is 'What closed it: a write by a login, sync.check_catalog, or a change of the rules.';
create unique index finding_open_idx on sync.finding (rule, fragrance_id) where closed_at is null;
create index finding_open_fragrance_idx on sync.finding (fragrance_id) where closed_at is null;
create index finding_closed_at_idx on sync.finding (closed_at) where closed_at is not null;

-- Duplicate names are checked on every write to a name: an index on the
-- smart library's table keeps that a lookup. It changes no row.
create index if not exists sync_fragrances_name_idx on public.fragrances (name);
comment on index public.sync_fragrances_name_idx is
    'Fragrance sync: finds the fragrances sharing a name for the name.duplicate rule. Dropped by a rollback.';

-- sync.job: what runs without a person, and when.
create table sync.job (
    name text primary key check (name in ('check_catalog', 'purge_inbox', 'check_drift')),
    schedule text not null check (schedule ~ '^\S+( \S+){4}$'),
    enabled boolean not null default true,
    description text not null
);
comment on table sync.job is
    'Jobs that run on a schedule (cron syntax, server time zone): with pg_cron where the server has it, else from the cron line in the README. Change one with UPDATE sync.job SET schedule = ''0 4 * * *'' WHERE name = ...; see SELECT * FROM sync.schedule();';
comment on column sync.job.name is 'The job: check_catalog, purge_inbox or check_drift.';
comment on column sync.job.schedule is 'When it runs, in cron syntax (minute hour day month weekday).';
comment on column sync.job.enabled is 'false stops it running on schedule; SELECT sync.run_job(name) still runs it by hand.';
comment on column sync.job.description is 'What it does.';
insert into sync.job (name, schedule, description) values
    ('check_catalog', '17 3 * * *', 'Checks the whole catalog against the data rules and records the findings (sync.check_catalog()).'),
    ('purge_inbox', '42 3 * * *', 'Deletes applied and ignored deliveries older than sync.settings.purge_after (sync.purge_applied()).'),
    ('check_drift', '27 4 * * *', 'Compares the library with the last CMS snapshot loaded (sync.drift_summary) and records the counts.');

create table sync.job_run (
    id bigint generated always as identity primary key,
    job text not null references sync.job (name),
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    status text not null default 'running' check (status in ('running', 'ok', 'failed')),
    detail jsonb,
    run_by text not null default session_user
);
comment on table sync.job_run is
    'Every run of a job, by pg_cron, cron or by hand (sync.run_job()), with what it did or why it failed.';
comment on column sync.job_run.id is 'Order of the runs.';
comment on column sync.job_run.job is 'The job (sync.job.name).';
comment on column sync.job_run.started_at is 'When it started.';
comment on column sync.job_run.finished_at is 'When it ended.';
comment on column sync.job_run.status is 'running, ok or failed.';
comment on column sync.job_run.detail is 'What it did (counts), or the error.';
comment on column sync.job_run.run_by is 'The login that ran it.';
create index job_run_job_idx on sync.job_run (job, id);

alter table sync.settings add column purge_after interval not null default '90 days'
    check (purge_after >= interval '1 day');
comment on column sync.settings.purge_after is
    'The purge_inbox job deletes applied and ignored deliveries older than this (at least a day).';

grant select on sync.rule, sync.rule_version, sync.finding, sync.job, sync.job_run to sync_dba;
grant update (severity, parameter) on sync.rule to sync_dba;
grant update (schedule, enabled) on sync.job to sync_dba;

-- pg_cron runs the jobs where the server has it (Debian: postgresql-15-cron,
-- with shared_preload_libraries = 'pg_cron' and cron.database_name naming
-- this database). Only a superuser may create it; elsewhere the README's
-- cron lines run the jobs.
do $$
begin
    if exists (select from pg_catalog.pg_extension where extname = 'pg_cron') then
        raise notice 'pg_cron is installed: the jobs of sync.job are scheduled with it';
    elsif not exists (select from pg_catalog.pg_available_extensions where name = 'pg_cron') then
        raise notice 'pg_cron is not available on this server: run the jobs from cron (README)';
    elsif current_setting('cron.database_name', true) is distinct from current_database() then
        raise notice 'pg_cron runs in database %, not here: run the jobs from cron (README)',
            coalesce(current_setting('cron.database_name', true), '(pg_cron not preloaded)');
    elsif not (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
        raise notice 'pg_cron not created (needs a superuser): create extension pg_cron; in this database';
    else
        create extension pg_cron;
    end if;
end;
$$;
