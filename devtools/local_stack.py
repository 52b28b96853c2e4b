"""The whole system on one machine: ``make run``.

Starts an embedded PostgreSQL cluster kept under the project folder (two
databases: the CMS's and the smart library's, both holding the same
generated catalog), applies the migrations, starts the CMS simulator, the
sync service (the hook, which registers itself as the CMS's listener with
its secret token) and the smart library stand-in, says where to look, and
shows a live status line until Ctrl-C, which stops everything in order: the
CMS simulator first, so no change it makes meets a sync service already gone.

The live line counts the rows the application sees in sync with the CMS: it
reads ``GET /fragrances`` from the smart library stand-in, as the
application does, and compares it with the CMS database (reachable here, in
development; production never reads it).

The seed's originals run beside it in place of ours. The CMS database is
``cms_database``, owned by ``cms_user`` with password ``cms_user_password``:
the login the seed's CMS has built in, which the simulator uses too.
``CMS_URL`` (the seed's CMS, started by you: it listens on 9090 itself)
starts no simulator: the hook registers with that CMS, as the listener
``PUBLIC_URL`` (by default ``http://127.0.0.1:<SYNC_PORT>/notifications/<token>``),
and make run waits a while for it to answer (the seed's CMS sleeps 30 s
before it serves), then goes on without it. ``SMART_LIBRARY_URL`` (the real
smart library, on 9099) starts no stand-in: the live line reads that one.
The guide printed at start gives the variables each original needs.

``DATABASE_URL`` pointing elsewhere skips the embedded cluster (then
``MIGRATE_DATABASE_URL`` is the owner's login for the migrations, the
simulator runs only when ``CMS_DATABASE_URL`` is set too, and the stand-in
only when ``SMART_LIBRARY_DATABASE_URL`` is).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
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
from hook.migrate import command_line
from hook.serve import port_taken

ROOT = Path(__file__).resolve().parent.parent
#: prctl(2)'s option: the signal the calling process gets when its parent dies.
PR_SET_PDEATHSIG = 1
DDL = ROOT / "deploy" / "initdb" / "10-smart-library.sql"
CATALOG = ROOT / "sql" / "catalog.sql"

#: The local default of docker-compose.yaml too; anything but a laptop sets NOTIFY_TOKEN.
DEFAULT_NOTIFY_TOKEN = "local-dev-token-change-me"

#: The login built into the seed's CMS (it takes no other): user, password, database.
#: The embedded cluster's CMS database is this one, and the simulator logs in as it too.
SEED_CMS_LOGIN = ("cms_user", "cms_user_password", "cms_database")

#: The embedded cluster's password of the smart library's read-only login (compose's
#: default), for the real smart library, which cannot log in without one.
SMART_LIBRARY_PASSWORD = "smart_library_password"

#: How long make run waits for a CMS of CMS_URL to answer before it goes on without it:
#: the seed's CMS sleeps 30 s after it starts before it serves.
EXTERNAL_CMS_WAIT = 120.0

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
    #: The embedded cluster: make run knows every login, and prints what the originals need.
    embedded: bool = False


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


def local_dir() -> Path:
    """``LOCAL_DIR``, by default the project's ``.local``: the cluster, the logs, the spool.

    Everything a make run writes lives here, so a test's stack (its own ``LOCAL_DIR``)
    touches nothing of the developer's.
    """
    return Path(os.environ.get("LOCAL_DIR", ROOT / ".local")).resolve()


def _cluster_dir() -> Path:
    base = local_dir()
    if os.geteuid() == 0 and not _traversable(base.parent):
        # As root the server runs as an unprivileged user, who must reach its data.
        base = relocated_cluster_base(base)
        print(f"(the project folder is private to root: cluster kept in {base})")
    base.mkdir(parents=True, exist_ok=True)
    return base / "postgres"


def _ensure_login(admin_url: str, name: str, password: str) -> None:
    """Create a login with this password, or give this password to an existing one that has none.

    A password the login has is left alone: ``make run`` once set the default
    at every start, and a developer who changed it found it changed back. One
    with none (``smart_library_login`` made by migration 0019 on a cluster
    migrated before make run made it) gets the default, which the real smart
    library needs to log in.
    """
    with psycopg.connect(admin_url, autocommit=True) as admin:
        row = admin.execute(
            "select rolpassword is null from pg_authid where rolname = %s", [name]
        ).fetchone()
        if row is None:
            statement = "create role {} login password {}"
        elif row[0]:
            statement = "alter role {} login password {}"
        else:
            return
        admin.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Literal(password)))


def _ensure_catalog_database(admin_url: str, url: str, name: str, owner: str = "postgres") -> None:
    """Create a database holding the contract's table and catalog, unless it exists.

    ``url``'s login creates the table, so it owns it (the CMS's login writes its catalog).
    """
    with psycopg.connect(admin_url, autocommit=True) as admin:
        exists = admin.execute("select 1 from pg_database where datname = %s", [name]).fetchone()
        if not exists:
            admin.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(name), sql.Identifier(owner)
                )
            )
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("select to_regclass('public.fragrances')").fetchone() == (None,):
            conn.execute(DDL.read_text())
            conn.execute(CATALOG.read_text())
            print(f"    {name}: table and 5,000-row catalog loaded")


def pg_cron_available() -> bool:
    """Whether this machine's PostgreSQL has pg_cron (``make run`` installs Debian's)."""
    return any(Path("/usr/share/postgresql").glob("*/extension/pg_cron.control"))


def _pg_cron_args() -> str:
    """Run the scheduled jobs as production does where it can: pg_cron in fragrancedb.

    Background workers, not connections: the jobs run as their owner with no
    login through ``pg_hba.conf``. Without pg_cron nothing runs them, and
    ``sync.health`` says so a day after their schedule.
    """
    if not pg_cron_available():
        return ""
    return (
        " -c shared_preload_libraries=pg_cron -c cron.database_name=fragrancedb"
        " -c cron.use_background_workers=on"
    )


def _ensure_pg_cron(url: str) -> None:
    """Create pg_cron where the server preloads it: a cluster migrated before keeps its jobs.

    The migration that creates it ran once; the code load at every deploy
    registers the jobs with it once it is here.
    """
    if not pg_cron_available():
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create extension if not exists pg_cron")


def _own_cluster_running(base_dir: Path, port: int) -> int | None:
    """The postmaster's pid when this folder's cluster runs on ``port``; else None."""
    try:
        lines = (base_dir / "data" / "postmaster.pid").read_text().splitlines()
        pid, its_port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    if its_port != port:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, as the server's own user
    return pid


@contextmanager
def embedded_cluster() -> Iterator[Urls]:
    """Start (or restart, reusing its data) the cluster under the project folder."""
    port = int(os.environ.get("LOCAL_PG_PORT", "55432"))
    base_dir = _cluster_dir()
    taken = port_taken("127.0.0.1", port)
    if taken:
        # Our server would fail to bind, and what holds the port would be taken for it:
        # another PostgreSQL there would get our databases and migrations.
        own = _own_cluster_running(base_dir, port)
        raise SystemExit(
            f"make run: cannot start PostgreSQL on 127.0.0.1:{port} ({taken}): "
            + (
                f"it is this folder's own cluster (pid {own}), still running: stop the make "
                "run that started it (Ctrl-C), or, if it was killed rather than stopped, the "
                f"cluster itself: kill -INT {own}"
                if own
                else "another program holds the port (another PostgreSQL, or a make run still "
                "running): stop it, or give make run another: LOCAL_PG_PORT=... make run"
            )
        )
    _say(f"PostgreSQL on 127.0.0.1:{port}, data in {base_dir}")
    server = ThrowawayPostgresql(
        base_dir=str(base_dir),
        port=port,
        postgres_args="-h 127.0.0.1 -c logging_collector=off" + _pg_cron_args(),
    )
    try:
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        smart = f"postgresql://postgres@127.0.0.1:{port}/fragrancedb"
        # The cluster trusts every login from 127.0.0.1 (initdb -A trust): these URLs need no
        # password, and the passwords below are what a program that sends one (the seed's
        # CMS, the real smart library) logs in with.
        cms_user, cms_password, cms_database = SEED_CMS_LOGIN
        cms = f"postgresql://{cms_user}@127.0.0.1:{port}/{cms_database}"
        _ensure_login(admin, cms_user, cms_password)
        # Before the migrations, as compose's init script does: migration 0019 keeps it.
        _ensure_login(admin, "smart_library_login", SMART_LIBRARY_PASSWORD)
        _ensure_catalog_database(admin, smart, "fragrancedb")
        _ensure_pg_cron(smart)
        _ensure_catalog_database(admin, cms, cms_database, owner=cms_user)
        yield Urls(
            migrate=smart,
            hook=f"postgresql://sync_hook_login@127.0.0.1:{port}/fragrancedb",
            cms=cms,
            library=f"postgresql://smart_library_login@127.0.0.1:{port}/fragrancedb",
            embedded=True,
        )
    finally:
        _say("stopping PostgreSQL")
        server.stop()


def _migrate(url: str) -> None:
    """Apply the migrations through the deploy's command, as ``make migrate`` does.

    Plain yoyo, pointed at a standby (a DATABASE_URL naming a replica), said
    "Database locked (run yoyo break-lock ...)" after 10 s; ``hook.migrate``
    asks the server first and says it is a standby.
    """
    _say("applying migrations")
    done = subprocess.run(
        command_line(url, ROOT / "migrations"),
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"make run: the migrations failed (exit status {done.returncode}): see above"
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
    #: Where this run's lines begin in the log, which earlier runs' lines precede.
    log_start: int = 0


@contextmanager
def _service(name: str, module: str, log_dir: Path, env: dict[str, str]) -> Iterator[Running]:
    """Run ``python -m module`` in its own session; stop it with SIGTERM on exit."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        log_start = log.tell()
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=functools.partial(_stop_with_parent, os.getpid()),
        )
    print(f"    {name}: pid {process.pid}, log {log_path}")
    running = Running(name, process, log_path, log_start)
    try:
        yield running
    finally:
        _stop_service(running)


