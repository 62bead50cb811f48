"""One replay server of recorded ComfyUI answers per test module, reset before each test.

Tests here run on the module's event loop (``pytestmark`` in each module): starting
and stopping uvicorn costs ~0.2 s, which per test would dominate the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from comfygate.comfy.client import ComfyClient
from tests.integration.comfy.replay import Replay


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def replay_server() -> AsyncIterator[Replay]:
    server = Replay()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def replay(replay_server: Replay) -> Replay:
    replay_server.reset()
    return replay_server


@pytest_asyncio.fixture(loop_scope="module")
async def comfy(replay: Replay) -> AsyncIterator[ComfyClient]:
    async with ComfyClient(replay.url, timeout=5.0) as client:
        yield client
