"""The whole system on one machine: ``make run``.

Starts an embedded PostgreSQL cluster kept under the project folder (two
databases: the CMS's and the smart library's, both holding the same
generated catalog), applies the migrations, starts the CMS simulator, the
sync service (the hook, which registers itself as the CMS's listener with
its secret token) and the smart library stand-in, says where to look, and
shows a live status line until Ctrl-C, which stops everything in order.

The live line counts the rows the application sees in sync with the CMS: it
reads ``GET /fragrances`` from the smart library stand-in, as the
application does, and compares it with the CMS database (reachable here, in
development; production never reads it).

``DATABASE_URL`` pointing elsewhere skips the embedded cluster (then
``MIGRATE_DATABASE_URL`` is the owner's login for the migrations, the
simulator runs only when ``CMS_DATABASE_URL`` is set too, and the stand-in
only when ``SMART_LIBRARY_DATABASE_URL`` is).
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
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import psycopg
from psycopg import sql

from devtools.throwaway_pg import ThrowawayPostgresql
from hook.serve import port_taken

ROOT = Path(__file__).resolve().parent.parent
DDL = ROOT / "deploy" / "initdb" / "10-smart-library.sql"
CATALOG = ROOT / "sql" / "catalog.sql"

#: The local default of docker-compose.yaml too; anything but a laptop sets NOTIFY_TOKEN.
DEFAULT_NOTIFY_TOKEN = "local-dev-token-change-me"

SYNC_STATUS = """
    select count(*),
           count(*) filter (where status = 'applied'),
           count(*) filter (where status = 'rejected'),
           count(*) filter (where status = 'ignored'),
           count(*) filter (where status = 'discarded'),
           count(*) filter (where status = 'pending')
    from sync.inbox
"""
CMS_ROWS = "select fragrance_id, name, description, cost, forbidden from public.fragrances"


@dataclass(frozen=True)
class Urls:
    """Where each part of the system finds its database."""

    migrate: str
    hook: str
    cms: str | None
    library: str | None = None


@dataclass(frozen=True)
class Ports:
    """Where each service listens, on 127.0.0.1."""

    sync: int
    library: int
    cms: int


def _say(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def _traversable(path: Path) -> bool:
    """True when any user may walk down to ``path`` (the server runs as another user)."""
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents] if p.exists())


def relocated_cluster_base(base: Path) -> Path:
    """Where the cluster of ``base`` (LOCAL_DIR) lives when root's ``base`` is private."""
    digest = hashlib.sha1(str(base).encode()).hexdigest()[:8]
    return Path("/var/tmp") / f"fragrance-sync-{digest}"


def _cluster_dir() -> Path:
    base = Path(os.environ.get("LOCAL_DIR", ROOT / ".local")).resolve()
    if os.geteuid() == 0 and not _traversable(base.parent):
        # As root the server runs as an unprivileged user, who must reach its data.
        base = relocated_cluster_base(base)
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
    taken = port_taken("127.0.0.1", port)
    if taken:
        # Our server would fail to bind, and what holds the port would be taken for it:
        # another PostgreSQL there would get our databases and migrations.
        raise SystemExit(
            f"make run: cannot start PostgreSQL on 127.0.0.1:{port} ({taken}): another "
            "program holds the port (another PostgreSQL, or a make run still running): "
            "stop it, or give make run another: LOCAL_PG_PORT=... make run"
        )
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
            library=f"postgresql://smart_library_login@127.0.0.1:{port}/fragrancedb",
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


def _check_catalog_once(url: str) -> None:
    """Judge the adopted catalog once: findings otherwise come only from the rows written since."""
    with psycopg.connect(url, autocommit=True) as conn:
        checked = conn.execute(
            "select exists (select from sync.job_run where job = 'check_catalog' and status = 'ok')"
        ).fetchone()
        if checked is not None and not checked[0]:
            _say("checking the adopted catalog against the data rules (once)")
            conn.execute("select sync.run_job('check_catalog')")


