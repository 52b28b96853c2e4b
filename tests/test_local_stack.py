"""make run: the whole world comes up, syncs, reuses its data, and stops leaving nothing behind."""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import psycopg
import pytest
from conftest import ROOT, Server, load_smart_library, run_yoyo
from processes import (
    free_port,
    port_held,
    start_service,
    start_smart_library,
    stop_service,
    wait_for_ticks,
)
from psycopg import sql

from cms_simulator import journal
from devtools import local_stack
from devtools.local_stack import (
    DEFAULT_NOTIFY_TOKEN,
    SEED_CMS_LOGIN,
    application_view_in_sync,
    embedded_cluster,
    pg_cron_available,
    relocated_cluster_base,
)
from devtools.throwaway_pg import ThrowawayPostgresql, ThrowawayStandby

#: make run's own variables; an outer value of any of them would change what it starts.
OWN_VARIABLES = (
    "DATABASE_URL",
    "MIGRATE_DATABASE_URL",
    "CMS_DATABASE_URL",
    "SMART_LIBRARY_DATABASE_URL",
    "NOTIFY_TOKEN",
    "PORT",
    "CMS_URL",
    "SMART_LIBRARY_URL",
    "PUBLIC_URL",
)


@dataclass
class Stack:
    """A running ``make run`` and where its parts listen."""

    process: subprocess.Popen[bytes]
    out: Path
    pg: int
    sync: int
    library: int
    cms: int
    local_dir: Path

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def ports(self) -> tuple[int, ...]:
        return (self.pg, self.sync, self.library, self.cms)


def _start(local_dir: Path, out: Path, ports: tuple[int, int, int, int], **extra: str) -> Stack:
    pg, sync, library, cms = ports
    env = {
        **{k: v for k, v in os.environ.items() if k not in OWN_VARIABLES},
        "LOCAL_DIR": str(local_dir),
        "LOCAL_PG_PORT": str(pg),
        "SYNC_PORT": str(sync),
        "SMART_LIBRARY_PORT": str(library),
        "CMS_PORT": str(cms),
        # The simulator's own settings: only the first change, the one nobody hears.
        "INTERVAL_MIN": "3600",
        "INTERVAL_MAX": "3600",
        **extra,
    }
    with out.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.local_stack"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Stack(process, out, *ports, local_dir=local_dir)


def _wait_for_output(stack: Stack, text: str) -> str:
    """Until make run has printed ``text``; its output so far."""
    for _ in range(1200):
        if stack.process.poll() is not None:
            pytest.fail(f"make run exited early:\n{stack.output()}")
        if text in (output := stack.output()):
            return output
        time.sleep(0.1)
    pytest.fail(f"make run never printed {text!r}:\n{stack.output()}")


def _wait_until_up(stack: Stack) -> None:
    """Until make run has said where to look (it does once every service answers)."""
    _wait_for_output(stack, "sync.repair()")


def _registered_listener(cms_port: int) -> str | None:
    """The CMS's listener once the hook has registered (it retries until the CMS is up)."""
    listener = None
    for _ in range(300):
        state = httpx.get(f"http://127.0.0.1:{cms_port}/", timeout=5).json()["simulator"]
        if (listener := state["listener"]) is not None:
            break
        time.sleep(0.1)
    return listener


def _stop(stack: Stack) -> str:
    stack.process.send_signal(signal.SIGINT)
    stack.process.wait(60)
    return stack.output()


def _listening(*ports: int) -> list[int]:
    """The ports among ``ports`` that something still accepts connections on."""
    alive = []
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                alive.append(port)
    return alive


def _last_status_line(output: str) -> str:
    return [line for line in re.split(r"[\r\n]", output) if line.startswith("received ")][-1]


def _psql() -> str:
    found = shutil.which("psql") or next(iter(glob.glob("/usr/lib/postgresql/*/bin/psql")), None)
    assert found, "psql is missing: `make test` installs PostgreSQL, which brings it"
    return found


