"""The simulated CMS: its database, its one listener, its tick loop and its journal.

Faithful to the contract: one change per tick, committed to the CMS's own
database before it is sent; the first change is made at start, before anyone
can listen; a change the database refuses breaks the CMS until restart;
delivery is fire and forget. Extras for tests (seed, count, chaos, journal)
are off unless set.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from cms_simulator import changes
from cms_simulator.journal import Entry, Journal, body_fields
from cms_simulator.settings import Settings
from hook.listener import redacted

log = logging.getLogger("cms_simulator")

ROOT = Path(__file__).resolve().parent.parent
#: The contract's DDL and the generated catalog, shared with the smart library's side.
DDL_SQL = ROOT / "deploy" / "initdb" / "10-smart-library.sql"
CATALOG_SQL = ROOT / "sql" / "catalog.sql"

USER_AGENT = "cms-simulator"


@dataclass(frozen=True)
class Delivery:
    """One body to POST to the listener, and what the journal says about it."""

    tick: int
    fragrance_id: int | None
    body: bytes
    chaos: str | None
    committed: bool


@dataclass
class Counters:
    """What happened since start; ``GET /`` shows it (a simulator-only extra)."""

    ticks: int = 0
    changes_committed: int = 0
    failed_ticks: int = 0
    deliveries_sent: int = 0
    answered: int = 0
    connection_errors: int = 0
    no_listener: int = 0


class Simulator:
    """One CMS: call ``start`` once, then it ticks on its own until ``stop``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        self._change_rng = random.Random(f"{self.seed}:changes")
        self._chaos_rng = random.Random(f"{self.seed}:chaos")
        self.interval = random.Random(f"{self.seed}:interval").uniform(
            settings.interval_min, settings.interval_max
        )
        self.counters = Counters()
        self.listener: str | None = None
        self.broken: str | None = None
        self._listening = asyncio.Event()
        self._lock = asyncio.Lock()
        self._seq = 0
        self._held: Delivery | None = None
        self._chaos_used: collections.Counter[str] = collections.Counter()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._http: httpx.AsyncClient | None = None
        self._journal: Journal | None = None
        self._ticker: asyncio.Task[None] | None = None

    # Lifecycle

    async def start(self) -> None:
        """Open the database (creating table and catalog if missing), make the first change."""
        self._conn = await psycopg.AsyncConnection.connect(
            self.settings.database_url, autocommit=True, application_name="cms-simulator"
        )
        await self._prepare_database()
        # httpx logs each request's URL at info, the hook's secret token with it: the
        # simulator says what it sent itself, with the token left out (_send).
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._http = httpx.AsyncClient(
            timeout=self.settings.send_timeout, headers={"user-agent": USER_AGENT}
        )
        if self.settings.journal:
            self._journal = Journal(self.settings.journal)
        # The real CMS changes a fragrance the moment it starts: nobody can listen yet.
        if self.settings.count != 0:
            await self.tick()
        self._ticker = asyncio.create_task(self._run(), name="cms-simulator-ticker")

    async def stop(self) -> None:
        """Cancel the ticker, send a held change, close the HTTP client, journal and database."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._http is not None:
            await self.flush()
            await self._http.aclose()
        if self._journal is not None:
            self._journal.close()
        if self._conn is not None:
            await self._conn.close()

    async def finished(self) -> None:
        """Wait until the ticker has made its ``COUNT`` changes (forever without COUNT)."""
        if self._ticker is not None:
            await asyncio.shield(self._ticker)

    @property
    def ticking(self) -> bool:
        """Whether the tick loop is still running."""
        return self._ticker is not None and not self._ticker.done()

    def register(self, url: str | None) -> None:
        """Send every later change to ``url``; None removes the listener."""
        self.listener = url
        if url is None:
            self._listening.clear()
        else:
            self._listening.set()

    async def _prepare_database(self) -> None:
        conn = self._require(self._conn)
        cursor = await conn.execute("select to_regclass('public.fragrances') is not null")
        exists = await cursor.fetchone()
        if not (exists and exists[0]):
            await conn.execute(DDL_SQL.read_text())
        cursor = await conn.execute("select exists (select from public.fragrances)")
        has_rows = await cursor.fetchone()
        if not (has_rows and has_rows[0]):
            await conn.execute(CATALOG_SQL.read_text())

    async def _run(self) -> None:
        try:
            while self.settings.count is None or self.counters.ticks < self.settings.count:
                await asyncio.sleep(self.interval)
                if self.settings.wait_for_listener:
                    await self._listening.wait()
                await self.tick()
            await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the tick loop stopped on an unexpected error")

    @staticmethod
    def _require(resource: Any) -> Any:
        if resource is None:
            raise RuntimeError("the simulator is not started: call start() first")
        return resource

    # One tick

    async def tick(self) -> None:
        """Change one random fragrance, commit it, then deliver it (plus any chaos)."""
        async with self._lock:
            self.counters.ticks += 1
            tick = self.counters.ticks
            if self.broken is None:
                try:
                    delta = await self._commit_change()
                except psycopg.Error as exc:
                    # As the real CMS: its session stays failed, so every tick fails now.
                    self.broken = f"{type(exc).__name__}: {str(exc).strip()}"
            if self.broken is not None:
                self.counters.failed_ticks += 1
                self._write_journal(
                    {
                        "seq": None,
                        "tick": tick,
                        "fragrance_id": None,
                        "chaos": None,
                        "committed": False,
                        **body_fields(None),
                        "listener": self.listener,
                        "outcome": "not_sent",
                        "status": None,
                        "error": self.broken,
                    }
                )
                await self.flush()
                return
            self.counters.changes_committed += 1
            await self._deliver(tick, delta)

    async def _commit_change(self) -> dict[str, Any]:
        conn = self._require(self._conn)
        async with conn.transaction():
            cursor = await conn.execute("select count(*) from public.fragrances")
            total = await cursor.fetchone()
            if not total or total[0] == 0:
                # The real CMS cannot change a fragrance it does not have either.
                raise psycopg.DataError("the CMS database holds no fragrance to change")
            offset = self._change_rng.randrange(total[0])
            cursor = await conn.execute(
                "select fragrance_id, name, description, cost, forbidden"
                " from public.fragrances order by fragrance_id offset %s limit 1 for update",
                [offset],
            )
            row = await cursor.fetchone()
            delta = changes.change(changes.Fragrance(*row), self._change_rng)
            fields = [f for f in changes.FIELDS if f in delta]
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(f)) for f in fields
            )
            await conn.execute(
                sql.SQL("update public.fragrances set {} where fragrance_id = %s").format(
                    assignments
                ),
                [*(delta[f] for f in fields), delta["fragrance_id"]],
            )
        return delta

    async def _absent_id(self) -> int:
        conn = self._require(self._conn)
        cursor = await conn.execute("select coalesce(max(fragrance_id), -1) from public.fragrances")
        highest = await cursor.fetchone()
        return (highest[0] if highest else -1) + 1 + self._chaos_rng.randrange(1000)

    def _pick_chaos(self) -> str | None:
        """A chaos kind for this tick, or None; never while nobody listens.

        So the first change, made before anyone can listen, is never sent
        later by ``out_of_order``, and a seed repeats the chaos of a run.
        """
        kinds = sorted(self.settings.chaos)
        if self.listener is None:
            return None
        if kinds and self._chaos_rng.random() < self.settings.chaos_probability:
            return self._chaos_rng.choice(kinds)
        return None

    async def _deliver(self, tick: int, delta: dict[str, Any]) -> None:
        fragrance_id = delta["fragrance_id"]
        real = Delivery(tick, fragrance_id, changes.encode(delta), None, True)
        kind = self._pick_chaos()
        n = self._chaos_used[kind]
        self._chaos_used[kind] += 1
        extra: Delivery | None = None
        if kind == "unknown_field":
            body = changes.unknown_field(delta, n)
            real = Delivery(tick, fragrance_id, body, kind, True)
        elif kind == "duplicate":
            extra = Delivery(tick, fragrance_id, real.body, kind, True)
        elif kind == "invalid":
            body = changes.invalid(delta, n)
            extra = Delivery(tick, fragrance_id, body, kind, False)
        elif kind == "unknown_id":
            absent = await self._absent_id()
            extra = Delivery(tick, absent, changes.unknown_id(delta, absent), kind, False)
        elif kind == "malformed":
            body = changes.malformed(fragrance_id, n)
            extra = Delivery(tick, fragrance_id, body, kind, False)
        elif kind == "out_of_order" and self._held is None:
            # Hold this change back; it goes out together with the next one, after it.
            self._held = Delivery(tick, fragrance_id, real.body, kind, True)
            return
        held, self._held = self._held, None
        if held is None:
            await self._send(real)
        else:
            # The newer change starts first, the older one right behind it, concurrently.
            await asyncio.gather(self._send(real), self._send(held))
        if extra is not None:
            await self._send(extra)

    async def flush(self) -> None:
        """Send a change held back by ``out_of_order`` chaos, if any."""
        held, self._held = self._held, None
        if held is not None:
            await self._send(held)

    # Delivery

    async def _send(self, delivery: Delivery) -> None:
        """POST one body to the listener: no retry, the answer's status is only recorded."""
        self._seq += 1
        entry: Entry = {
            "seq": self._seq,
            "tick": delivery.tick,
            "fragrance_id": delivery.fragrance_id,
            "chaos": delivery.chaos,
            "committed": delivery.committed,
            **body_fields(delivery.body),
            "listener": self.listener,
            "outcome": None,
            "status": None,
            "error": None,
        }
        if self.listener is None:
            self.counters.no_listener += 1
            entry["outcome"] = "no_listener"
        else:
            self.counters.deliveries_sent += 1
            try:
                answer = await self._require(self._http).post(
                    self.listener,
                    content=delivery.body,
                    headers={"content-type": "application/json"},
                )
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                self.counters.connection_errors += 1
                error = str(exc) or type(exc).__name__
                log.warning(
                    "could not deliver to %s: %s", redacted(self.listener), self._shown(error)
                )
                entry.update(outcome="connection_error", error=error)
            else:
                self.counters.answered += 1
                log.info(
                    "delivered tick %d to %s: HTTP %d",
                    delivery.tick,
                    redacted(self.listener),
                    answer.status_code,
                )
                entry.update(outcome="answered", status=answer.status_code)
        self._write_journal(entry)

    def _shown(self, text: str) -> str:
        """``text`` for a log line: the listener's URL in it, and its token, left out.

        The hook's token is the path's part after ``/notifications/``
        (``hook.listener.redacted``); an error may quote the URL, or the token alone.
        """
        if self.listener is None:
            return text
        shown = redacted(self.listener)
        text = text.replace(self.listener, shown)
        _, marker, token = self.listener.partition("/notifications/")
        token = token.split("?", 1)[0].split("/", 1)[0]
        return text.replace(token, "<token>") if marker and token else text

    def _write_journal(self, entry: Entry) -> None:
        if self._journal is not None:
            self._journal.write(entry)

    def status(self) -> dict[str, Any]:
        """The simulator's state for ``GET /`` (not part of the real CMS's API)."""
        return {
            "seed": self.seed,
            "interval": self.interval,
            "count": self.settings.count,
            "ticking": self.ticking,
            "listener": self.listener,
            "broken": self.broken,
            "chaos": sorted(self.settings.chaos),
            **vars(self.counters),
        }
