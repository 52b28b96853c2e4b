"""A PostgreSQL server we start ourselves (tests, local stack), safe to start as root.

testing.postgresql runs ``initdb`` and ``postgres`` as the current user, and
both refuse to run as root. When we are root, the data directory is handed to
an unprivileged OS user and both programs are started as that user through
``setpriv``, which execs in place, so the server's pid is still ours to signal.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import testing.postgresql

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