@dataclass(frozen=True)
class Running:
    """A service started by ``_service``: its process and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def _service(name: str, module: str, log_dir: Path, env: dict[str, str]) -> Iterator[Running]:
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
        yield Running(name, process, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_up(service: Running, url: str, attempts: int = 300) -> bool:
    """Wait until ``url`` answers at all (even 503); False, with the reason, if it never does."""
    for _ in range(attempts):
        if service.process.poll() is not None:
            tail = service.log.read_text(errors="replace").strip().splitlines()[-3:]
            print(f"    {service.name} exited ({service.process.returncode}): " + " / ".join(tail))
            return False
        try:
            httpx.get(url, timeout=5)
            return True
        except httpx.HTTPError:
            time.sleep(0.1)
    print(f"    {service.name} does not answer on {url}; see {service.log}")
    return False


def _as_served(cost: Decimal | None) -> int | None:
    """A CMS cost as the smart library serves it: ``int(cost)``, None where int() fails."""
    try:
        return int(cost)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def application_view_in_sync(library_url: str, cms_url: str) -> tuple[int, int]:
    """Rows the application sees (``GET /fragrances``) equal to the CMS's, and all rows.

    Each CMS row is compared as the smart library would serve it (cost as
    ``int(cost)``); a row on one side only counts as out of sync.
    """
    answer = httpx.get(library_url.rstrip("/") + "/fragrances", timeout=30)
    answer.raise_for_status()
    served: dict[int, dict[str, Any]] = {r["fragrance_id"]: r for r in answer.json()["data"]}
    with psycopg.connect(cms_url) as conn:
        theirs = {
            fragrance_id: {
                "fragrance_id": fragrance_id,
                "name": name,
                "description": description,
                "cost": _as_served(cost),
                "forbidden": forbidden,
            }
            for fragrance_id, name, description, cost, forbidden in conn.execute(CMS_ROWS)
        }
    ids = served.keys() | theirs.keys()
    return sum(1 for k in ids if served.get(k) == theirs.get(k)), len(ids)


def _status_line(urls: Urls, library_url: str | None) -> str:
    with psycopg.connect(urls.migrate) as conn:
        received, applied, rejected, ignored, discarded, pending = conn.execute(
            SYNC_STATUS
        ).fetchone()
    # Every status an inbox row can have, so the columns add up to "received".
    line = (
        f"received {received} | applied {applied} | rejected {rejected} | "
        f"ignored {ignored} | discarded {discarded} | pending {pending}"
    )
    if urls.cms and library_url:
        try:
            in_sync, total = application_view_in_sync(library_url, urls.cms)
            line += f" | rows in sync {in_sync}/{total}"
        except httpx.HTTPStatusError as exc:
            line += f" | rows in sync ? (smart library: HTTP {exc.response.status_code})"
        except httpx.HTTPError as exc:
            line += f" | rows in sync ? (smart library: {type(exc).__name__})"
    return line


def _current_line(urls: Urls, library_url: str | None) -> str:
    try:
        return _status_line(urls, library_url)
    except psycopg.Error as exc:
        return f"status unavailable: {exc}".splitlines()[0]


def _wait_for_signal(urls: Urls, library_url: str | None) -> None:
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    _say("running; Ctrl-C stops everything")
    while not stop:
        print(f"\r{_current_line(urls, library_url):<110}", end="", flush=True)
        for _ in range(20):
            if stop:
                break
            time.sleep(0.1)
    # One last, fresh line: what the system looked like when it was stopped.
    print(f"\r{_current_line(urls, library_url):<110}", flush=True)


def _shown(url: str) -> str:
    """A database URL fit to print: any password replaced by a placeholder."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":<password>@", 1)
    return parts._replace(netloc=netloc).geturl()


def repair_command(owner_url: str, cms_url: str) -> str:
    """The one-liner that loads the CMS catalog as a snapshot, repairs the drift, checks it again.

    The last step refreshes the status page's drift figures, which are the last drift check's.
    """
    cms = urlsplit(cms_url)
    arguments = [
        f"'{cms.hostname or 'localhost'}'",
        str(cms.port or 5432),
        f"'{cms.path.lstrip('/')}'",
        f"'{unquote(cms.username or '')}'",
    ]
    if cms.password is not None:
        arguments.append("'<password>'")
    load = f"select sync.load_snapshot_from_server({', '.join(arguments)})"
    return (
        f'psql "{_shown(owner_url)}" -c "{load}" -c "select * from sync.repair()"'
        " -c \"select job, status from sync.run_job('check_drift')\""
    )


