"""Least privilege: the hook may only store and apply deliveries; the DBA role runs the sync."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from conftest import Server, run_yoyo
from helpers import body, receive


@pytest.fixture
def hook(server: Server, dbname: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(server.url(dbname, user="sync_hook_login"), autocommit=True) as conn:
        yield conn


def test_the_hook_can_store_a_delivery_and_read_its_receipt(hook: psycopg.Connection) -> None:
    receipt = hook.execute(
        "select status from sync.receive(%s, 'application/json', '10.0.0.1', 'cms/1')",
        [body({"fragrance_id": 7, "cost": 5})],
    ).fetchone()
    assert receipt == ("applied",)


def test_the_hook_can_store_a_batch_and_apply_what_is_pending(hook: psycopg.Connection) -> None:
    [(inbox_id, stored)] = hook.execute(
        "select inbox_id, status from sync.store_many(%s, %s, %s, %s, %s)",
        [[body({"fragrance_id": 7, "cost": 6})], [None], [None], [None], [uuid.uuid4()]],
    ).fetchall()
    applied = hook.execute("select inbox_id, status from sync.apply_received(10)").fetchall()
    assert (stored, applied) == ("pending", [(inbox_id, "applied")])


@pytest.mark.parametrize(
    "statement",
    [
        "select * from public.fragrances",
        "update public.fragrances set cost = 0",
        "insert into public.fragrances values (9999, 'x', 'y', 1, false)",
        "delete from public.fragrances",
        "select * from sync.inbox",
        "insert into sync.inbox (body) values ('\\x7b7d')",
        "update sync.inbox set status = 'applied'",
        "delete from sync.inbox",
        "select * from sync.fragrance_history",
        "select * from sync.quarantine",
        "update sync.settings set apply_on_receipt = false",
        "select sync.apply_pending(10)",
        "select sync.retry(1)",
        "select sync.retry_all()",
        "select sync.discard(1, 'no')",
        "select sync_private.process_claimed(array[1::bigint])",
        "select sync_private.settle('{}', '{}', '{}', 1)",
        "create table public.intruder (id int)",
        "create table sync.intruder (id int)",
        "create function sync.intruder() returns int language sql as 'select 1'",
    ],
)
def test_the_hook_cannot(hook: psycopg.Connection, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        hook.execute(statement)


def test_a_dba_can_inspect_apply_retry_and_discard(dba: psycopg.Connection) -> None:
    dba.execute("update sync.settings set apply_on_receipt = false")
    assert dba.execute("select processed from sync.apply_pending(10)").fetchone() == (0,)
    assert dba.execute("select count(*) from sync.quarantine").fetchone() == (0,)
    assert dba.execute("select count(*) from sync.inbox").fetchone() == (0,)
    assert dba.execute("select processed from sync.retry_all()").fetchone() == (0,)


@pytest.mark.parametrize(
    "call",
    [
        'select valid from sync.prepare(\'{"fragrance_id": 1, "cost": -1}\')',
        "select sync.check_delta('{\"fragrance_id\": 1}')",
    ],
)
def test_a_dba_can_run_the_rules_on_a_body_by_hand(dba: psycopg.Connection, call: str) -> None:
    assert dba.execute(call).fetchone() is not None


def test_a_dba_hand_edit_is_attributed_to_the_dba(dba: psycopg.Connection) -> None:
    dba.execute("update public.fragrances set cost = 1 where fragrance_id = 3")
    assert dba.execute(
        "select db_user, inbox_id from sync.fragrance_history where fragrance_id = 3"
    ).fetchone() == ("alice", None)


def test_a_dba_cannot_rewrite_what_was_received(dba: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dba.execute("update sync.inbox set status = 'applied'")


def test_migrations_create_the_roles_once(
    server: Server, db: psycopg.Connection, bare_dbname: str
) -> None:
    """Roles belong to the cluster: a second database's migrations find them and go on."""
    ours = "select rolname, rolcanlogin, oid from pg_roles where rolname like 'sync\\_%' order by 1"
    roles = db.execute(ours).fetchall()
    assert [role[:2] for role in roles] == [
        ("sync_dba", False),
        ("sync_hook", False),
        ("sync_hook_login", True),
    ]
    run_yoyo(server, bare_dbname, "apply")  # another database of the same cluster
    assert db.execute(ours).fetchall() == roles  # the same roles: not created again


def test_the_hooks_commits_always_wait_for_the_disk(hook: psycopg.Connection) -> None:
    assert hook.execute("show synchronous_commit").fetchone() == ("on",)


def test_no_sync_function_is_executable_by_everyone(db: psycopg.Connection) -> None:
    public = db.execute("""
        select p.oid::regprocedure::text from pg_proc as p
        where p.pronamespace in ('sync'::regnamespace, 'sync_private'::regnamespace)
          and has_function_privilege('public', p.oid, 'execute')
        order by 1
    """).fetchall()
    assert public == []


# Granted to nobody on purpose: it runs as its owner with the credentials it is given, so only
# its owner (a superuser, where that owns the sync) calls it (docs/security-boundary.md).
OWNER_ONLY = {"sync.load_snapshot_from_server(text,integer,text,text,text,text,text)"}


