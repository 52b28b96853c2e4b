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
        now = self.clock()
        last, left_out = self._seen.get(message, (None, 0))
        if last is not None and now - last < self.every:
            self._seen[message] = (last, left_out + 1)
            return
        self._seen[message] = (now, 0)
        if left_out:
            message += " (and %d more like it since the last such line)"
            args = (*args, left_out)
        self.logger.log(level, message, *args)
