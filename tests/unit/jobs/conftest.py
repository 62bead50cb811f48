"""The ports of a JobService for the tests of the job domain: the fake store, real
local storage, and events kept in a list."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfygate.clock import FakeClock
from comfygate.jobs.doorbell import Doorbell
from comfygate.storage.local import LocalStorage
from comfygate.storage.signing import Signer
from tests.unit.jobs.fakes import FakeEvents, FakeStore
from tests.unit.jobs.parts import Parts


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def parts(clock: FakeClock, tmp_path: Path) -> Parts:
    return Parts(
        store=FakeStore(),
        blobs=LocalStorage(tmp_path / "blobs", Signer(b"k" * 32, clock)),
        events=FakeEvents(),
        doorbell=Doorbell(),
        clock=clock,
    )