def _stop_with_parent(parent: int) -> None:
    """In a service's child before exec: a TERM when make run dies, however it dies.

    Each service runs in a session of its own (a Ctrl-C is make run's to pass on, in
    order), so a make run killed outright (``kill -9``, the OOM killer) left them
    running and holding their ports. Linux only; elsewhere nothing changes.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # make run died before the line above: too late to be told
        os.kill(os.getpid(), signal.SIGTERM)


def _stop_service(service: Running) -> None:
    """SIGTERM, then SIGKILL after 15 s; nothing when it has stopped already."""
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(15)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


def _wait_until_up(service: Running, url: str, attempts: int = 300) -> bool:
    """Wait until ``url`` answers at all (even 503); False, with the reason, if it never does."""
    for _ in range(attempts):
        if service.process.poll() is not None:
            with service.log.open("rb") as log:
                log.seek(service.log_start)
                ours = log.read().decode(errors="replace")
            # This run's lines only: the log keeps earlier runs' above them.
            tail = ours.strip().splitlines()[-3:]
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
    _on_hangup(request_stop)
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


#: The ports the seed's originals listen on, hard-coded in them.
SEED_CMS_URL = "http://127.0.0.1:9090"
SEED_SMART_LIBRARY_URL = "http://127.0.0.1:9099"


def seed_cms_variables(cms_database_url: str) -> str:
    """What the seed's CMS reads to find the CMS database (its login is built in)."""
    parts = urlsplit(cms_database_url)
    return f"POSTGRES_HOST={parts.hostname} POSTGRES_PORT={parts.port or 5432}"


