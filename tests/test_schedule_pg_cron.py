"""Run without a person: where the server has pg_cron, the jobs are registered with it.

A server of its own, started with pg_cron preloaded for the database we
migrate (as Debian's postgresql-15-cron needs it), so the migration creates the
extension and every code load registers the jobs.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from conftest import ROOT, Server, load_smart_library, run_yoyo

from devtools.throwaway_pg import ThrowawayPostgresql

DATABASE = "fragrancedb"


@pytest.fixture(scope="module")
def cron_server() -> Iterator[Server]:
    pg = ThrowawayPostgresql(
        postgres_args=(
            "-h 127.0.0.1 -F -c logging_collector=off"
            f" -c shared_preload_libraries=pg_cron -c cron.database_name={DATABASE}"
        )
    )
    try:
        yield Server(pg)
    finally:
        pg.stop()


@pytest.fixture(scope="module")
def cron_db(cron_server: Server) -> Iterator[psycopg.Connection]:
    cron_server.create_database(DATABASE)
    load_smart_library(cron_server, DATABASE)
    run_yoyo(cron_server, DATABASE, "apply")
    with psycopg.connect(cron_server.url(DATABASE), autocommit=True) as conn:
        yield conn


def registered(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    return conn.execute(
        "select jobname, schedule, command from cron.job"
        " where jobname like 'fragrance\\_sync.%%' and active order by jobname"
    ).fetchall()


def test_the_migration_creates_pg_cron_and_the_code_load_registers_every_job(
    cron_db: psycopg.Connection,
) -> None:
    assert registered(cron_db) == [
        (
            "fragrance_sync.check_catalog",
            "17 3 * * *",
            "set statement_timeout = 0; select status from sync.run_job('check_catalog')",
        ),
        (
            "fragrance_sync.check_drift",
            "27 4 * * *",
            "set statement_timeout = 0; select status from sync.run_job('check_drift')",
        ),
        (
            "fragrance_sync.purge_inbox",
            "42 3 * * *",
            "call sync.purge_inbox()",
        ),
    ]
    scheduled_by = cron_db.execute("select job, scheduled_by from sync.schedule() order by job")
    assert [r[1] for r in scheduled_by.fetchall()] == [
        "pg_cron (fragrance_sync.check_catalog)",
        "pg_cron (fragrance_sync.check_drift)",
        "pg_cron (fragrance_sync.purge_inbox)",
    ]


def test_a_job_pg_cron_runs_is_never_due_for_the_cron_line(cron_db: psycopg.Connection) -> None:
    """sync.run_due_jobs beside pg_cron (a cron line left from before) would run each job twice."""
    schedules = cron_db.execute("select name, schedule from sync.job").fetchall()
    cron_db.execute("update sync.job set schedule = '* * * * *'")
    try:
        assert {r[0] for r in registered(cron_db)} == {
            "fragrance_sync.check_catalog",
            "fragrance_sync.check_drift",
            "fragrance_sync.purge_inbox",
        }
        due = cron_db.execute("select job from sync.due_jobs(now() + interval '1 day')")
        assert due.fetchall() == []
    finally:
        for name, schedule in schedules:
            cron_db.execute("update sync.job set schedule = %s where name = %s", [schedule, name])


def test_the_command_pg_cron_runs_records_a_run(cron_db: psycopg.Connection) -> None:
    [(command,)] = cron_db.execute(
        "select command from cron.job where jobname = 'fragrance_sync.check_catalog'"
    ).fetchall()
    # As pg_cron sends it: one simple query (the command is two statements).
    result = cron_db.pgconn.exec_(command.encode())
    assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message
    assert result.get_value(0, 0) == b"ok"
    last = cron_db.execute(
        "select last_status from sync.schedule() where job = 'check_catalog'"
    ).fetchone()
    assert last == ("ok",)


def test_a_nightly_check_is_not_cut_short_by_the_databases_statement_timeout(
    cron_server: Server, cron_db: psycopg.Connection
) -> None:
    """A site bounds its applications' statements; the nightly check is no such statement.

    Cancelled, the check left no run at all (a cancel is not an error
    sync.run_job can record): only a day later did health ask whether
    pg_cron still ran it.
    """
    [(command, username)] = cron_db.execute(
        "select command, username from cron.job where jobname = 'fragrance_sync.check_catalog'"
    ).fetchall()
    cron_db.execute(f"alter database {DATABASE} set statement_timeout = '20ms'")
    try:
        # As pg_cron sends it: one simple query, as the job's owner, in a new session.
        with psycopg.connect(cron_server.url(DATABASE, user=username), autocommit=True) as job:
            assert job.execute("show statement_timeout").fetchone() == ("20ms",)
            result = job.pgconn.exec_(command.encode())
            assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message
    finally:
        cron_db.execute(f"alter database {DATABASE} reset statement_timeout")
    last = cron_db.execute(
        "select status from sync.job_run where job = 'check_catalog' order by id desc limit 1"
    ).fetchone()
    assert last == ("ok",)


# A year of deliveries past the purge age: more than two transactions' worth.
BACKLOG = 25_000


def test_pg_cron_purges_a_backlog_in_transactions_of_at_most_10000_rows(
    cron_server: Server, cron_db: psycopg.Connection
) -> None:
    """The first purge after a year must not write all its WAL in one transaction."""
    cron_db.execute(
        "insert into sync.inbox (received_at, processed_at, body, status)"
        " select now() - interval '400 days', now() - interval '400 days',"
        " convert_to('{\"fragrance_id\": 7, \"cost\": ' || i || '}', 'UTF8'), 'applied'"
        " from generate_series(1, %s) as i",
        [BACKLOG],
    )
    # Which transaction deleted each row, as the database saw it.
    cron_db.execute("create table public.purged_by (xid bigint not null)")
    cron_db.execute(
        "create function public.note_purge() returns trigger language plpgsql as"
        " $$ begin insert into public.purged_by values (txid_current()); return null; end $$"
    )
    cron_db.execute(
        "create trigger note_purge after delete on sync.inbox"
        " for each row execute function public.note_purge()"
    )
    try:
        [(command, username)] = cron_db.execute(
            "select command, username from cron.job where jobname = 'fragrance_sync.purge_inbox'"
        ).fetchall()
        # As pg_cron sends it: one simple query, as the job's owner.
        with psycopg.connect(cron_server.url(DATABASE, user=username), autocommit=True) as job:
            result = job.pgconn.exec_(command.encode())
            assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message
        per_transaction = cron_db.execute(
            "select count(*) from public.purged_by group by xid order by 1 desc"
        ).fetchall()
        assert per_transaction == [(10_000,), (10_000,), (5_000,)]
        run = cron_db.execute(
            "select status, detail->>'deleted', detail->>'transactions' from sync.job_run"
            " where job = 'purge_inbox' order by id desc limit 1"
        ).fetchone()
        assert run == ("ok", str(BACKLOG), "3")
    finally:
        cron_db.execute("drop trigger note_purge on sync.inbox")
        cron_db.execute("drop function public.note_purge()")
        cron_db.execute("drop table public.purged_by")


def test_the_scheduled_purge_deletes_pg_crons_log_of_our_jobs_past_the_retention_only(
    cron_server: Server, cron_db: psycopg.Connection
) -> None:
    """pg_cron never purges cron.job_run_details: our three rows a day stayed for good.

    Another job's rows are its owner's business, whatever their age.
    """
    [(other,)] = cron_db.execute(
        "select cron.schedule('someone_elses_job', '0 0 * * *', 'select 1')"
    ).fetchall()
    [(ours, command, username)] = cron_db.execute(
        "select jobid, command, username from cron.job where jobname = 'fragrance_sync.purge_inbox'"
    ).fetchall()
    logged = cron_db.execute(
        "insert into cron.job_run_details (jobid, database, username, command, status,"
        " start_time, end_time)"
        " select jobid, %s, %s, command, 'succeeded', now() - ago::interval, now() - ago::interval"
        " from (values (1, %s::bigint, %s, '400 days'), (2, %s, %s, '1 day'),"
        "              (3, %s, 'select 1', '400 days'))"
        " as r (n, jobid, command, ago) order by n returning runid",
        [DATABASE, username, ours, command, ours, command, other],
    ).fetchall()
    try:
        # As pg_cron sends it: one simple query, as the job's owner.
        with psycopg.connect(cron_server.url(DATABASE, user=username), autocommit=True) as job:
            result = job.pgconn.exec_(command.encode())
            assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message
        left = cron_db.execute(
            "select runid from cron.job_run_details where runid = any (%s) order by runid",
            [[r[0] for r in logged]],
        ).fetchall()
        assert left == [logged[1], logged[2]]
        run = cron_db.execute(
            "select status, detail ->> 'cron_run_details_deleted' from sync.job_run"
            " where job = 'purge_inbox' order by id desc limit 1"
        ).fetchone()
        assert run == ("ok", "1")
    finally:
        cron_db.execute("select cron.unschedule(%s)", [other])
        cron_db.execute(
            "delete from cron.job_run_details where runid = any (%s)", [[r[0] for r in logged]]
        )


def log_runs(conn: psycopg.Connection, jobids: list[int], ago: str) -> list[int]:
    """A run of each job started `ago`, in pg_cron's log with its job's command; their runids."""
    rows = conn.execute(
        "insert into cron.job_run_details (jobid, database, username, command, status,"
        " start_time, end_time)"
        " select j.jobid, j.database, j.username, j.command, 'succeeded',"
        "        now() - %s::interval, now() - %s::interval"
        " from unnest(%s::bigint[]) with ordinality as x (jobid, n)"
        " join cron.job as j on j.jobid = x.jobid order by x.n returning runid",
        [ago, ago, jobids],
    ).fetchall()
    return [r[0] for r in rows]


def purge_as_pg_cron_does(server: Server, conn: psycopg.Connection) -> None:
    """The purge job's command, sent as pg_cron sends it: one simple query, as the job's owner."""
    [(command, username)] = conn.execute(
        "select command, username from cron.job where jobname = 'fragrance_sync.purge_inbox'"
    ).fetchall()
    with psycopg.connect(server.url(DATABASE, user=username), autocommit=True) as job:
        result = job.pgconn.exec_(command.encode())
        assert result.status == psycopg.pq.ExecStatus.TUPLES_OK, result.error_message


def still_logged(conn: psycopg.Connection, runids: list[int]) -> list[int]:
    rows = conn.execute(
        "select runid from cron.job_run_details where runid = any (%s) order by runid", [runids]
    ).fetchall()
    return [r[0] for r in rows]


def test_the_purge_of_pg_crons_log_keeps_another_jobs_rows_that_run_our_command(
    cron_server: Server, cron_db: psycopg.Connection
) -> None:
    """Taken by their command, another job's rows running the same text went with ours."""
    [(ours,)] = cron_db.execute(
        "select jobid from cron.job where jobname = 'fragrance_sync.purge_inbox'"
    ).fetchall()
    [(other,)] = cron_db.execute(
        "select cron.schedule('someone_elses_purge', '0 0 1 1 *', 'call sync.purge_inbox()')"
    ).fetchall()
    logged = log_runs(cron_db, [ours, other], "400 days")
    try:
        purge_as_pg_cron_does(cron_server, cron_db)
        assert still_logged(cron_db, logged) == [logged[1]]
    finally:
        cron_db.execute("select cron.unschedule(%s)", [other])
        cron_db.execute("delete from cron.job_run_details where runid = any (%s)", [logged])


