"""The table of a followed prompt's moves, read as rules."""

from __future__ import annotations

import pytest

from comfygate.worker.phases import TRANSITIONS, Event, Phase, step

LIVE = (Phase.QUEUED, Phase.RUNNING)
STOPPING = (Phase.CANCELING, Phase.TIMING_OUT)


def test_the_timeout_counts_only_once_the_prompt_has_started() -> None:
    assert step(Phase.QUEUED, Event.DEADLINE) is Phase.QUEUED
    assert step(Phase.QUEUED, Event.STARTED) is Phase.RUNNING
    assert step(Phase.RUNNING, Event.DEADLINE) is Phase.TIMING_OUT


@pytest.mark.parametrize("phase", LIVE)
def test_a_cancel_stops_a_live_prompt(phase: Phase) -> None:
    assert step(phase, Event.CANCEL) is Phase.CANCELING


def test_a_prompt_being_stopped_is_stopped_once() -> None:
    assert step(Phase.CANCELING, Event.DEADLINE) is Phase.CANCELING
    assert step(Phase.TIMING_OUT, Event.CANCEL) is Phase.TIMING_OUT


#: events that leave a prompt being stopped as it is, or end it their own way
OTHERS = (Event.STARTED, Event.CANCEL, Event.DEADLINE, Event.SUCCESS, Event.NODE_ERROR)
#: the rest: every way a prompt being stopped can be found to have stopped
STOPS = [event for event in Event if event not in (*OTHERS, Event.LEASE_LOST)]


@pytest.mark.parametrize("event", STOPS)
def test_a_stopped_prompt_ends_as_what_it_was_stopped_for(event: Event) -> None:
    assert step(Phase.CANCELING, event) is Phase.CANCELED
    assert step(Phase.TIMING_OUT, event) is Phase.TIMED_OUT


@pytest.mark.parametrize("phase", LIVE + STOPPING)
def test_success_a_node_error_and_a_lost_lease_end_any_live_phase(phase: Phase) -> None:
    assert step(phase, Event.SUCCESS) is Phase.SUCCEEDED
    assert step(phase, Event.NODE_ERROR) is Phase.FAILED
    assert step(phase, Event.LEASE_LOST) is Phase.LOST


@pytest.mark.parametrize("phase", LIVE)
def test_an_interrupt_nobody_here_asked_for(phase: Phase) -> None:
    # Told by the socket it is a failure; found in /history, a cancel.
    assert step(phase, Event.INTERRUPTED) is Phase.FAILED
    assert step(phase, Event.ENDED_INTERRUPTED) is Phase.CANCELED


def test_an_ended_prompt_never_moves() -> None:
    assert not [key for key in TRANSITIONS if key[0].ended]
    ended = [phase for phase in Phase if phase.ended]
    assert all(step(phase, event) is phase for phase in ended for event in Event)