def fragrancedb_variables(library_database_url: str, password: str) -> str:
    """What the real smart library reads to log in as the stand-in's read-only login."""
    parts = urlsplit(library_database_url)
    values = {
        "FRAGRANCEDB_USERNAME": unquote(parts.username or ""),
        "FRAGRANCEDB_PASSWORD": password,
        "FRAGRANCEDB_HOST": parts.hostname or "localhost",
        "FRAGRANCEDB_PORT": str(parts.port or 5432),
        "FRAGRANCEDB_NAME": parts.path.lstrip("/"),
    }
    return " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())


@dataclass(frozen=True)
class Parts:
    """Which CMS and smart library this make run talks to, and whether it started them."""

    cms_url: str | None  # the CMS the hook registers with
    public_url: str | None  # the listener it registers
    simulator: bool  # cms_url is our simulator, started here
    library_url: str | None  # the smart library the live line reads
    stand_in: bool  # library_url is our stand-in, started here


def _guide(urls: Urls, ports: Ports, parts: Parts) -> None:
    """Say, once everything is up, what to look at."""
    _say("up; look at")
    if parts.library_url:
        whose = "as the application sees it" if parts.stand_in else "yours, SMART_LIBRARY_URL"
        print(f"    smart library ({whose}): {parts.library_url}/")
        print(f"        every row:  {parts.library_url}/fragrances")
    print(f"    sync status page:  http://127.0.0.1:{ports.sync}/status")
    print(f"    sync API:          http://127.0.0.1:{ports.sync}/docs")
    if parts.cms_url:
        print(f"    CMS listener:      {parts.public_url}")
        if parts.simulator:
            print(f"    CMS simulator:     {parts.cms_url}/docs")
        else:
            print(f"    CMS (yours, CMS_URL): {parts.cms_url}")
    print(f'    smart library database (owner): psql "{_shown(urls.migrate)}"')
    if urls.cms:
        print(f'    CMS database:      psql "{_shown(urls.cms)}"')
        print("    repair the CMS's unheard first change (rows in sync back to every row):")
        print(f"      {repair_command(urls.migrate, urls.cms)}")
    if urls.embedded and urls.cms and urls.library:
        if parts.simulator and parts.stand_in:
            print(
                "    the seed's originals in place of ours (docs/operations.md): stop this, run "
                f"CMS_URL={SEED_CMS_URL} SMART_LIBRARY_URL={SEED_SMART_LIBRARY_URL} make run, "
                "then start"
            )
        else:
            print("    the seed's originals log in with (docs/operations.md):")
        print(f"      the seed's CMS with         {seed_cms_variables(urls.cms)}")
        library = fragrancedb_variables(urls.library, SMART_LIBRARY_PASSWORD)
        print(f"      the real smart library with {library}")