def test_the_purge_of_pg_crons_log_takes_the_rows_of_a_job_disabled_since(
    cron_server: Server, cron_db: psycopg.Connection
) -> None:
    """Disabled, a job leaves cron.job; its old rows are still ours, by the jobid it had."""
    [(drift,)] = cron_db.execute(
        "select jobid from cron.job where jobname = 'fragrance_sync.check_drift'"
    ).fetchall()
    logged = log_runs(cron_db, [drift], "400 days")
    cron_db.execute("update sync.job set enabled = false where name = 'check_drift'")
    try:
        purge_as_pg_cron_does(cron_server, cron_db)
        assert still_logged(cron_db, logged) == []
    finally:
        cron_db.execute("update sync.job set enabled = true where name = 'check_drift'")
        cron_db.execute("delete from cron.job_run_details where runid = any (%s)", [logged])


def by_hand_listing() -> str:
    """The query docs/operations.md gives a DBA to list the log rows the purge cannot tell."""
    text = (ROOT / "docs" / "operations.md").read_text()
    after = text.split("To delete them by hand", 1)[1]
    block = after.split("```sql\n", 1)[1].split("```", 1)[0]
    return block.split(";", 1)[0]


def test_the_purge_keeps_the_log_of_a_job_unscheduled_before_its_jobid_was_recorded(
    cron_server: Server, cron_db: psycopg.Connection
) -> None:
    """Nothing tells such rows from another job's that ran our command: a person decides.

    The query docs/operations.md gives lists them for that person.
    """
    [(before_0059,)] = cron_db.execute(
        "select cron.schedule('fragrance_sync.old_purge', '0 0 1 1 *', 'call sync.purge_inbox()')"
    ).fetchall()
    logged = log_runs(cron_db, [before_0059], "400 days")
    cron_db.execute("select cron.unschedule(%s)", [before_0059])
    try:
        purge_as_pg_cron_does(cron_server, cron_db)
        assert still_logged(cron_db, logged) == logged
        listed = cron_db.execute(by_hand_listing()).fetchall()
        assert [(r[0], r[3]) for r in listed] == [(before_0059, 1)]
    finally:
        cron_db.execute("delete from cron.job_run_details where runid = any (%s)", [logged])