def _guide(urls: Urls, ports: Ports, token: str, library: bool) -> None:
    """Say, once everything is up, what to look at."""
    _say("up; look at")
    if library:
        print(f"    smart library (as the application sees it): http://127.0.0.1:{ports.library}/")
        print(f"        every row:  http://127.0.0.1:{ports.library}/fragrances")
    print(f"    sync status page:  http://127.0.0.1:{ports.sync}/status")
    print(f"    sync API:          http://127.0.0.1:{ports.sync}/docs")
    print(f"    CMS listener:      http://127.0.0.1:{ports.sync}/notifications/{token}")
    if urls.cms:
        print(f"    CMS simulator:     http://127.0.0.1:{ports.cms}/docs")
    print(f'    smart library database (owner): psql "{_shown(urls.migrate)}"')
    if urls.cms:
        print(f'    CMS database:      psql "{_shown(urls.cms)}"')
        print("    repair the CMS's unheard first change (rows in sync back to every row):")
        print(f"      {repair_command(urls.migrate, urls.cms)}")


#: The variable of make run that moves each service to another port.
PORT_VARIABLES = {
    "cms_simulator": "CMS_PORT",
    "fragrance_sync": "SYNC_PORT",
    "smart_library": "SMART_LIBRARY_PORT",
}


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit():
        raise SystemExit(f"make run: {name} must be a port number, got {raw!r}")
    return int(raw)


def main() -> int:
    """Run the whole system until Ctrl-C."""
    ports = Ports(
        sync=_port("SYNC_PORT", 9098),
        library=_port("SMART_LIBRARY_PORT", 9099),
        cms=_port("CMS_PORT", 9090),
    )
    token = os.environ.get("NOTIFY_TOKEN") or DEFAULT_NOTIFY_TOKEN
    log_dir = ROOT / ".local" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        if os.environ.get("DATABASE_URL"):
            urls = Urls(
                migrate=os.environ.get("MIGRATE_DATABASE_URL") or os.environ["DATABASE_URL"],
                hook=os.environ["DATABASE_URL"],
                cms=os.environ.get("CMS_DATABASE_URL") or None,
                library=os.environ.get("SMART_LIBRARY_DATABASE_URL") or None,
            )
        else:
            urls = stack.enter_context(embedded_cluster())
        _migrate(urls.migrate)
        _check_catalog_once(urls.migrate)
        _say("starting services")
        waits: list[tuple[Running, str]] = []
        if urls.cms:
            simulator = stack.enter_context(
                _service(
                    "cms_simulator",
                    "cms_simulator",
                    log_dir,
                    {"CMS_DATABASE_URL": urls.cms, "PORT": str(ports.cms), "HOST": "127.0.0.1"},
                )
            )
            waits.append((simulator, f"http://127.0.0.1:{ports.cms}/healthcheck"))
        hook_env = {"DATABASE_URL": urls.hook, "PORT": str(ports.sync), "NOTIFY_TOKEN": token}
        if urls.cms:
            hook_env |= {
                "CMS_URL": f"http://127.0.0.1:{ports.cms}",
                "PUBLIC_URL": f"http://127.0.0.1:{ports.sync}/notifications/{token}",
            }
        sync = stack.enter_context(_service("fragrance_sync", "hook", log_dir, hook_env))
        waits.append((sync, f"http://127.0.0.1:{ports.sync}/healthz"))
        library_url = None
        if urls.library:
            library = stack.enter_context(
                _service(
                    "smart_library",
                    "smart_library",
                    log_dir,
                    {"DATABASE_URL": urls.library, "PORT": str(ports.library)},
                )
            )
            library_url = f"http://127.0.0.1:{ports.library}"
            waits.append((library, library_url + "/"))
        down = [service.name for service, url in waits if not _wait_until_up(service, url)]
        if down:
            _say(f"{', '.join(down)} did not start (the reason is above); stopping everything")
            print(
                "    a port another program holds? stop it, or give make run others: "
                + " ".join(f"{PORT_VARIABLES[name]}=..." for name in down)
                + " make run"
            )
            return 1
        _guide(urls, ports, token, library_url is not None)
        _wait_for_signal(urls, library_url)
        _say("stopping services")
    return 0


if __name__ == "__main__":
    sys.exit(main())