def _wait_for_cms(cms_url: str, urls: Urls) -> None:
    """Wait a while for a CMS someone else starts; go on without it (the hook keeps trying)."""
    where = f": start it with {seed_cms_variables(urls.cms)}" if urls.cms else ""
    _say(
        f"waiting for your CMS at {cms_url} (CMS_URL) to answer{where} "
        f"(the seed's CMS serves 30 s after it starts); up to {EXTERNAL_CMS_WAIT:.0f} s"
    )
    deadline = time.monotonic() + EXTERNAL_CMS_WAIT
    while time.monotonic() < deadline:
        try:
            httpx.get(cms_url.rstrip("/") + "/healthcheck", timeout=5)
        except httpx.HTTPError:
            time.sleep(0.5)
            continue
        print("    the CMS answers; the sync service registers with it within seconds")
        return
    print(
        "    the CMS does not answer yet; going on: the sync service registers with it "
        "as soon as it does (it tries every 2 s)"
    )


#: The variable of make run that moves each service to another port.
PORT_VARIABLES = {
    "cms_simulator": "CMS_PORT",
    "fragrance_sync": "SYNC_PORT",
    "smart_library": "SMART_LIBRARY_PORT",
}


#: The field of ``Ports`` each service listens on.
PORT_FIELDS = {"cms_simulator": "cms", "fragrance_sync": "sync", "smart_library": "library"}


def _refuse_taken_ports(wanted: dict[str, int]) -> None:
    """Stop, naming the variable that moves it, when a port a service needs is held.

    Asked before any service starts: a service refused its port exits, but another
    program that answers there (another make run's, compose's) answered make run's
    wait for it, which said "up"; our sync service then registered itself as that
    other CMS's listener, and the other sync lost every change.
    """
    held = [
        f"make run: cannot listen on 127.0.0.1:{port} for {name} ({taken}): another program "
        f"holds the port (another make run, or docker compose's services): stop it, or give "
        f"make run another: {PORT_VARIABLES[name]}=... make run"
        for name, port in wanted.items()
        if (taken := port_taken("127.0.0.1", port))
    ]
    if held:
        raise SystemExit("\n".join(held))


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit():
        raise SystemExit(f"make run: {name} must be a port number, got {raw!r}")
    return int(raw)


