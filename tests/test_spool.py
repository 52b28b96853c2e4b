"""The spool file: what is appended is read back exactly, torn writes never replay."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hook.spool import Spool, SpooledDelivery, read_records


def _delivery(body: bytes) -> SpooledDelivery:
    return SpooledDelivery.new(body, "application/json", "127.0.0.1", "cms/1")


@pytest.fixture
def spool(tmp_path: Path) -> Spool:
    return Spool(tmp_path)


def test_records_come_back_exactly_and_in_order(spool: Spool) -> None:
    bodies = [b'{"fragrance_id": 1}', b"\xff\x00\n\nFSP1 not a frame", b""]
    written = [_delivery(b) for b in bodies]
    for delivery in written:
        spool.append(delivery)
    assert spool.records() == written
    assert spool.depth == 3


def test_a_torn_last_record_is_cut_off(spool: Spool) -> None:
    spool.append(_delivery(b"first"))
    spool.append(_delivery(b"second, torn by a crash"))
    size = spool.path.stat().st_size
    os.truncate(spool.path, size - 5)
    assert [r.body for r in read_records(spool.path)] == [b"first"]


def test_damage_in_the_middle_skips_only_the_damaged_record(spool: Spool) -> None:
    for body in (b"one", b"two", b"three"):
        spool.append(_delivery(body))
    data = bytearray(spool.path.read_bytes())
    second = data.find(b"two")
    data[second] ^= 0xFF
    spool.path.write_bytes(bytes(data))
    assert [r.body for r in read_records(spool.path)] == [b"one", b"three"]


def test_garbage_after_the_records_is_never_replayed(spool: Spool) -> None:
    spool.append(_delivery(b"real"))
    with spool.path.open("ab") as f:
        f.write(b"FSP1" + os.urandom(64))
    assert [r.body for r in read_records(spool.path)] == [b"real"]


def test_clear_empties_the_file_and_the_depth(spool: Spool) -> None:
    spool.append(_delivery(b"x"))
    spool.clear()
    assert (spool.records(), spool.depth, spool.path.stat().st_size) == ([], 0, 0)


def test_a_reopened_spool_counts_what_is_waiting(tmp_path: Path) -> None:
    first = Spool(tmp_path)
    first.append(_delivery(b"waiting"))
    first.close()
    assert Spool(tmp_path).depth == 1


def test_the_spool_of_a_dead_process_is_an_orphan_to_claim(tmp_path: Path, spool: Spool) -> None:
    dead = tmp_path / "spool-999999.log"
    dead.write_bytes(_delivery(b"left behind").encode())
    claimed = [path for path, _ in spool.claim_orphans()]
    assert claimed == [dead]


def test_the_spool_of_a_live_process_is_left_alone(tmp_path: Path, spool: Spool) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from hook.spool import Spool; "
            "s = Spool(Path(sys.argv[1])); print(s.path, flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        live = Path(holder.stdout.readline().strip())
        assert live.exists()
        assert [path for path, _ in spool.claim_orphans()] == []
    finally:
        holder.kill()
        holder.wait()


def test_keys_are_unique_per_delivery() -> None:
    keys = {_delivery(b"same").key for _ in range(100)}
    assert len(keys) == 100 and all(isinstance(k, uuid.UUID) for k in keys)


def test_an_orphan_claimed_by_one_worker_is_left_alone_by_another(
    tmp_path: Path, spool: Spool
) -> None:
    dead = tmp_path / "spool-999999.log"
    dead.write_bytes(_delivery(b"left behind").encode())
    assert [path for path, _ in spool.claim_orphans()] == [dead]
    other_worker = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from hook.spool import Spool; "
            "print(Spool(Path(sys.argv[1])).claim_orphans())",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert other_worker.stdout.strip() == "[]"


def test_a_failed_write_leaves_no_half_record_and_counts_nothing(
    spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool.append(_delivery(b"kept"))
    real_write = os.write

    def short_then_fail(fd: int, data: bytes) -> int:
        if len(data) > 20:
            return real_write(fd, bytes(data[:20]))  # a short write, as on a full disk
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_fail)
    with pytest.raises(OSError):
        spool.append(_delivery(b"lost to a full disk"))
    monkeypatch.undo()
    assert [r.body for r in spool.records()] == [b"kept"]
    assert spool.depth == 1