def test_a_changed_schedule_reaches_pg_cron_at_once_and_a_disabled_job_leaves_it(
    cron_db: psycopg.Connection,
) -> None:
    cron_db.execute("update sync.job set schedule = '5 1 * * 0' where name = 'check_drift'")
    cron_db.execute("update sync.job set enabled = false where name = 'purge_inbox'")
    try:
        assert [(name, schedule) for name, schedule, _ in registered(cron_db)] == [
            ("fragrance_sync.check_catalog", "17 3 * * *"),
            ("fragrance_sync.check_drift", "5 1 * * 0"),
        ]
    finally:
        cron_db.execute("update sync.job set schedule = '27 4 * * *', enabled = true")


def test_pg_cron_refuses_a_schedule_it_cannot_read(cron_db: psycopg.Connection) -> None:
    with pytest.raises(psycopg.Error) as refused:
        cron_db.execute("update sync.job set schedule = '99 99 * * *' where name = 'check_drift'")
    # pg_cron's own refusal, through the trigger that hands it the schedule: not another error.
    assert (refused.value.sqlstate, refused.value.diag.message_primary) == (
        "22023",
        "invalid schedule: 99 99 * * *",
    )


def test_where_pg_cron_does_not_run_the_schedule_says_to_use_cron(cron_server: Server) -> None:
    name = "elsewhere"
    cron_server.create_database(name)
    # pg_cron serves fragrancedb only; this database gets docs/operations.md's cron lines instead.
    run_yoyo(cron_server, name, "apply")
    with psycopg.connect(cron_server.url(name)) as conn:
        scheduled_by = conn.execute("select distinct scheduled_by from sync.schedule()").fetchall()
    outside = 'cron, outside the database: see docs/operations.md, "Run without a person"'
    assert scheduled_by == [(outside,)]


def test_rolling_everything_back_removes_our_jobs_from_pg_cron_and_keeps_pg_cron(
    cron_server: Server, cron_db: psycopg.Connection
) -> None:
    run_yoyo(cron_server, DATABASE, "rollback", "--all")
    assert registered(cron_db) == []
    assert cron_db.execute(
        "select count(*) from pg_extension where extname = 'pg_cron'"
    ).fetchone() == (1,)