def _spool_dir() -> str:
    """The sync service's spool: ``SPOOL_DIR`` if set (empty: none), else ``<LOCAL_DIR>/spool``.

    The service's own default, ``spool`` in the project, was every make run's: a
    test's sync service drained the developer's spool into the test's database. A
    spool left there by an earlier make run is kept in use, never orphaned.
    """
    if "SPOOL_DIR" in os.environ:
        return os.environ["SPOOL_DIR"]
    earlier = ROOT / "spool"
    if "LOCAL_DIR" not in os.environ and (earlier / "spool.sqlite3").exists():
        print(
            f"(the sync service's spool stays in {earlier}, where an earlier make run kept it; "
            f"make run now keeps it in {local_dir() / 'spool'}: move it there while make run "
            "is stopped)"
        )
        return str(earlier)
    return str(local_dir() / "spool")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _on_hangup(stop: Callable[..., None]) -> None:
    """Stop as on Ctrl-C when the terminal goes away (closed, or the ssh session lost).

    A hangup ended make run at once, and the cluster and the services, each in a
    session of its own, kept running and holding their ports. Its output goes to
    /dev/null from then on when it went to that terminal: a write to it would fail
    midway through stopping. Under ``nohup`` (hangups ignored) it keeps running.
    """
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        return

    def hangup(*args: object) -> None:
        for fd in (1, 2):
            if os.isatty(fd):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)
        stop(*args)

    signal.signal(signal.SIGHUP, hangup)


def main() -> int:
    """Run the whole system until Ctrl-C."""
    # Ctrl-C or a TERM before the live line (the cluster, the migrations, a
    # wait for a service) unwinds what was started: a TERM by default, or an
    # INT that a background job's shell set to be ignored, left the cluster
    # and the services running.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    _on_hangup(_interrupt)
    ports = Ports(
        sync=_port("SYNC_PORT", 9098),
        library=_port("SMART_LIBRARY_PORT", 9099),
        cms=_port("CMS_PORT", 9090),
    )
    token = os.environ.get("NOTIFY_TOKEN") or DEFAULT_NOTIFY_TOKEN
    # The seed's originals, started by someone else: neither simulator nor stand-in then.
    external_cms = (os.environ.get("CMS_URL") or "").rstrip("/") or None
    external_library = (os.environ.get("SMART_LIBRARY_URL") or "").rstrip("/") or None
    log_dir = local_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    spool_dir = _spool_dir()
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
        starts = {
            "cms_simulator": bool(urls.cms and not external_cms),
            "fragrance_sync": True,
            "smart_library": bool(urls.library and not external_library),
        }
        _refuse_taken_ports(
            {name: getattr(ports, PORT_FIELDS[name]) for name in starts if starts[name]}
        )
        _say("starting services")
        waits: list[tuple[Running, str]] = []
        simulator: Running | None = None
        cms_url = external_cms
        if starts["cms_simulator"]:
            cms_url = f"http://127.0.0.1:{ports.cms}"
            simulator = stack.enter_context(
                _service(
                    "cms_simulator",
                    "cms_simulator",
                    log_dir,
                    {"CMS_DATABASE_URL": urls.cms, "PORT": str(ports.cms), "HOST": "127.0.0.1"},
                )
            )
            waits.append((simulator, f"{cms_url}/healthcheck"))
        public_url = None
        if cms_url:
            public_url = (
                os.environ.get("PUBLIC_URL")
                or f"http://127.0.0.1:{ports.sync}/notifications/{token}"
            )
        hook_env = {
            "DATABASE_URL": urls.hook,
            "PORT": str(ports.sync),
            "NOTIFY_TOKEN": token,
            # Both or neither (the hook refuses one alone), whatever the outer environment says.
            "CMS_URL": cms_url or "",
            "PUBLIC_URL": public_url or "",
            "SPOOL_DIR": spool_dir,
        }
        sync = stack.enter_context(_service("fragrance_sync", "hook", log_dir, hook_env))
        waits.append((sync, f"http://127.0.0.1:{ports.sync}/healthz"))
        library_url = external_library
        if starts["smart_library"]:
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
        if external_cms:
            _wait_for_cms(external_cms, urls)
        parts = Parts(
            cms_url=cms_url,
            public_url=public_url,
            simulator=cms_url is not None and not external_cms,
            library_url=library_url,
            stand_in=library_url is not None and not external_library,
        )
        _guide(urls, ports, parts)
        _wait_for_signal(urls, library_url)
        _say("stopping services")
        # The CMS first: a change it made while the sync service was stopping met a
        # closed port and was lost for good (it never retries), one more row out of sync.
        if simulator is not None:
            _stop_service(simulator)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C before the live line (a wait for a service): main's ExitStack
        # has stopped what it started by now; a traceback would say it failed.
        _say("stopped before everything was up")
        sys.exit(130)
