"""PostgreSQL fails over: the hook carries on against the promoted standby and loses nothing.

A primary streams to a standby that it waits for on every commit
(``synchronous_standby_names`` naming it, ``synchronous_commit = on``); both
are throwaway servers of our own. The hook runs as deployed, with both hosts
in ``DATABASE_URL`` and ``target_session_attrs=read-write``. Senders post
while the primary is stopped hard (``pg_ctl stop -m immediate``) and the
standby is promoted, and keep posting after. Each body carries a unique
marker, so the new primary's inbox says exactly which deliveries it holds.

The test knows only what the hook shows outside: its HTTP answers,
``/healthz`` and ``sync.inbox``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server, load_smart_library, run_yoyo
from processes import Hook, start_hook, stop_hook

from devtools.throwaway_pg import ThrowawayPostgresql, ThrowawayStandby

STANDBY = "standby1"
DATABASE = "test"

#: Generous bound for each awaited condition: it can only run out when the behaviour is wrong.
PATIENCE = 90.0


@dataclass
class Cluster:
    """A primary and its standby, the database migrated on the primary."""

    primary: ThrowawayPostgresql
    standby: ThrowawayStandby

    def hook_url(self) -> str:
        """The hook's multi-host URL: libpq takes the first host that accepts writes."""
        hosts = ",".join(
            f"127.0.0.1:{server.settings['port']}" for server in (self.primary, self.standby)
        )
        return (
            f"postgresql://sync_hook_login@{hosts}/{DATABASE}"
            "?target_session_attrs=read-write&connect_timeout=5"
        )


@contextmanager
def _cluster(synchronous: bool) -> Iterator[Cluster]:
    primary = ThrowawayPostgresql()
    standby: ThrowawayStandby | None = None
    try:
        standby = ThrowawayStandby(primary, STANDBY)
        if synchronous:
            primary.require_synchronous_standby(STANDBY)
        # Migrated through the standby, as a managed service's would be.
        load_smart_library(Server(primary), DATABASE)
        run_yoyo(Server(primary), DATABASE, "apply")
        yield Cluster(primary, standby)
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A primary that waits for its standby on every commit (synchronous replication)."""
    with _cluster(synchronous=True) as cluster:
        yield cluster


@pytest.fixture
def asynchronous_cluster() -> Iterator[Cluster]:
    """A primary that streams to its standby but commits without waiting for it."""
    with _cluster(synchronous=False) as cluster:
        yield cluster


@dataclass
class Answer:
    """One delivery and what the hook answered (``status_code`` None: no HTTP answer)."""

    body: bytes
    status_code: int | None
    receipt: dict[str, Any] | None = None

    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def spooled(self) -> bool:
        return self.ok() and self.receipt is not None and self.receipt["status"] == "spooled"

    def stored(self) -> bool:
        """Answered with an inbox row: the database committed it."""
        return self.ok() and not self.spooled()


@dataclass
class Sender:
    """Posts changes to one fragrance, one after another, ``gap`` seconds apart."""

    hook: Hook
    fragrance_id: int
    gap: float
    stop: threading.Event
    answers: list[Answer] = field(default_factory=list)

    def run(self) -> None:
        with httpx.Client(base_url=self.hook.url, timeout=60) as client:
            change = 0
            while not self.stop.is_set():
                change += 1
                data = json.dumps(
                    {
                        "fragrance_id": self.fragrance_id,
                        "description": f"failover change {change} {uuid.uuid4().hex}",
                    }
                ).encode()
                try:
                    answer = client.post(
                        "/notifications",
                        content=data,
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.HTTPError:
                    self.answers.append(Answer(data, None))
                else:
                    receipt = answer.json() if answer.is_success else None
                    self.answers.append(Answer(data, answer.status_code, receipt))
                self.stop.wait(self.gap)

    def count(self, kind: Callable[[Answer], bool]) -> int:
        return sum(1 for answer in list(self.answers) if kind(answer))


def _wait_until(condition: Callable[[], bool], what: str, hook: Hook) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if hook.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen (hook log follows):\n{hook.output()[-8000:]}")
        time.sleep(0.05)


def _health(hook: Hook) -> dict[str, Any]:
    return httpx.get(hook.url + "/healthz", timeout=60).json()


def _drained(health: dict[str, Any]) -> bool:
    return health["database"] == "ok" and health["spool_depth"] == 0


def test_a_failover_to_a_synchronous_standby_loses_nothing_answered_and_keeps_order(
    cluster: Cluster, tmp_path: Path
) -> None:
    hook = start_hook(cluster.hook_url(), tmp_path, DB_TIMEOUT="1")
    stop = threading.Event()
    # Four senders at once, each on its own fragrance, and one sequence sent further apart.
    senders = [Sender(hook, 100 + n, 0.1, stop) for n in range(4)]
    sequence = Sender(hook, 7, 0.2, stop)
    senders.append(sequence)
    threads = [threading.Thread(target=sender.run) for sender in senders]
    for thread in threads:
        thread.start()
    try:
        _wait_until(
            lambda: all(s.count(Answer.stored) >= 5 for s in senders),
            "deliveries stored through the primary",
            hook,
        )
        cluster.primary.crash()  # pg_ctl stop -m immediate: every session dies at once
        _wait_until(
            lambda: sequence.count(Answer.spooled) >= 3,
            "deliveries spooled while no primary is reachable",
            hook,
        )
        during = _health(hook)
        answered_before_promotion = [len(s.answers) for s in senders]
        cluster.standby.promote()
        _wait_until(
            lambda: all(
                sum(1 for a in s.answers[n:] if a.stored()) >= 3
                for s, n in zip(senders, answered_before_promotion, strict=True)
            ),
            "deliveries stored through the promoted standby",
            hook,
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(PATIENCE)
    try:
        _wait_until(lambda: _drained(_health(hook)), "the spool drained into the new primary", hook)
        assert hook.process.poll() is None, "the hook had to be restarted"
    finally:
        stop_hook(hook)

    with cluster.standby.connect(DATABASE) as conn:
        inbox = [
            (id_, bytes(body))
            for id_, body in conn.execute("select id, body from sync.inbox order by id").fetchall()
        ]
        finals = dict(
            conn.execute(
                "select fragrance_id, description from public.fragrances"
                " where fragrance_id = any(%s)",
                [[s.fragrance_id for s in senders]],
            ).fetchall()
        )
    answers = [a for s in senders for a in s.answers]
    copies = Counter(body for _, body in inbox)
    inbox_id = {body: id_ for id_, body in inbox}
    answered = [a for a in answers if a.ok()]
    spooled = [a for a in answers if a.spooled()]
    lost = [a for a in answered if copies[a.body] == 0]
    doubled = [a for a in answers if copies[a.body] > 1]
    print(
        f"\nfailover: {len(answers)} sent, {len(answered)} answered 2xx "
        f"({len(answered) - len(spooled)} stored, {len(spooled)} spooled), "
        f"{len(answers) - len(answered)} failed, {len(inbox)} in the new primary's inbox, "
        f"{len(lost)} lost, {len(doubled)} doubled"
    )

    assert during["database"] == "unreachable" and during["spool_depth"] > 0, during
    assert [a for a in answers if not a.ok()] == [], "a delivery was not answered 2xx"
    assert lost == [] and doubled == []
    assert set(copies) <= {a.body for a in answers}, "the inbox holds a body nobody sent"
    # An acknowledged commit of the old primary is on the new one, under the id it was given.
    assert all(inbox_id[a.body] == a.receipt["inbox_id"] for a in answers if a.stored())
    for sender in senders:  # each sender's changes are in the inbox in the order it sent them
        ids = [inbox_id[a.body] for a in sender.answers]
        assert ids == sorted(ids), f"fragrance {sender.fragrance_id} out of order"
        last = json.loads(sender.answers[-1].body)["description"]
        assert finals[sender.fragrance_id] == last


def test_asynchronous_replication_can_lose_a_delivery_answered_2xx(
    asynchronous_cluster: Cluster, tmp_path: Path
) -> None:
    """Why the set-up needs synchronous replication: without it, a failover loses what was acked.

    Forced, not raced: the standby is down while the primary acknowledges
    the delivery, and the primary is gone before the standby is back.
    """
    cluster = asynchronous_cluster
    hook = start_hook(cluster.hook_url(), tmp_path)
    try:
        cluster.standby.terminate()
        data = json.dumps({"fragrance_id": 7, "description": f"acked {uuid.uuid4().hex}"}).encode()
        answer = httpx.post(
            hook.url + "/notifications",
            content=data,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        cluster.primary.crash()
        cluster.standby.start()
        cluster.standby.promote()
    finally:
        stop_hook(hook)

    assert answer.status_code == 202 and answer.json()["inbox_id"] is not None, answer.text
    with cluster.standby.connect(DATABASE) as conn:
        found = conn.execute("select count(*) from sync.inbox where body = %s", [data]).fetchone()
    assert found == (0,), "the promoted standby holds a delivery it never received?"


def _waiting_for_the_standby(cluster: Cluster) -> bool:
    """Whether a hook session's commit waits for the synchronous standby."""
    with cluster.primary.connect(DATABASE) as conn:
        return conn.execute(
            "select exists (select from pg_stat_activity where wait_event = 'SyncRep'"
            " and application_name like 'fragrance-sync-%%')"
        ).fetchone() == (True,)


