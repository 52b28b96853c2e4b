"""A PostgreSQL server we start ourselves (tests, local stack), safe to start as root.

testing.postgresql runs ``initdb`` and ``postgres`` as the current user, and
both refuse to run as root. When we are root, the data directory is handed to
an unprivileged OS user and both programs are started as that user through
``setpriv``, which execs in place, so the server's pid is still ours to signal.

For failover tests, ``ThrowawayStandby`` clones a running server with
``pg_basebackup -R`` and streams from it; the primary can be made to wait
for it on every commit (``require_synchronous_standby``), be crashed
(``crash``), and the standby promoted (``promote``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import testing.postgresql
from psycopg import sql

#: OS user that owns and runs the server when the tests run as root.
UNPRIVILEGED_USER = os.environ.get("PGTEST_OS_USER", "postgres")


def _unprivileged_account() -> pwd.struct_passwd:
    """The account to run PostgreSQL as when we are root."""
    for name in (UNPRIVILEGED_USER, "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(
        f"running as root, but neither {UNPRIVILEGED_USER!r} nor 'nobody' exists to run "
        "PostgreSQL; create one or set PGTEST_OS_USER to an unprivileged user"
    )


class ThrowawayPostgresql(testing.postgresql.Postgresql):
    """testing.postgresql's server, demoted to an unprivileged user under root."""

    def initialize(self) -> None:
        """Find the programs, and the account to run them as when we are root."""
        super().initialize()
        self._account = _unprivileged_account() if os.geteuid() == 0 else None

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if self._account is None:
            return argv
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        return [
            setpriv,
            f"--reuid={self._account.pw_uid}",
            f"--regid={self._account.pw_gid}",
            "--clear-groups",
            "--",
            *argv,
        ]

    def _hand_over_base_dir(self) -> None:
        if self._account is None:
            return
        for root, dirs, files in os.walk(self.base_dir):
            for entry in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(entry, self._account.pw_uid, self._account.pw_gid)

    def initialize_database(self) -> None:
        """Run initdb (as the unprivileged account under root) unless the data exists."""
        self._hand_over_base_dir()
        data_dir = os.path.join(self.base_dir, "data")
        if os.path.exists(os.path.join(data_dir, "PG_VERSION")):
            return
        argv = self._as_server_user(
            [self.initdb, "-D", data_dir, "--lc-messages=C", "-E", "UTF8", "--no-sync"]
            + self.settings["initdb_args"].split()
        )
        done = subprocess.run(argv, capture_output=True, cwd=self.base_dir, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
            )

    def get_server_commandline(self) -> list[str]:
        """The postgres command, in its own session and as the right user."""
        # setsid: a Ctrl-C meant for our parent must not stop the server
        # before the processes that use it; the parent stops it last.
        detach = [setsid] if (setsid := shutil.which("setsid")) else []
        return detach + self._as_server_user(super().get_server_commandline())

    def start(self) -> None:
        """Start the server once its directory belongs to the account running it."""
        # The log file is created by start(); the server only inherits its fd.
        self._hand_over_base_dir()
        super().start()

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        """An autocommit superuser connection to one database of this server."""
        port = self.settings["port"]
        return psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/{dbname}", autocommit=True)

    def crash(self, timeout: float = 60.0) -> None:
        """Stop at once, as a crash would: ``pg_ctl stop -m immediate`` (SIGQUIT).

        The postmaster kills every backend and exits without a checkpoint, so
        no session survives it (a SIGKILL of the postmaster alone would leave
        its backends serving the connections they hold). testing.postgresql's
        ``terminate`` always sends SIGINT (a fast shutdown), hence our own.
        """
        if self.child_process is None:
            return
        self.child_process.send_signal(signal.SIGQUIT)
        self.child_process.wait(timeout)
        self.child_process = None

    def allow_replication(self) -> None:
        """Let standbys on 127.0.0.1 stream from this server, or say why they cannot.

        ``wal_level`` and ``max_wal_senders`` need a restart: they are checked,
        not set (PostgreSQL's defaults, ``replica`` and 10, are enough). The
        ``pg_hba.conf`` entry for replication connections is added if missing.
        """
        with self.connect() as conn:
            wal_level, senders, has_entry = conn.execute(
                "select current_setting('wal_level'), current_setting('max_wal_senders')::int,"
                " exists (select from pg_hba_file_rules"
                "         where 'replication' = any(database) and error is null)"
            ).fetchone() or ("", 0, False)
            if wal_level not in ("replica", "logical") or senders < 1:
                raise RuntimeError(
                    f"this server cannot feed a standby (wal_level={wal_level}, "
                    f"max_wal_senders={senders}); start it with "
                    "postgres_args='... -c wal_level=replica -c max_wal_senders=4'"
                )
            if not has_entry:
                hba = Path(self.get_data_directory()) / "pg_hba.conf"
                with hba.open("a") as out:
                    out.write("host replication all 127.0.0.1/32 trust\n")
                conn.execute("select pg_reload_conf()")

    def require_synchronous_standby(self, name: str, timeout: float = 60.0) -> None:
        """Make every commit wait until standby ``name`` has flushed it; return once it does.

        Sets ``synchronous_standby_names`` to the standby alone and
        ``synchronous_commit = on``, restarts this server, and waits until
        ``pg_stat_replication`` shows that standby streaming as ``sync``. The
        restart makes the rule hold from the first commit after it: on a
        reload, commits only start waiting once the checkpointer has re-read
        the file, which nothing can observe.
        """
        standby = sql.Literal(f'"{name}"')
        with self.connect() as conn:
            conn.execute("alter system set synchronous_commit = on")
            conn.execute(sql.SQL("alter system set synchronous_standby_names = {}").format(standby))
        self.terminate()  # a fast shutdown: the standby receives everything first
        self.start()
        in_sync = (
            "select exists (select from pg_stat_replication"
            " where application_name = %s and state = 'streaming' and sync_state = 'sync')"
        )
        deadline = time.monotonic() + timeout
        with self.connect() as conn:
            while conn.execute(in_sync, [name]).fetchone() != (True,):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"standby {name!r} did not stream in sync within {timeout:g} s; "
                        f"see its log and {self.base_dir}/{self.name}.log"
                    )
                time.sleep(0.05)


