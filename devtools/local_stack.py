"""The whole system on one machine: ``make run``.

Starts an embedded PostgreSQL cluster kept under the project folder (two
databases: the CMS's and the smart library's, both holding the same
generated catalog), applies the migrations, starts the CMS simulator and the
hook (which registers itself as the CMS's listener), and shows a live status
line until Ctrl-C, which stops everything in order.

``DATABASE_URL`` pointing elsewhere skips the embedded cluster (then
``MIGRATE_DATABASE_URL`` is the owner's login for the migrations, and the
simulator runs only when ``CMS_DATABASE_URL`` is set too).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from devtools.throwaway_pg import ThrowawayPostgresql

ROOT = Path(__file__).resolve().parent.parent
DDL = ROOT / "deploy" / "initdb" / "10-smart-library.sql"
CATALOG = ROOT / "sql" / "catalog.sql"

SYNC_STATUS = """
    select count(*),
           count(*) filter (where status = 'applied'),
           count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'ignored'),
           count(*) filter (where status = 'pending')
    from sync.inbox
"""
ROW_DIGESTS = (
    "select fragrance_id, md5(row(name, description, cost, forbidden)::text) from public.fragrances"
)


@dataclass(frozen=True)
class Urls:
    """Where each part of the system finds its database."""

    migrate: str
    hook: str
    cms: str | None


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _traversable(path: Path) -> bool:
    """True when any user may walk down to ``path`` (the server runs as another user)."""
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents] if p.exists())


def _cluster_dir() -> Path:
    base = Path(os.environ.get("LOCAL_DIR", ROOT / ".local")).resolve()
    if os.geteuid() == 0 and not _traversable(base.parent):
        # As root the server runs as an unprivileged user, who must reach its data.
        digest = hashlib.sha1(str(base).encode()).hexdigest()[:8]
        base = Path("/var/tmp") / f"fragrance-sync-{digest}"
        print(f"(the project folder is private to root: cluster kept in {base})")
    base.mkdir(parents=True, exist_ok=True)
    return base / "postgres"


def _ensure_catalog_database(admin_url: str, url: str, name: str) -> None:
    """Create a database holding the contract's table and catalog, unless it exists."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        exists = admin.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("select to_regclass('public.fragrances')").fetchone() == (None,):
            conn.execute(DDL.read_text())
            conn.execute(CATALOG.read_text())
            print(f"    {name}: table and 5,000-row catalog loaded")


@contextmanager
def embedded_cluster() -> Iterator[Urls]:
    """Start (or restart, reusing its data) the cluster under the project folder."""
    port = int(os.environ.get("LOCAL_PG_PORT", "55432"))
    base_dir = _cluster_dir()
    _say(f"PostgreSQL on 127.0.0.1:{port}, data in {base_dir}")
    server = ThrowawayPostgresql(
        base_dir=str(base_dir),
        port=port,
        postgres_args="-h 127.0.0.1 -c logging_collector=off",
    )
    try:
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        smart = f"postgresql://postgres@127.0.0.1:{port}/fragrancedb"
        cms = f"postgresql://postgres@127.0.0.1:{port}/cmsdb"
        _ensure_catalog_database(admin, smart, "fragrancedb")
        _ensure_catalog_database(admin, cms, "cmsdb")
        yield Urls(
            migrate=smart,
            hook=f"postgresql://sync_hook_login@127.0.0.1:{port}/fragrancedb",
            cms=cms,
        )
    finally:
        _say("stopping PostgreSQL")
        server.stop()


def _migrate(url: str) -> None:
    _say("applying migrations")
    yoyo = Path(sys.executable).with_name("yoyo")
    target = url.replace("postgresql://", "postgresql+psycopg://", 1)
    subprocess.run(
        [str(yoyo), "apply", "--batch", "--database", target, str(ROOT / "migrations")],
        check=True,
    )


@contextmanager
def _service(name: str, module: str, log_dir: Path, env: dict[str, str]) -> Iterator[None]:
    """Run ``python -m module`` in its own session; stop it with SIGTERM on exit."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    print(f"    {name}: pid {process.pid}, log {log_path}")
    try:
        yield
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _status_line(urls: Urls) -> str:
    with psycopg.connect(urls.migrate) as conn:
        received, applied, rejected, ignored, pending = conn.execute(SYNC_STATUS).fetchone()
        ours = dict(conn.execute(ROW_DIGESTS).fetchall())
    line = (
        f"received {received} | applied {applied} | rejected {rejected} | "
        f"ignored {ignored} | pending {pending}"
    )
    if urls.cms:
        with psycopg.connect(urls.cms) as conn:
            theirs = dict(conn.execute(ROW_DIGESTS).fetchall())
        in_sync = sum(1 for k in ours.keys() | theirs.keys() if ours.get(k) == theirs.get(k))
        line += f" | rows in sync {in_sync}/{len(ours.keys() | theirs.keys())}"
    return line


def _wait_for_signal(urls: Urls) -> None:
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    _say("running; Ctrl-C stops everything")
    while not stop:
        try:
            line = _status_line(urls)
        except psycopg.Error as exc:
            line = f"status unavailable: {exc}".splitlines()[0]
        print(f"\r{line:<110}", end="", flush=True)
        for _ in range(20):
            if stop:
                break
            time.sleep(0.1)
    print()


def main() -> int:
    """Run the whole system until Ctrl-C."""
    hook_port = os.environ.get("PORT", "9099")
    cms_port = os.environ.get("CMS_PORT", "9090")
    log_dir = ROOT / ".local" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if os.environ.get("DATABASE_URL"):
            urls = Urls(
                migrate=os.environ.get("MIGRATE_DATABASE_URL") or os.environ["DATABASE_URL"],
                hook=os.environ["DATABASE_URL"],
                cms=os.environ.get("CMS_DATABASE_URL") or None,
            )
        else:
            urls = stack.enter_context(embedded_cluster())
        _migrate(urls.migrate)
        _say("starting services")
        if urls.cms:
            stack.enter_context(
                _service(
                    "cms_simulator",
                    "cms_simulator",
                    log_dir,
                    {"CMS_DATABASE_URL": urls.cms, "PORT": cms_port, "HOST": "127.0.0.1"},
                )
            )
        hook_env = {"DATABASE_URL": urls.hook, "PORT": hook_port}
        if urls.cms:
            hook_env |= {
                "CMS_URL": f"http://127.0.0.1:{cms_port}",
                "PUBLIC_URL": f"http://127.0.0.1:{hook_port}/notifications",
            }
        stack.enter_context(_service("hook", "hook", log_dir, hook_env))
        print(f"    hook: http://127.0.0.1:{hook_port}/docs")
        if urls.cms:
            print(f"    CMS simulator: http://127.0.0.1:{cms_port}/docs")
        _wait_for_signal(urls)
        _say("stopping services")
    return 0


if __name__ == "__main__":
    sys.exit(main())