def test_a_store_the_hook_gave_up_on_while_the_standby_was_down_survives_a_failover(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The hook's own deadline cancels a commit that waits for the standby (SyncRep).

    PostgreSQL then keeps the commit on the primary alone, and the hook, which
    saw no answer in time, spools the delivery and answers 202. The spool's
    copy is the only one beyond the primary: the drain must not drop it before
    the standby has the commit its key check found (hostile review). A
    rejected delivery's drain writes nothing of its own, so its commit did not
    wait for the standby and the spooled copy was deleted at once; the
    standby, promoted, never had it.
    """
    hook = start_hook(cluster.hook_url(), tmp_path, DB_TIMEOUT="1")
    try:
        cluster.standby.terminate()
        data = json.dumps({"fragrance_id": 7, "cost": -1, "marker": uuid.uuid4().hex}).encode()
        answer = httpx.post(
            hook.url + "/notifications",
            content=data,
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert (answer.status_code, answer.json()["status"]) == (202, "spooled"), answer.text
        # Either the drain waits for the standby, or it has deleted the spooled copy.
        _wait_until(
            lambda: _waiting_for_the_standby(cluster) or _health(hook)["spool_depth"] == 0,
            "the drain waiting for the standby or done",
            hook,
        )
        cluster.primary.crash()
        cluster.standby.start()
        cluster.standby.promote()
        _wait_until(lambda: _drained(_health(hook)), "the spool drained into the new primary", hook)
    finally:
        stop_hook(hook)

    with cluster.standby.connect(DATABASE) as conn:
        found = conn.execute("select count(*) from sync.inbox where body = %s", [data]).fetchone()
    assert found == (1,), "a delivery answered 202 is not on the promoted standby"
