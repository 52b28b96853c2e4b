"""The deploy's command: yoyo, refused plainly when its server is a standby.

``python -m hook.migrate apply --batch --database URL migrations`` takes
yoyo's arguments (``make migrate`` and compose's ``migrate`` run it). yoyo
takes its lock by inserting a row; on a standby (read-only, in recovery)
that insert fails every time, and yoyo, taking that for another deploy's
lock, retried for 10 s and said "Database locked (run yoyo break-lock to
remove this lock)": a DBA went looking for a lock that did not exist, and
``yoyo break-lock`` fails the same way. The server is asked first.

And a site's role or database settings are kept out of yoyo's way by the
command itself, not by each caller: ``make migrate`` and compose set them
in ``PGOPTIONS``, ``make run`` did not, and met a database read-only by
default with the same "Database locked", or a ``search_path`` that puts
``sync`` first with every migration run again in that schema
(``docs/operations.md``, "Deploying"). Options the caller gives come after
these in ``PGOPTIONS``, so they win; the lock timeout stays the caller's.

It is also asked whether anyone else may plant code the deploy would run as
its login (hostile review): where every login may create in a schema of the
deploy's search_path (schema public before PostgreSQL 15, kept by
pg_upgrade), a login of no standing created ``public.yoyo_lock`` before the
first deploy, with a trigger; yoyo found its table and inserted its lock row
there, and the trigger ran as the deploying login (a superuser: the login
made itself one). An unqualified function call of a landed migration (such
as ``format``) could be matched better by one planted in public the same
way. The deploy is refused until that CREATE is revoked, or while one of
yoyo's tables there belongs to a role the deploying login is no member of.
Revoking CREATE left what was planted while it was granted: an operator
``=`` of (varchar, varchar) in public matched yoyo's varchar ``migration_id``
better than pg_catalog's, and post-apply's delete ran it, as the deploying
superuser, on every apply (hostile review). A function or operator in a
schema of the path that belongs to such a role is refused too.

The sync's code runs as the deploying login (security definer) and writes
``public.fragrances``: whoever may add a trigger there (its owner, or a
role granted TRIGGER on it) had every merge run that trigger as the
deploying login. A superuser's deploy onto a table the smart library's
login owned let that login make itself a superuser (hostile review). The
deploy is refused while the table belongs to, or grants TRIGGER to, a role
it does not trust, or carries a trigger whose function belongs to one.

Nor was schema ``sync`` asked whose it is: made before the first deploy
by a login that could create in the database, it was filled by the deploy,
and its owner, taken for the sync's, could drop and replace the functions
the sync's own code calls as the deploying login (hostile review). The
sync's owner is now the owner of ``sync.inbox``, and our schemas that
belong to another role are refused.
"""

from __future__ import annotations

import os
import re
import sys

import psycopg
from yoyo.scripts.main import main as yoyo_main

STANDBY = (
    "this server is a standby (read-only, in recovery): deploy against the primary"
    " (or give the URL every host with target_session_attrs=read-write)"
)


#: What yoyo needs of the session whatever the site set: its record in public, and writes.
SESSION = "-c search_path=public -c default_transaction_read_only=off"
#: The deploy's sessions by name in pg_stat_activity (docs/operations.md, a killed deploy).
APPLICATION_NAME = "fragrance-sync deploy"


def deploy_session() -> None:
    """Put the deploy's session settings before the caller's PGOPTIONS, its name if none given."""
    given = os.environ.get("PGOPTIONS", "")
    os.environ["PGOPTIONS"] = f"{SESSION} {given}".strip()
    os.environ.setdefault("PGAPPNAME", APPLICATION_NAME)


