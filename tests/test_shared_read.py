"""SharedRead: what a public page may ask of the database, however many ask at once."""

from __future__ import annotations

import asyncio

import pytest

from hook.shared_read import SharedRead


class _Reads:
    """A read that counts its calls and finishes only when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError(f"read {self.calls} failed")
        return self.calls


def test_callers_that_come_while_a_read_is_in_flight_share_it() -> None:
    async def scenario() -> tuple[list[int], int]:
        reads = _Reads()
        shared = SharedRead(reads, fresh_for=0.0)
        waiting = [asyncio.create_task(shared.get()) for _ in range(20)]
        await asyncio.sleep(0)
        reads.release.set()
        return await asyncio.gather(*waiting), reads.calls

    assert asyncio.run(scenario()) == ([1] * 20, 1)


@pytest.mark.parametrize(
    ("fresh_for", "two_calls_get"),
    [(0.0, (1, 2)), (3600.0, (1, 1))],
    ids=["without freshness the next caller reads again", "a result is reused while fresh"],
)
def test_a_caller_after_a_read_reuses_it_only_while_fresh(
    fresh_for: float, two_calls_get: tuple[int, int]
) -> None:
    async def scenario() -> tuple[int, int]:
        reads = _Reads()
        reads.release.set()
        shared = SharedRead(reads, fresh_for=fresh_for)
        return await shared.get(), await shared.get()

    assert asyncio.run(scenario()) == two_calls_get


def test_a_failure_is_shared_by_every_caller_and_reused_while_fresh() -> None:
    async def scenario() -> tuple[list[BaseException | int], int]:
        reads = _Reads(fail=True)
        shared = SharedRead(reads, fresh_for=3600.0)
        waiting = [asyncio.create_task(shared.get()) for _ in range(3)]
        await asyncio.sleep(0)
        reads.release.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        with pytest.raises(RuntimeError, match="read 1 failed"):
            await shared.get()
        return outcomes, reads.calls

    outcomes, calls = asyncio.run(scenario())
    assert [str(o) for o in outcomes] == ["read 1 failed"] * 3
    assert calls == 1


def test_a_caller_that_goes_away_does_not_cancel_the_read_of_the_others() -> None:
    async def scenario() -> int:
        reads = _Reads()
        shared = SharedRead(reads, fresh_for=0.0)
        impatient = asyncio.create_task(shared.get())
        patient = asyncio.create_task(shared.get())
        await asyncio.sleep(0)
        impatient.cancel()
        reads.release.set()
        return await patient

    assert asyncio.run(scenario()) == 1
