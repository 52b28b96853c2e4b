"""Log lines a sender can trigger, at most one per message every few seconds.

Every refused or abandoned request could write a line; a flood of them
(half-open connections, a scanner, a wrong token in a loop) must not fill
the disk. The first line of each kind is written at once; the next ones
within ``every`` seconds are only counted, and the next line written says
how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Appended to the next line written: how many were left out.
LEFT_OUT = " (and %d more like it since the last such line)"


class LogLimit:
    """At most one line per message template every ``every`` seconds, with a count of the rest."""

    def __init__(
        self, logger: logging.Logger, every: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Write through ``logger``; ``every`` is the shortest gap between two lines of a kind."""
        self.logger = logger
        self.every = every
        self.clock = clock
        # One entry per message template (a fixed set in the code): when last written, and
        # how many were left out since.
        self._seen: dict[str, tuple[float, int]] = {}

    def warning(self, message: str, *args: object) -> None:
        """A warning, unless one with the same template was written less than ``every`` ago."""
        self.log(logging.WARNING, message, *args)

    def log(self, level: int, message: str, *args: object) -> None:
        """Write or count one line."""
        if not self.logger.isEnabledFor(level):
            return
        left_out = self.admit(message)
        if left_out is None:
            return
        if left_out:
            message += LEFT_OUT
            args = (*args, left_out)
        self.logger.log(level, message, *args)

    def admit(self, message: str) -> int | None:
        """Whether a line of this template may be written now: None if not (it is counted).

        Else how many were left out since the last one written.
        """
        now = self.clock()
        last, left_out = self._seen.get(message, (None, 0))
        if last is not None and now - last < self.every:
            self._seen[message] = (last, left_out + 1)
            return None
        self._seen[message] = (now, 0)
        return left_out


class LimitFilter(logging.Filter):
    """A logging filter for another library's logger: its warnings and errors, limited.

    uvicorn writes a line for each request it refuses itself ("Invalid HTTP
    request received.", "Unsupported upgrade request.", and for that one a
    second, longer line): one client looping on garbage wrote 3,900 lines a
    second (hostile review). Its messages are fixed texts, so each is a
    template; lines below WARNING (starting, stopping) pass untouched.
    """

    def __init__(self, every: float, clock: Callable[[], float] = time.monotonic) -> None:
        """At most one record per message every ``every`` seconds."""
        super().__init__()
        self.limit = LogLimit(logging.getLogger(__name__), every, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        """Let the record through, with the count of those left out before it, or drop it."""
        if record.levelno < logging.WARNING or not isinstance(record.msg, str):
            return True
        left_out = self.limit.admit(record.msg)
        if left_out is None:
            return False
        if left_out and isinstance(record.args, tuple):
            # A message logged without arguments is not %-formatted: its own "%" stays as is.
            message = record.msg if record.args else record.msg.replace("%", "%%")
            record.msg = message + LEFT_OUT
            record.args = (*record.args, left_out)
        return True


def limit_logger(name: str, every: float = 10.0) -> None:
    """Limit the warnings and errors of logger ``name`` (once per process, however often called)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, LimitFilter) for f in logger.filters):
        logger.addFilter(LimitFilter(every))
