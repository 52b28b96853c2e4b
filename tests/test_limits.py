"""The hook's own bounds, in isolation: the byte budget for bodies and the limited log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hook.body_budget import BodyBudget
from hook.log_limit import LimitFilter, LogLimit


def test_reservations_past_the_budget_wait_in_order_and_none_is_refused() -> None:
    async def run() -> list[str]:
        budget = BodyBudget(10)
        done: list[str] = []

        async def body(name: str, size: int) -> None:
            await budget.reserve(size)
            done.append(name)

        await budget.reserve(8)  # a body being read
        waiting = [asyncio.create_task(body("a", 5)), asyncio.create_task(body("b", 1))]
        await asyncio.sleep(0)
        assert done == [] and budget.waiting == 2  # b fits, but does not overtake a
        budget.release(8)
        await asyncio.gather(*waiting)
        return done

    assert asyncio.run(run()) == ["a", "b"]


def test_a_reservation_given_up_while_waiting_lets_the_next_one_go() -> None:
    async def run() -> bool:
        budget = BodyBudget(10)
        await budget.reserve(10)
        first = asyncio.create_task(budget.reserve(10))
        second = asyncio.create_task(budget.reserve(4))
        await asyncio.sleep(0)
        first.cancel()
        budget.release(6)
        await asyncio.wait_for(second, 5)
        return budget.available == 2

    assert asyncio.run(run())


def test_a_small_body_never_waits_behind_large_ones_that_hold_the_budget() -> None:
    """Senders that declared megabytes and trickled them kept real deltas waiting for minutes."""

    async def run() -> tuple[bool, int]:
        budget = BodyBudget(10, small=2)
        await budget.reserve(10)  # large bodies being trickled
        large = asyncio.create_task(budget.reserve(10))
        await asyncio.sleep(0)
        await asyncio.wait_for(budget.reserve(2), 5)  # a CMS delta
        taken = not large.done()
        large.cancel()
        return taken, budget.waiting

    assert asyncio.run(run()) == (True, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_limited_log_writes_one_line_per_kind_per_period_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limited = LogLimit(logging.getLogger("test.limits"), 10.0, clock)
    with caplog.at_level(logging.WARNING, "test.limits"):
        for _ in range(5):
            limited.warning("refused a body from %s", "10.0.0.1")
        limited.warning("another kind")
        clock.now = 10.0
        limited.warning("refused a body from %s", "10.0.0.2")
    assert caplog.messages == [
        "refused a body from 10.0.0.1",
        "another kind",
        "refused a body from 10.0.0.2 (and 4 more like it since the last such line)",
    ]


def test_a_limit_filter_passes_one_warning_per_message_per_period_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    logger = logging.getLogger("test.limits.filter")
    logger.addFilter(LimitFilter(10.0, clock))
    with caplog.at_level(logging.INFO, "test.limits.filter"):
        for _ in range(3):
            logger.warning("Invalid HTTP request received.")
            logger.info("Started server process [%d]", 1)
            logger.warning("100% of %s")
        clock.now = 10.0
        logger.warning("Invalid HTTP request received.")
        logger.warning("100% of %s")
    assert caplog.messages == [
        "Invalid HTTP request received.",
        "Started server process [1]",
        "100% of %s",
        "Started server process [1]",
        "Started server process [1]",
        "Invalid HTTP request received. (and 2 more like it since the last such line)",
        "100% of %s (and 2 more like it since the last such line)",
    ]
