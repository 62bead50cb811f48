"""The ports of a JobService, as fakes, for the tests of the job domain."""

from __future__ import annotations

from typing import Any

import pytest

from comfygate.clock import FakeClock
from comfygate.jobs.doorbell import Doorbell
from tests.unit.jobs.fakes import FakeBlobs, FakeEvents, FakeStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def parts(clock: FakeClock) -> dict[str, Any]:
    return {
        "store": FakeStore(),
        "blobs": FakeBlobs(),
        "events": FakeEvents(),
        "doorbell": Doorbell(),
        "clock": clock,
    }