def _run_printed_repair(output: str) -> None:
    """Run the repair one-liner exactly as make run printed it."""
    (line,) = [line.strip() for line in output.splitlines() if "sync.repair()" in line]
    argv = shlex.split(line)
    assert argv[0] == "psql"
    done = subprocess.run([_psql(), *argv[1:]], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    """Stacks a test started: any still running when it ends (a failed assertion) is stopped."""
    started: list[Stack] = []
    yield started
    for stack in started:
        if stack.process.poll() is None:
            _stop(stack)
        # As root, a private LOCAL_DIR's cluster lives in /var/tmp: 85 MB a test otherwise.
        shutil.rmtree(relocated_cluster_base(stack.local_dir.resolve()), ignore_errors=True)


def test_make_run_serves_syncs_repairs_restarts_on_its_data_and_stops_cleanly(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    local_dir = tmp_path / "local"
    ports = (free_port(), free_port(), free_port(), free_port())
    cms_db = f"postgresql://postgres@127.0.0.1:{ports[0]}/cms_database"

    stack = _start(local_dir, tmp_path / "first.out", ports)
    stacks.append(stack)
    _wait_until_up(stack)
    sync, library = f"http://127.0.0.1:{stack.sync}", f"http://127.0.0.1:{stack.library}"
    # The sync service has its own port and takes deliveries on its secret path only.
    assert httpx.post(sync + "/notifications", content=b"{}").status_code == 404
    answer = httpx.post(
        f"{sync}/notifications/{DEFAULT_NOTIFY_TOKEN}",
        content=b'{"fragrance_id": 5, "cost": 99.9}',
    )
    assert (answer.status_code, answer.json()["status"]) == (202, "pending")
    assert _registered_listener(stack.cms) == f"{sync}/notifications/{DEFAULT_NOTIFY_TOKEN}"
    # The smart library stand-in, on its own port, serves the synced value as the app sees it
    # once the sync service has applied it, right after its answer.
    assert httpx.get(library + "/").text == "I'm the smart library!"
    deadline = time.monotonic() + 20
    while httpx.get(library + "/fragrance/5").json()["cost"] != 99:
        assert time.monotonic() < deadline, "the delivery was never applied"
        time.sleep(0.05)
    in_sync, total = application_view_in_sync(library, cms_db)
    assert total == 5000 and in_sync < total  # the CMS's first change, and our cost 99.9
    _run_printed_repair(stack.output())
    assert application_view_in_sync(library, cms_db) == (5000, 5000)
    # The status page shows what the drift check the one-liner ends with found.
    assert "<dd>5000/5000<small>" in httpx.get(sync + "/status").text
    # A refused change a DBA writes off, as the runbook says, for the live line below.
    refused = httpx.post(
        f"{sync}/notifications/{DEFAULT_NOTIFY_TOKEN}", content=b'{"fragrance_id": 5, "cost": -1}'
    ).json()["inbox_id"]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{stack.pg}/fragrancedb") as dba:
        while dba.execute("select status from sync.inbox where id = %s", [refused]).fetchone() != (
            "rejected",
        ):
            assert time.monotonic() < deadline + 20, "the refused change was never judged"
            time.sleep(0.05)
        dba.execute("select sync.discard(%s, 'a test of the live line')", [refused])
    first = _stop(stack)
    assert "5,000-row catalog loaded" in first
    # The adopted catalog is judged once, so the status page's findings cover it.
    assert "checking the adopted catalog against the data rules (once)" in first
    for where in (f"{library}/fragrances", f"{sync}/status", f"{sync}/docs"):
        assert where in first
    assert f'psql "postgresql://postgres@127.0.0.1:{stack.pg}/fragrancedb"' in first
    final = _last_status_line(first)
    assert final.rstrip().endswith("rows in sync 5000/5000")
    # Its columns add up: every delivery received is in one of them, the discarded too.
    counts = {k: int(v) for k, v in re.findall(r"([a-z]+) (\d+) \|", final)}
    assert counts.pop("received") == sum(counts.values()) > 0
    assert _listening(*stack.ports()) == []

    again = _start(local_dir, tmp_path / "second.out", ports)
    stacks.append(again)
    _wait_until_up(again)
    second = _stop(again)
    assert "catalog loaded" not in second  # the second run reuses the data
    assert "checking the adopted catalog" not in second
    received = final.split(" |")[0]
    assert received != "received 0" and _last_status_line(second).startswith(received + " |")
    assert _listening(*again.ports()) == []


def test_make_run_stops_the_cms_before_the_sync_so_ctrl_c_loses_no_change(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """Ctrl-C stops the CMS first, then the sync service, which applies what it stored.

    It stopped the sync service first and the CMS last: a change the CMS made
    meanwhile met a closed port and was lost for good (14 at a tick every 50 ms),
    one more row out of sync at the next start.
    """
    log = tmp_path / "journal.jsonl"
    ports = (free_port(), free_port(), free_port(), free_port())
    stack = _start(
        tmp_path / "local",
        tmp_path / "ticking.out",
        ports,
        # A change every 50 ms, so one falls into any window where nobody listens.
        INTERVAL_MIN="0.05",
        INTERVAL_MAX="0.05",
        JOURNAL=str(log),
    )
    stacks.append(stack)
    _wait_until_up(stack)
    deadline = time.monotonic() + 60
    # Counted in the text: a line the simulator is writing may be read half written.
    while not log.exists() or log.read_text().count('"outcome": "answered"') < 5:
        assert time.monotonic() < deadline, "the CMS never delivered"
        time.sleep(0.1)
    _stop(stack)
    entries = journal.read(log)
    # Changes made before the sync registered had no listener (at 20 s a tick, only the
    # first); from its first delivery on, every change the CMS made reached the sync.
    first = next(i for i, e in enumerate(entries) if e["outcome"] == "answered")
    sent = entries[first:]
    assert [e for e in sent if e["outcome"] != "answered" or e["status"] != 202] == []
    assert len(sent) >= 5


def test_make_run_stops_everything_when_its_terminal_hangs_up(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """Closing its terminal (or losing the ssh session) sends a hangup, not a Ctrl-C.

    make run died at once: the cluster and the services, each in a session of
    its own, kept running and holding their ports, and the next make run said
    another program held 55432.
    """
    ports = (free_port(), free_port(), free_port(), free_port())
    stack = _start(tmp_path / "local", tmp_path / "hangup.out", ports)
    stacks.append(stack)
    _wait_until_up(stack)
    _wait_for_output(stack, "running; Ctrl-C")
    stack.process.send_signal(signal.SIGHUP)
    status = stack.process.wait(60)
    assert status == 0, stack.output()
    assert _listening(*stack.ports()) == []


def test_make_run_killed_outright_leaves_no_service_and_says_how_to_stop_its_cluster(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """A make run killed outright (``kill -9``, the OOM killer) cannot stop what it started.

    Its services, each in a session of its own, kept running and holding their
    ports; the next make run said only that another program held 55432, with no
    word of which. The services now stop with it; its cluster, which must be
    stopped last, is named with the command that stops it.
    """
    local_dir = tmp_path / "local"
    ports = (free_port(), free_port(), free_port(), free_port())
    stack = _start(local_dir, tmp_path / "killed.out", ports)
    stacks.append(stack)
    _wait_until_up(stack)
    (data,) = re.findall(r"data in (\S+)", stack.output())
    postmaster = int((Path(data) / "data" / "postmaster.pid").read_text().split()[0])
    stack.process.kill()
    stack.process.wait()
    try:
        deadline = time.monotonic() + 120
        while _listening(stack.sync, stack.library, stack.cms):
            assert time.monotonic() < deadline, "the services outlived their make run"
            time.sleep(0.2)
        again = _start(local_dir, tmp_path / "again.out", ports)
        stacks.append(again)
        assert again.process.wait(120) == 1, again.output()
        assert f"kill -INT {postmaster}" in again.output()
    finally:
        os.kill(postmaster, signal.SIGINT)
    deadline = time.monotonic() + 60
    while _listening(stack.pg):
        assert time.monotonic() < deadline, "the cluster did not stop"
        time.sleep(0.2)


def test_make_run_schedules_the_jobs_with_pg_cron_as_production_does(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """Without pg_cron nothing ran the purge, the catalog check or the drift check.

    A stack left up for days grew its inbox, and sync.health warned that the
    jobs never ran. pg_cron runs them in background workers: no login
    through pg_hba.conf.
    """
    assert pg_cron_available(), "make run installs pg_cron (postgresql-15-cron)"
    ports = (free_port(), free_port(), free_port(), free_port())
    stack = _start(tmp_path / "local", tmp_path / "cron.out", ports)
    stacks.append(stack)
    _wait_until_up(stack)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{stack.pg}/fragrancedb") as dba:
        scheduled = dba.execute(
            "select job, scheduled_by from sync.schedule() order by job"
        ).fetchall()
        workers = dba.execute("show cron.use_background_workers").fetchone()
    assert scheduled == [
        (job, f"pg_cron (fragrance_sync.{job})")
        for job in ("check_catalog", "check_drift", "purge_inbox")
    ]
    assert workers == ("on",)
    _stop(stack)


def test_make_run_stops_when_a_port_is_taken_and_names_the_variable_that_moves_it(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """Left running without its CMS, it showed a live line that never moved."""
    ports = (free_port(), free_port(), free_port(), free_port())
    with port_held(ports[3]):
        stack = _start(tmp_path / "local", tmp_path / "taken.out", ports)
        stacks.append(stack)
        status = stack.process.wait(300)
        output = stack.output()
    assert status == 1, output
    assert f"cannot listen on 127.0.0.1:{ports[3]}" in output
    assert "CMS_PORT=... make run" in output
    assert "running; Ctrl-C" not in output
    assert _listening(*ports) == []


def test_make_run_keeps_its_logs_and_spool_under_local_dir_and_quotes_only_its_own_lines(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """Its logs and spool went to the project's folder, whatever ``LOCAL_DIR`` said.

    Every make run wrote its services' logs to ``.local/logs`` and its spool to
    ``spool/``: the tests' stacks appended to the developer's logs, and their sync services opened
    the developer's spool: a test's hook would drain deliveries the developer's make run
    had spooled into the test's database. And a service that failed to start was
    explained with the last lines of a log shared with earlier runs, quoting another
    process's lines beside its own.
    """
    local_dir = tmp_path / "local"
    ports = (free_port(), free_port(), free_port(), free_port())
    stack = _start(local_dir, tmp_path / "first.out", ports)
    stacks.append(stack)
    _wait_until_up(stack)
    output = _stop(stack)
    logs = local_dir.resolve() / "logs"
    for name in ("cms_simulator", "fragrance_sync", "smart_library"):
        assert f"    {name}: pid " in output and f", log {logs / name}.log\n" in output, output
        assert (logs / f"{name}.log").read_text().strip(), name
    assert (local_dir / "spool" / "spool.sqlite3").exists(), output

    # Started again on the same folder, the CMS simulator refuses a setting at once.
    again = _start(local_dir, tmp_path / "second.out", ports, INTERVAL_MIN="soon")
    stacks.append(again)
    assert again.process.wait(300) == 1, again.output()
    (exited,) = [line for line in again.output().splitlines() if "cms_simulator exited" in line]
    # The one line this run wrote, not the first run's last lines above it in the log.
    (line,) = (logs / "cms_simulator.log").read_text().splitlines()[-1:]
    assert "INTERVAL_MIN" in line
    assert exited == f"    cms_simulator exited (2): {line}"
    assert _listening(*ports) == []


def test_a_spool_an_earlier_make_run_left_in_the_project_stays_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spool moved to ``<LOCAL_DIR>/spool``; one make run left in ``spool/`` stays in use.

    Deliveries spooled there before the move would otherwise never be stored.
    """
    monkeypatch.setattr(local_stack, "ROOT", tmp_path)
    monkeypatch.delenv("LOCAL_DIR", raising=False)
    monkeypatch.delenv("SPOOL_DIR", raising=False)
    assert local_stack._spool_dir() == str(tmp_path / ".local" / "spool")
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "spool.sqlite3").touch()
    assert local_stack._spool_dir() == str(tmp_path / "spool")
    assert "move it there while make run is stopped" in capsys.readouterr().out
    # A test's stack (its own LOCAL_DIR) never opens it; SPOOL_DIR decides over both.
    monkeypatch.setenv("LOCAL_DIR", str(tmp_path / "test"))
    assert local_stack._spool_dir() == str(tmp_path / "test" / "spool")
    monkeypatch.setenv("SPOOL_DIR", "")
    assert local_stack._spool_dir() == ""


@contextmanager
def _answering_server(port: int) -> Iterator[list[str]]:
    """Another program's web server on ``port`` (another make run's, compose's): 200 to all.

    Yields the requests it was sent, as ``"METHOD /path"``.
    """
    seen: list[str] = []

    class Answer(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer()

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("taken", [1, 2, 3], ids=["sync", "smart-library", "cms"])
def test_make_run_refuses_a_service_port_another_web_server_answers_on(
    tmp_path: Path, stacks: list[Stack], taken: int
) -> None:
    """A port held by a program that answers HTTP was taken for our service.

    Our service exited at once (its port taken), but make run asked the port, got
    the other program's answer and said "up": with the CMS's port held by another
    make run's simulator (or compose's, which publishes 9090 too), our sync service
    registered itself as that CMS's listener, and the other sync lost every change.
    """
    ports = (free_port(), free_port(), free_port(), free_port())
    with _answering_server(ports[taken]) as seen:
        stack = _start(tmp_path / "local", tmp_path / "taken.out", ports)
        stacks.append(stack)
        status = stack.process.wait(300)
        output = stack.output()
    assert status == 1, output
    assert f"cannot listen on 127.0.0.1:{ports[taken]}" in output
    variable = {1: "SYNC_PORT", 2: "SMART_LIBRARY_PORT", 3: "CMS_PORT"}[taken]
    assert f"{variable}=... make run" in output
    assert "up; look at" not in output
    assert [request for request in seen if request.startswith("POST")] == []
    assert _listening(*ports) == []


def test_make_run_refuses_a_postgresql_port_already_taken(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """Its server failed to bind, and make run went on with what held the port.

    Another PostgreSQL there would have got our databases and migrations; a program
    that accepts and never answers held make run forever.
    """
    ports = (free_port(), free_port(), free_port(), free_port())
    with port_held(ports[0]):
        stack = _start(tmp_path / "local", tmp_path / "taken.out", ports)
        stacks.append(stack)
        try:
            status = stack.process.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make run hung on a taken port:\n{stack.output()}")
        output = stack.output()
    assert status != 0, output
    assert f"cannot start PostgreSQL on 127.0.0.1:{ports[0]}" in output
    assert "LOCAL_PG_PORT=... make run" in output
    assert not (tmp_path / "local" / "postgres" / "data").exists()


def _printed_variables(output: str, first: str) -> dict[str, str]:
    """The NAME=value words of the line of make run's output that holds ``first``=."""
    (line,) = [line for line in output.splitlines() if f" {first}=" in line]
    found = re.findall(r"\b([A-Z][A-Z_]+)=('[^']*'|\S+)", line)
    return {name: shlex.split(value)[0] for name, value in found}


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "term", "hangup"]
)
def test_make_run_stopped_while_it_waits_for_a_cms_stops_what_it_started(
    tmp_path: Path, stacks: list[Stack], signum: signal.Signals
) -> None:
    """Stopped before the live line, it left the cluster and the services running.

    A TERM ended the process at once, its services orphaned; a Ctrl-C ended
    in a traceback. The wait for a CMS someone else starts lasts minutes,
    which is when a person gives up and stops it.
    """
    ports = (free_port(), free_port(), free_port(), free_port())
    stack = _start(
        tmp_path / "local",
        tmp_path / "stopped.out",
        ports,
        CMS_URL=f"http://127.0.0.1:{free_port()}",
    )
    stacks.append(stack)
    _wait_for_output(stack, "waiting for your CMS")
    assert _listening(ports[0], ports[1]) == [ports[0], ports[1]]
    stack.process.send_signal(signum)
    status = stack.process.wait(60)
    output = stack.output()
    assert status == 130, output
    assert "stopped before everything was up" in output
    assert "Traceback" not in output
    assert _listening(*ports) == []


def test_make_run_syncs_a_cms_and_a_smart_library_started_beside_it(
    tmp_path: Path, stacks: list[Stack]
) -> None:
    """CMS_URL and SMART_LIBRARY_URL: make run hosts the seed's originals in place of its own.

    Our simulator and stand-in play the originals here, each started by the
    test as a person would start the seed's, from the values make run prints:
    the CMS from POSTGRES_HOST and POSTGRES_PORT with the seed CMS's built-in
    login, the smart library from FRAGRANCEDB_*, joined as the real one joins them.
    """
    ports = (free_port(), free_port(), free_port(), free_port())
    theirs_cms, theirs_library = free_port(), free_port()
    stack = _start(
        tmp_path / "local",
        tmp_path / "beside.out",
        ports,
        CMS_URL=f"http://127.0.0.1:{theirs_cms}",
        SMART_LIBRARY_URL=f"http://127.0.0.1:{theirs_library}",
    )
    stacks.append(stack)
    started = []
    try:
        # make run waits for the CMS, which someone else starts once the database is up.
        waiting = _wait_for_output(stack, "waiting for your CMS")
        postgres = _printed_variables(waiting, "POSTGRES_HOST")
        user, password, database = SEED_CMS_LOGIN
        cms_db = (
            f"postgresql://{user}:{password}@{postgres['POSTGRES_HOST']}:"
            f"{postgres['POSTGRES_PORT']}/{database}"
        )
        cms = start_service(
            "cms_simulator",
            tmp_path,
            "/healthcheck",
            theirs_cms,
            CMS_DATABASE_URL=cms_db,
            INTERVAL_MIN="0",
            INTERVAL_MAX="0",
            COUNT="2",  # the first change, nobody hears; the second, the sync does
            WAIT_FOR_LISTENER="true",
            SEED="7",
            JOURNAL=str(tmp_path / "journal.jsonl"),
        )
        started.append(cms)
        guide = _wait_for_output(stack, "sync.repair()")
        db = _printed_variables(guide, "FRAGRANCEDB_USERNAME")
        library = start_smart_library(
            "postgresql://{}:{}@{}:{}/{}".format(
                quote_plus(db["FRAGRANCEDB_USERNAME"]),
                quote_plus(db["FRAGRANCEDB_PASSWORD"]),
                db["FRAGRANCEDB_HOST"],
                db["FRAGRANCEDB_PORT"],
                db["FRAGRANCEDB_NAME"],
            ),
            tmp_path,
            theirs_library,
        )
        started.append(library)
        assert db["FRAGRANCEDB_USERNAME"] == "smart_library_login"
        # Neither make run's own simulator nor its stand-in was started.
        assert "cms_simulator: pid" not in guide and "smart_library: pid" not in guide
        assert _listening(stack.cms, stack.library) == []
        assert (
            _registered_listener(theirs_cms)
            == f"http://127.0.0.1:{stack.sync}/notifications/{DEFAULT_NOTIFY_TOKEN}"
        )
        wait_for_ticks(cms, 2)
        (sent,) = [e for e in journal.read(tmp_path / "journal.jsonl") if e["tick"] == 2]
        assert (sent["outcome"], sent["status"]) == ("answered", 202)
        change = json.loads(journal.body_bytes(sent))
        fragrance_id = change.pop("fragrance_id")
        owner = f"postgresql://postgres@127.0.0.1:{stack.pg}/fragrancedb"
        with psycopg.connect(owner, autocommit=True) as conn:
            query = "select row_to_json(f) from public.fragrances as f where fragrance_id = %s"
            deadline = time.monotonic() + 20
            while not change.items() <= conn.execute(query, [fragrance_id]).fetchone()[0].items():
                assert time.monotonic() < deadline, "the CMS's change never reached fragrances"
                time.sleep(0.05)
        served = httpx.get(f"{library.url}/fragrance/{fragrance_id}").json()
        assert {k: served[k] for k in change} == change
        # Nothing changes any more (the CMS made its two changes, both are applied): the
        # live line, read from the library started beside make run against the CMS
        # database, says what the application sees.
        in_sync, total = application_view_in_sync(library.url, cms_db)
        final = _last_status_line(_stop(stack))
        assert final.rstrip().endswith(f"rows in sync {in_sync}/{total}") and total == 5000
    finally:
        for service in started:
            stop_service(service)
    assert _listening(*stack.ports()) == []


def _scram_verifies(verifier: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 verifier of pg_authid is that of ``password`` (RFC 5802)."""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    expected = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    return method == "SCRAM-SHA-256" and hmac.compare_digest(expected, stored_key)


def test_the_seeds_cms_login_reads_and_writes_its_catalog_over_tcp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's CMS logs in as cms_user, cms_user_password, cms_database, and no other way.

    make run's cluster holds that login, owner of the CMS's catalog (the same
    catalog as the smart library's), and takes it over TCP on 127.0.0.1. The
    cluster trusts local logins; the password stored is the seed's, so a
    server that asks for it gets it.
    """
    port = free_port()
    local_dir = tmp_path / "local"
    monkeypatch.setenv("LOCAL_DIR", str(local_dir))
    monkeypatch.setenv("LOCAL_PG_PORT", str(port))
    user, password, database = SEED_CMS_LOGIN
    rows = "select md5(string_agg(f::text, ',' order by fragrance_id)) from public.fragrances f"
    try:
        with embedded_cluster():
            seed = f"host=127.0.0.1 port={port} user={user} password={password} dbname={database}"
            with psycopg.connect(seed) as cms:
                assert cms.execute("select host(inet_server_addr())").fetchone() == ("127.0.0.1",)
                assert cms.execute("select count(*) from public.fragrances").fetchone() == (5000,)
                catalog = cms.execute(rows).fetchone()
                # It writes its catalog, as the CMS does on every change.
                cms.execute("update public.fragrances set forbidden = not forbidden")
                cms.rollback()
            admin = f"postgresql://postgres@127.0.0.1:{port}"
            with psycopg.connect(f"{admin}/fragrancedb") as smart:
                assert smart.execute(rows).fetchone() == catalog
            with psycopg.connect(f"{admin}/postgres") as conn:
                (verifier,) = conn.execute(
                    "select rolpassword from pg_authid where rolname = %s", [user]
                ).fetchone()
            assert _scram_verifies(verifier, password)
            assert not _scram_verifies(verifier, password + "x")
    finally:
        shutil.rmtree(relocated_cluster_base(local_dir.resolve()), ignore_errors=True)


def test_make_run_keeps_the_passwords_a_developer_gave_its_logins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CMS's and the smart library's logins get the defaults when made, not at every start."""
    port = free_port()
    local_dir = tmp_path / "local"
    monkeypatch.setenv("LOCAL_DIR", str(local_dir))
    monkeypatch.setenv("LOCAL_PG_PORT", str(port))
    logins = ["cms_user", "smart_library_login"]
    verifiers = "select rolname, rolpassword from pg_authid where rolname = any (%s) order by 1"
    admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        with embedded_cluster(), psycopg.connect(admin, autocommit=True) as conn:
            for login in logins:
                conn.execute(
                    sql.SQL("alter role {} password 'changed by a developer'").format(
                        sql.Identifier(login)
                    )
                )
            changed = conn.execute(verifiers, [logins]).fetchall()
        # make run again, on the same data
        with embedded_cluster(), psycopg.connect(admin) as conn:
            assert conn.execute(verifiers, [logins]).fetchall() == changed
        assert all(_scram_verifies(v, "changed by a developer") for _, v in changed)
    finally:
        shutil.rmtree(relocated_cluster_base(local_dir.resolve()), ignore_errors=True)


def test_make_run_against_a_standby_says_to_deploy_against_the_primary(tmp_path: Path) -> None:
    """`make run` migrated with plain yoyo: a standby's DATABASE_URL read "Database locked".

    No lock was held; the deploy's command (hook.migrate) says what the server is.
    """
    primary = ThrowawayPostgresql()
    standby: ThrowawayStandby | None = None
    try:
        load_smart_library(Server(primary), "test")
        run_yoyo(Server(primary), "test", "apply")
        standby = ThrowawayStandby(primary)
        env = {
            **{k: v for k, v in os.environ.items() if k not in OWN_VARIABLES},
            "LOCAL_DIR": str(tmp_path),
            "DATABASE_URL": Server(standby).url("test"),
        }
        done = subprocess.run(
            [sys.executable, "-m", "devtools.local_stack"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert (
            "this server is a standby (read-only, in recovery): deploy against the primary"
            in output
        ), output
        assert "Database locked" not in output
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