def test_df_sync_lists_only_what_a_dba_or_the_hook_may_call(db: psycopg.Connection) -> None:
    r"""`\df sync.*` is the API: every routine there is granted, the internals are elsewhere.

    A helper created in sync (a trigger function, a step granted to nobody) would show in a
    DBA's `\df sync.*` as a verb that refuses every call.
    """
    listed = db.execute("""
        select p.oid::regprocedure::text from pg_proc as p
        where p.pronamespace = 'sync'::regnamespace
          and not has_function_privilege('sync_dba', p.oid, 'execute')
          and not has_function_privilege('sync_hook', p.oid, 'execute')
        order by 1
    """).fetchall()
    assert {name for (name,) in listed} == OWNER_ONLY


def test_the_hook_can_read_the_metrics_and_the_status_page_data(hook: psycopg.Connection) -> None:
    assert hook.execute("select pending from sync.metrics()").fetchone() == (0,)
    report = hook.execute("select sync.status_report()").fetchone()[0]
    assert report["health"]["verdict"] == "warn"  # nothing received yet


@pytest.mark.parametrize(
    "statement",
    [
        "select * from sync.health",
        "select * from sync.health_at(now())",
        "select sync_private.say_interval('1 minute')",
        "select sync_private.preview('\\x7b7d')",
        "select sync.revert(1)",
        "select * from sync.fragrance_at(7, now())",
    ],
)
def test_the_hook_cannot_run_health_undo_or_history(
    hook: psycopg.Connection, statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        hook.execute(statement)


def test_a_dba_can_read_health_revert_and_look_back(
    db: psycopg.Connection, dba: psycopg.Connection
) -> None:
    assert dba.execute("select count(*) from sync.health").fetchone() == (1,)
    change = receive(db, {"fragrance_id": 7, "cost": 42})
    assert dba.execute("select status from sync.revert(%s)", [change["inbox_id"]]).fetchone() == (
        "applied",
    )
    assert dba.execute("select count(*) from sync.fragrance_at(7, now())").fetchone() == (1,)


def test_a_dba_can_read_every_view(db: psycopg.Connection, dba: psycopg.Connection) -> None:
    db.execute(
        'select sync.load_snapshot(\'[{"fragrance_id": 1, "name": "x", "description": "",'
        ' "cost": 1, "forbidden": false}]\')'
    )
    receive(db, {"fragrance_id": 7, "cost": -1, "colour": "red"})
    views = db.execute(
        "select oid::regclass::text from pg_class"
        " where relnamespace = 'sync'::regnamespace and relkind = 'v' order by 1"
    ).fetchall()
    assert len(views) >= 5
    for (view,) in views:
        assert dba.execute(f"select count(*) from {view}").fetchone()[0] >= 0, view


def test_a_dba_cannot_call_the_internals(dba: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        dba.execute("select sync_private.fields()")


@pytest.mark.parametrize(
    ("call", "sqlstate"),
    [
        # No such argument: the hook's function has no moment but now.
        ("select sync.status_report(p_now => now() - interval '1 day')", "42883"),
        # Bad limits (p_latest 1 to 20), refused by the function itself.
        ("select sync.status_report(3, 500)", "FS004"),
        ("select sync.status_report(3, 21)", "FS004"),
    ],
)
def test_the_hook_reads_only_what_the_status_page_shows_now(
    hook: psycopg.Connection, call: str, sqlstate: str
) -> None:
    with pytest.raises(psycopg.Error) as refused:
        hook.execute(call)
    assert refused.value.sqlstate == sqlstate, refused.value


def test_the_status_report_shows_at_most_the_latest_twenty_deliveries(
    db: psycopg.Connection, hook: psycopg.Connection
) -> None:
    for n in range(30):
        receive(db, {"fragrance_id": n, "cost": n})
    report = hook.execute("select sync.status_report(3, 20)").fetchone()[0]
    assert len(report["latest"]) == 20


def test_the_roles_say_what_they_may_do(db: psycopg.Connection) -> None:
    comments = dict(
        db.execute(
            "select rolname, shobj_description(oid, 'pg_authid') from pg_roles"
            " where rolname in ('sync_hook', 'sync_dba')"
        ).fetchall()
    )
    assert "sync.receive_many" in comments["sync_hook"]
    assert "tunes rules" in comments["sync_dba"]


@pytest.mark.parametrize("mode", ["row exclusive", "exclusive", "access exclusive"])
def test_a_dba_cannot_lock_the_settings_the_hook_reads(dba: psycopg.Connection, mode: str) -> None:
    """A DBA's LOCK TABLE left open stopped every store of the hook (it reads apply_on_receipt)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege), dba.transaction():
        dba.execute(f"lock table sync.settings in {mode} mode")


def test_a_dba_still_tunes_every_setting(dba: psycopg.Connection) -> None:
    dba.execute("""
        update sync.settings set apply_on_receipt = false, expected_interval = '30 seconds',
            silence_warn_after = '3 minutes', silence_critical_after = '20 minutes',
            pending_warn_after = '6 minutes', reject_share_warn = 0.2,
            purge_after = '60 days', discarded_purge_after = '2 years',
            snapshot_warn_after = '60 days'
    """)
    assert dba.execute("select purge_after::text from sync.settings").fetchone() == ("60 days",)


def test_every_setting_but_the_singleton_is_granted_to_dbas_by_column(
    db: psycopg.Connection,
) -> None:
    """A setting a later migration adds needs its own grant (0049): this says when it lacks one."""
    columns = db.execute(
        "select a.attname, has_column_privilege('sync_dba', a.attrelid, a.attname, 'UPDATE')"
        " from pg_catalog.pg_attribute as a"
        " where a.attrelid = 'sync.settings'::regclass and a.attnum > 0 and not a.attisdropped"
    ).fetchall()
    assert len(columns) > 2
    assert {name for name, granted in columns if not granted} == {"singleton"}
