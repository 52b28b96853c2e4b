"""Deploying into the production database as it is, with what a DBA really grants.

In a managed database (RDS, Cloud SQL, Azure) nobody is a true superuser:
the application's login owns public.fragrances and its catalog, may create
in the database and in schema public, and has CREATEROLE, as the provider's
admin login does. These tests deploy and roll back as such a login
(docs/operations.md, "What the deploying login needs").
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from conftest import CATALOG_SQL, SMART_LIBRARY_DDL, Server, _clone, run_yoyo
from helpers import receive
from psycopg import sql

from devtools.throwaway_pg import ThrowawayPostgresql

OWNER = "app_owner"
CATALOG_DIGEST = (
    "select count(*), md5(string_agg(f::text, ',' order by fragrance_id))"
    " from public.fragrances as f"
)


def prepare_as_managed(server: Server, name: str) -> None:
    """A database as its admin made it, the catalog loaded by the application's login."""
    with server.admin() as admin:
        admin.execute(f"""
            do $$ begin
                if not exists (select from pg_roles where rolname = '{OWNER}') then
                    create role {OWNER} login createrole;
                end if;
            end $$
        """)
        admin.execute(
            sql.SQL("grant create, connect on database {} to {}").format(
                sql.Identifier(name), sql.Identifier(OWNER)
            )
        )
    with psycopg.connect(server.url(name), autocommit=True) as su:
        su.execute(sql.SQL("grant create on schema public to {}").format(sql.Identifier(OWNER)))
    with psycopg.connect(server.url(name, user=OWNER), autocommit=True) as owner:
        owner.execute(SMART_LIBRARY_DDL)
        owner.execute(CATALOG_SQL.read_text())


@pytest.fixture
def managed(server: Server, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the session's server, prepared as a managed service has it."""
    for name in _clone(server, "template0", request):
        prepare_as_managed(server, name)
        yield name


def test_the_tables_owner_deploys_without_superuser_and_the_hook_merges(
    server: Server, managed: str
) -> None:
    with psycopg.connect(server.url(managed), autocommit=True) as su:
        before = su.execute(CATALOG_DIGEST).fetchone()
        run_yoyo(server, managed, "apply", user=OWNER)
        assert su.execute(CATALOG_DIGEST).fetchone() == before
    with psycopg.connect(server.url(managed, user="sync_hook_login"), autocommit=True) as hook:
        assert receive(hook, {"fragrance_id": 7, "cost": 5})["status"] == "applied"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            hook.execute("select * from public.fragrances")
    library = server.url(managed, user="smart_library_login")
    with psycopg.connect(library, autocommit=True) as reader:
        assert reader.execute(
            "select cost from public.fragrances where fragrance_id = 7"
        ).fetchone() == (5,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("select * from sync.inbox")


def test_the_tables_owner_rolls_everything_back_keeping_the_catalog(
    server: Server, managed: str
) -> None:
    with psycopg.connect(server.url(managed), autocommit=True) as su:
        before = su.execute(CATALOG_DIGEST).fetchone()
        run_yoyo(server, managed, "apply", user=OWNER)
        run_yoyo(server, managed, "rollback", "--all", user=OWNER)
        assert su.execute(CATALOG_DIGEST).fetchone() == before
        assert su.execute("select to_regnamespace('sync')").fetchone() == (None,)


CRON_DATABASE = "fragrancedb"


@pytest.fixture
def cron_server() -> Iterator[Server]:
    """A server with pg_cron preloaded for fragrancedb, as Debian's postgresql-15-cron needs it."""
    pg = ThrowawayPostgresql(
        postgres_args=(
            "-h 127.0.0.1 -F -c logging_collector=off"
            f" -c shared_preload_libraries=pg_cron -c cron.database_name={CRON_DATABASE}"
        )
    )
    try:
        yield Server(pg)
    finally:
        pg.stop()


def test_pg_cron_a_superuser_installed_does_not_stop_the_owners_deploy(
    cron_server: Server,
) -> None:
    """The provider's admin created pg_cron; its schema is not the owner's to use.

    The code load failed with "permission denied for schema cron", and so
    did every deploy: the jobs run from cron instead, and the deploy says
    which grant lets pg_cron run them.
    """
    cron_server.create_database(CRON_DATABASE)
    prepare_as_managed(cron_server, CRON_DATABASE)
    with psycopg.connect(cron_server.url(CRON_DATABASE), autocommit=True) as su:
        su.execute("create extension pg_cron")
        grant = f"grant usage on schema cron to {OWNER};"
        deployed = run_yoyo(cron_server, CRON_DATABASE, "apply", user=OWNER)
        assert grant in deployed.stderr
        scheduled_by = su.execute("select distinct scheduled_by from sync.schedule()").fetchall()
        assert len(scheduled_by) == 1
        assert scheduled_by[0][0].startswith("cron, outside the database")
        assert grant in scheduled_by[0][0]
        with psycopg.connect(cron_server.url(CRON_DATABASE, user=OWNER), autocommit=True) as owner:
            owner.execute("update sync.job set schedule = '5 1 * * *' where name = 'check_drift'")
        # The grant the message gives, and the next deploy registers the jobs as the owner.
        su.execute(grant)
        deployed = run_yoyo(cron_server, CRON_DATABASE, "apply", user=OWNER)
        assert "pg_cron" not in deployed.stderr
        jobs = su.execute(
            "select jobname, username from cron.job where jobname like 'fragrance\\_sync.%%'"
            " order by 1"
        ).fetchall()
        assert jobs == [
            ("fragrance_sync.check_catalog", OWNER),
            ("fragrance_sync.check_drift", OWNER),
            ("fragrance_sync.purge_inbox", OWNER),
        ]
