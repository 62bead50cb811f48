"""Waiting in tests: every wait has a deadline and, past it, fails saying what it waited
for and what it saw last, so a hang is a failure with a reason, not a stalled run or a
bare per-test timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import uvicorn

T = TypeVar("T")

#: Well inside the per-test timeout (60 s), so the wait's own message is what fails.
WITHIN_S = 20.0
#: Short enough to add little to a test, long enough not to starve the servers polled.
EVERY_S = 0.02


async def eventually(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], object],
    what: str,
    *,
    within_s: float = WITHIN_S,
    every_s: float = EVERY_S,
) -> T:
    """The first value of ``probe()`` that ``ok`` accepts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        value = await probe()
        if ok(value):
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"waited {within_s:g} s for {what}; last saw {value!r}")
        await asyncio.sleep(every_s)


async def until(
    check: Callable[[], T], what: str, *, within_s: float = WITHIN_S, every_s: float = EVERY_S
) -> T:
    """The first true value of ``check()``, a look at state in this process."""

    async def probe() -> T:
        return check()

    return await eventually(probe, bool, what, within_s=within_s, every_s=every_s)


@contextlib.asynccontextmanager
async def within(what: str, seconds: float = WITHIN_S) -> AsyncIterator[None]:
    """A bound on awaits that are not polls (a stream read, an event): past it the
    block fails naming ``what``."""
    bound = asyncio.timeout(seconds)
    try:
        async with bound:
            yield
    except TimeoutError:
        if not bound.expired():
            raise  # the code under test timed out on its own: its error, not ours
        raise AssertionError(f"waited {seconds:g} s for {what}") from None


async def serving(server: uvicorn.Server, task: asyncio.Task[None], what: str) -> int:
    """The port ``server`` (run by ``task``) listens on once it is up; the error it
    ended with if it ended first."""
    # A short period: every test starts servers, and most are up in a few ms.
    await until(lambda: server.started or task.done(), f"{what} to start", every_s=0.005)
    if not server.started:
        task.result()
        raise AssertionError(f"{what} ended without starting")
    return int(server.servers[0].sockets[0].getsockname()[1])
