"""Many hook workers and several appliers at once on a handful of fragrances.

No change applied twice, none lost, per-field receipt order respected, no deadlock.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
from conftest import Server
from helpers import body
from processes import start_hook, stop_hook

FRAGRANCES = [11, 12, 13, 14, 15]
DELIVERIES = 600


def _delta(n: int) -> dict[str, object]:
    delta: dict[str, object] = {"fragrance_id": FRAGRANCES[n % 5], "cost": n}
    if n % 2:
        delta["name"] = f"n{n}"
    if n % 3 == 0:
        delta["forbidden"] = bool(n % 4)
    if n % 97 == 0:
        delta["cost"] = -1  # invalid: quarantined, never applied
    return delta


def test_hook_workers_and_appliers_together_apply_each_change_once_in_order(
    server: Server, dbname: str, db: psycopg.Connection, tmp_path: Path
) -> None:
    url = server.url(dbname)
    hook = start_hook(server.url(dbname, user="sync_hook_login"), tmp_path, WORKERS="3")
    done = threading.Event()
    errors: list[BaseException] = []

    def post(n: int) -> None:
        if n == DELIVERIES // 3:
            # From here on the hook merges on receipt while appliers drain the queue.
            db.execute("update sync.settings set apply_on_receipt = true")
        answer = client.post("/notifications", content=body(_delta(n)))
        assert answer.status_code == 202, answer.text

    def apply() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                while not done.is_set():
                    processed = conn.execute("select processed from sync.apply_pending(25)")
                    if processed.fetchone() == (0,):
                        done.wait(0.01)  # nothing queued: yield the CPU to the hook
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    db.execute("update sync.settings set apply_on_receipt = false")
    appliers = [threading.Thread(target=apply) for _ in range(3)]
    for t in appliers:
        t.start()
    client = httpx.Client(base_url=hook.url, timeout=30)
    try:
        with client, ThreadPoolExecutor(max_workers=24) as pool:
            list(pool.map(post, range(DELIVERIES)))
    finally:
        done.set()
        for t in appliers:
            t.join(60)
        stop_hook(hook)
    db.execute("select sync.apply_pending(100000)")
    assert errors == []

    outcomes = db.execute(
        "select status, min(attempts), max(attempts), count(*) from sync.inbox"
        " group by status order by status"
    ).fetchall()
    by_status = {status: (lo, hi, count) for status, lo, hi, count in outcomes}
    assert set(by_status) <= {"applied", "ignored", "rejected"}
    assert all((lo, hi) == (1, 1) for lo, hi, _ in by_status.values())
    assert sum(count for *_, count in by_status.values()) == DELIVERIES
    assert by_status["rejected"][2] == len([n for n in range(DELIVERIES) if n % 97 == 0])
    assert db.execute(
        'select count(*) from sync.inbox where reasons @> \'[{"code": "internal.retryable"}]\''
        ' or reasons @> \'[{"code": "internal.error"}]\''
    ).fetchone() == (0,)

    for field in ("name", "cost", "forbidden"):
        expected = db.execute(
            f"""
            select distinct on (fragrance_id) fragrance_id, payload->>'{field}'
            from sync.inbox where status <> 'rejected' and payload ? '{field}'
            order by fragrance_id, id desc
            """
        ).fetchall()
        actual = db.execute(
            f"select fragrance_id, {field}::text from public.fragrances"
            " where fragrance_id = any(%s) order by 1",
            [FRAGRANCES],
        ).fetchall()
        assert actual == expected, field