def command_line(url: str, migrations: str | os.PathLike[str], *verb: str) -> list[str]:
    """The deploy's command line, for a program: ``verb`` (``apply`` if none) on ``url``'s database.

    ``url`` in libpq's form (``postgresql://``) or yoyo's; yoyo is given its own.
    ``make run``, the benchmarks and the tests deploy by it, as production does.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return [
        sys.executable,
        "-m",
        "hook.migrate",
        *(verb or ("apply",)),
        "--batch",
        "--database",
        url,
        os.fspath(migrations),
    ]


def database_url(argv: list[str]) -> str | None:
    """The libpq URL of yoyo's ``--database`` argument (``postgresql+psycopg://`` as libpq's)."""
    for i, arg in enumerate(argv):
        if arg in ("--database", "-d") and i + 1 < len(argv):
            return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", argv[i + 1])
        if arg.startswith("--database="):
            return re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", arg.split("=", 1)[1])
    return None


def in_recovery(url: str) -> bool:
    """Whether the server at ``url`` is a standby; False when it cannot be asked (yoyo says why)."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("select pg_catalog.pg_is_in_recovery()").fetchone()
    except psycopg.Error:
        return False
    return bool(row and row[0])


# Schemas of the session's search_path that every login, or a login not ours, may create
# in, and what such a login left in them that this deploy would run: yoyo's tables in its
# current schema, and any function or operator (a name a migration calls could resolve to
# it). A grant to one login by name let it plant while the deploy ran (hostile review).
# And who may add a trigger to public.fragrances, which the code it loads writes as its
# login, or did.
PLANTABLE = """
with untrusted as (
    -- Not ours: the deploying login's, a superuser's, the sync's owner's, the
    -- database owner's, or, for a login that is no superuser (one is a
    -- member of every role), a role it is in. The sync's owner is the owner
    -- of sync.inbox, which a deploy made: schema sync may be older than the
    -- first deploy, made by anyone who could create in the database.
    select r.oid, r.rolname
    from pg_catalog.pg_roles as r
    where r.rolname operator(pg_catalog.<>) current_user
      and not r.rolsuper
      and r.rolname operator(pg_catalog.<>) 'pg_database_owner'
      and r.oid is distinct from (select c.relowner from pg_catalog.pg_class as c
                                  where c.oid operator(pg_catalog.=)
                                        pg_catalog.to_regclass('sync.inbox')::pg_catalog.oid)
      and ((select m.rolsuper from pg_catalog.pg_roles as m
            where m.rolname operator(pg_catalog.=) current_user)
           or not pg_catalog.pg_has_role(r.oid, 'member'))
), searched as (
    select n.oid, n.nspname
    from pg_catalog.pg_namespace as n
    where n.nspname operator(pg_catalog.=) any (pg_catalog.current_schemas(false))
), written as (
    -- The table the sync's code (security definer, owned by this login) writes.
    select c.oid, c.relowner, c.relacl
    from pg_catalog.pg_class as c
    where c.oid operator(pg_catalog.=) pg_catalog.to_regclass('public.fragrances')::pg_catalog.oid
), planted as (
    select 'pg_catalog.pg_class'::pg_catalog.regclass as classid, c.oid, c.relowner as owner,
           s.nspname, true as yoyo
    from pg_catalog.pg_class as c
    join searched as s on s.oid operator(pg_catalog.=) c.relnamespace
    where s.nspname operator(pg_catalog.=) pg_catalog.current_schema()
      and c.relname operator(pg_catalog.=) any (array['yoyo_lock', '_yoyo_migration', '_yoyo_log',
                                                      '_yoyo_version'])
    union all
    select 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, p.proowner, s.nspname, false
    from pg_catalog.pg_proc as p
    join searched as s on s.oid operator(pg_catalog.=) p.pronamespace
    union all
    select 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid, o.oprowner, s.nspname, false
    from pg_catalog.pg_operator as o
    join searched as s on s.oid operator(pg_catalog.=) o.oprnamespace
)
select pg_catalog.format('every login may create in schema %I, where this deploy looks up names:'
                         ' revoke create on schema %I from public; then deploy',
                         s.nspname, s.nspname)
from searched as s
join pg_catalog.pg_namespace as n on n.oid operator(pg_catalog.=) s.oid
cross join lateral pg_catalog.aclexplode(n.nspacl) as a
where a.grantee operator(pg_catalog.=) 0 and a.privilege_type operator(pg_catalog.=) 'CREATE'
union all
select pg_catalog.format('%I may create in schema %I, where this deploy looks up names:'
                         ' revoke create on schema %I from %I; then deploy',
                         u.rolname, s.nspname, s.nspname, u.rolname)
from searched as s
join pg_catalog.pg_namespace as n on n.oid operator(pg_catalog.=) s.oid
cross join lateral pg_catalog.aclexplode(n.nspacl) as a
join untrusted as u on u.oid operator(pg_catalog.=) a.grantee
where a.privilege_type operator(pg_catalog.=) 'CREATE'
union all
select case when p.yoyo
            then pg_catalog.format('%s, which yoyo would write, belongs to %I: drop it, or check'
                                   ' who made it and why, then deploy', i.identity,
                                   p.owner::pg_catalog.regrole)
            else pg_catalog.format('%s %s belongs to %I, and this deploy looks up names in %I:'
                                   ' drop it, or check who made it and why, then deploy',
                                   i.type, i.identity, p.owner::pg_catalog.regrole, p.nspname)
       end
from planted as p
cross join lateral pg_catalog.pg_identify_object(p.classid, p.oid, 0) as i
where p.owner operator(pg_catalog.=) any (array(select u.oid from untrusted as u))
union all
select pg_catalog.format('schema %I belongs to %I, who may drop and replace what this deploy makes'
                         ' there: alter schema %I owner to %I (or drop it, if the sync was never'
                         ' deployed here), check what it holds and who made it; then deploy',
                         n.nspname, u.rolname, n.nspname, current_user)
from pg_catalog.pg_namespace as n
join untrusted as u on u.oid operator(pg_catalog.=) n.nspowner
where n.nspname operator(pg_catalog.=) any (array['sync', 'sync_private', 'sync_remote'])
union all
select pg_catalog.format('public.fragrances belongs to %I, and the sync''s code writes it as %I,'
                         ' who runs the triggers its owner adds there: deploy as %I'
                         ' (docs/operations.md, "What the deploying login needs"),'
                         ' or alter table public.fragrances owner to %I; then deploy',
                         u.rolname, current_user, u.rolname, current_user)
from written as w
join untrusted as u on u.oid operator(pg_catalog.=) w.relowner
union all
select case when a.grantee operator(pg_catalog.=) 0
            then 'every login may create triggers on public.fragrances, which the sync''s code'
                 ' writes: revoke trigger on public.fragrances from public; then deploy'
            else pg_catalog.format('%I may create triggers on public.fragrances, which the'
                                   ' sync''s code writes: revoke trigger on public.fragrances'
                                   ' from %I; then deploy', u.rolname, u.rolname)
       end
from written as w
cross join lateral pg_catalog.aclexplode(w.relacl) as a
left join untrusted as u on u.oid operator(pg_catalog.=) a.grantee
where a.privilege_type operator(pg_catalog.=) 'TRIGGER'
  and (a.grantee operator(pg_catalog.=) 0 or u.oid is not null)
union all
select pg_catalog.format('trigger %I on public.fragrances runs function %s, which belongs to %I:'
                         ' drop trigger %I on public.fragrances, or check who made it and why;'
                         ' then deploy', t.tgname, f.oid::pg_catalog.regprocedure, u.rolname,
                         t.tgname)
from written as w
join pg_catalog.pg_trigger as t on t.tgrelid operator(pg_catalog.=) w.oid
join pg_catalog.pg_proc as f on f.oid operator(pg_catalog.=) t.tgfoid
join untrusted as u on u.oid operator(pg_catalog.=) f.proowner
where not t.tgisinternal
"""


def plantable(url: str) -> list[str]:
    """Why another login could plant code this deploy would run as its login; empty if none."""
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            return [row[0] for row in conn.execute(PLANTABLE).fetchall()]
    except psycopg.Error:
        return []


def main(argv: list[str]) -> int | None:
    """Refuse a standby, or a database others may plant code in, saying what to do; else yoyo."""
    deploy_session()
    url = database_url(argv)
    if url is not None and in_recovery(url):
        print(f"deploy refused: {STANDBY}", file=sys.stderr)
        return 1
    reasons = plantable(url) if url is not None else []
    if reasons:
        for reason in reasons:
            print(f"deploy refused: {reason}", file=sys.stderr)
        return 1
    return yoyo_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