class ThrowawayStandby(ThrowawayPostgresql):
    """A hot standby streaming from a running ThrowawayPostgresql, cloned by ``pg_basebackup -R``.

    ``name`` is the ``application_name`` it streams as: the name a primary's
    ``synchronous_standby_names`` uses for it.
    """

    def __init__(self, primary: ThrowawayPostgresql, name: str = "standby", **kwargs: Any) -> None:
        """Clone ``primary`` (which must be running) and start streaming from it."""
        self.primary = primary
        self.standby_name = name
        primary.allow_replication()
        # Reconnect within 0.1 s, not 5, when the primary restarts.
        default_args = testing.postgresql.Postgresql.DEFAULT_SETTINGS["postgres_args"]
        kwargs.setdefault("postgres_args", f"{default_args} -c wal_retrieve_retry_interval=100ms")
        super().__init__(**kwargs)

    def initialize(self) -> None:
        """Find pg_basebackup too."""
        super().initialize()
        self.pg_basebackup = testing.postgresql.find_program("pg_basebackup", ["bin"])

    def initialize_database(self) -> None:
        """Clone the primary (as the unprivileged account under root) instead of initdb."""
        self._hand_over_base_dir()
        data_dir = self.get_data_directory()
        if os.path.exists(os.path.join(data_dir, "PG_VERSION")):
            return
        # -R writes primary_conninfo (with this application_name) and standby.signal;
        # -X stream copies the WAL written during the copy; -c fast: no wait for a checkpoint;
        # --no-sync as initdb's: a throwaway outlives process crashes, not the machine's.
        conninfo = (
            f"host=127.0.0.1 port={self.primary.settings['port']} user=postgres "
            f"application_name={self.standby_name}"
        )
        argv = self._as_server_user(
            [
                self.pg_basebackup,
                "-D",
                data_dir,
                "-d",
                conninfo,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ]
        )
        done = subprocess.run(argv, capture_output=True, cwd=self.base_dir, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"pg_basebackup failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
            )

    def promote(self) -> None:
        """Make this standby a primary (``pg_promote()``, waiting until it accepts writes)."""
        with self.connect() as conn:
            promoted = conn.execute("select pg_promote(wait => true, wait_seconds => 60)")
            if promoted.fetchone() != (True,):
                raise RuntimeError(f"the standby was not promoted within 60 s; see {self.base_dir}")
