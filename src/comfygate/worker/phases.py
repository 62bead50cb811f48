"""The life of one prompt as its agent follows it: phases, the events that move it,
and the table of moves. Pure: ``follow.py`` turns messages, /history answers and the
gateway's signals into events, and acts on the phase they lead to.

Two phases exist only because interrupts are cooperative: a prompt told to stop may
take seconds to do so, or never, and the agent follows it until it has stopped,
remembering why it asked (a cancel ends ``canceled``, a timeout ``timed_out``).
"""

from __future__ import annotations

from enum import Enum


class Phase(Enum):
    #: submitted; ComfyUI has not started it, so no timeout counts yet (time spent
    #: behind another prompt in ComfyUI's own queue is not the job's running time)
    QUEUED = "queued"
    #: started: the job's timeout counts from here
    RUNNING = "running"
    #: told to stop for a cancel; followed until it has
    CANCELING = "canceling"
    #: told to stop for running past its timeout; followed until it has
    TIMING_OUT = "timing_out"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    TIMED_OUT = "timed_out"
    #: another agent owns the job now: nothing is published
    LOST = "lost"

    @property
    def stopping(self) -> bool:
        return self in (Phase.CANCELING, Phase.TIMING_OUT)

    @property
    def ended(self) -> bool:
        return self not in (Phase.QUEUED, Phase.RUNNING, Phase.CANCELING, Phase.TIMING_OUT)


class Event(Enum):
    #: a message of the prompt arrived, or the queue shows it running
    STARTED = "started"
    #: the gateway asks for a cancel
    CANCEL = "cancel"
    #: the job's timeout has passed
    DEADLINE = "deadline"
    #: told to stop, it will not run: taken from the queue, or unknown to the backend
    GONE = "gone"
    #: told to stop, it ran on past the grace: the agent lets the job go
    GRACE_OVER = "grace_over"
    LEASE_LOST = "lease_lost"
    #: execution_success, or a /history entry that says success
    SUCCESS = "success"
    #: execution_error: a node raised
    NODE_ERROR = "node_error"
    #: execution_interrupted
    INTERRUPTED = "interrupted"
    #: /history: the prompt ended interrupted (someone stopped it)
    ENDED_INTERRUPTED = "ended_interrupted"
    #: /history: the prompt ended with an error, or without success
    ENDED_BADLY = "ended_badly"
    #: the backend does not know the prompt: it restarted, or was never reached
    FORGOTTEN = "forgotten"


_LIVE = (Phase.QUEUED, Phase.RUNNING)
_STOPPING = (Phase.CANCELING, Phase.TIMING_OUT)

# A prompt being stopped ends as what it was stopped for, whatever way it ends, unless
# it succeeded first (a cancel that arrives after success changes nothing) or a node
# raised meanwhile.
_STOPPED = {Phase.CANCELING: Phase.CANCELED, Phase.TIMING_OUT: Phase.TIMED_OUT}

#: (phase, event) → the next phase; a pair not listed leaves the phase as it is
TRANSITIONS: dict[tuple[Phase, Event], Phase] = {
    (Phase.QUEUED, Event.STARTED): Phase.RUNNING,
    (Phase.RUNNING, Event.DEADLINE): Phase.TIMING_OUT,
    **{(live, Event.CANCEL): Phase.CANCELING for live in _LIVE},
    **{(live, Event.INTERRUPTED): Phase.FAILED for live in _LIVE},
    # Stopped by someone else (ComfyUI's own button): a cancel, as the backend says.
    **{(live, Event.ENDED_INTERRUPTED): Phase.CANCELED for live in _LIVE},
    **{(live, Event.ENDED_BADLY): Phase.FAILED for live in _LIVE},
    **{(live, Event.FORGOTTEN): Phase.FAILED for live in _LIVE},
    **{
        (stopping, event): _STOPPED[stopping]
        for stopping in _STOPPING
        for event in (
            Event.GONE,
            Event.GRACE_OVER,
            Event.INTERRUPTED,
            Event.ENDED_INTERRUPTED,
            Event.ENDED_BADLY,
            Event.FORGOTTEN,
        )
    },
    **{(phase, Event.SUCCESS): Phase.SUCCEEDED for phase in (*_LIVE, *_STOPPING)},
    **{(phase, Event.NODE_ERROR): Phase.FAILED for phase in (*_LIVE, *_STOPPING)},
    **{(phase, Event.LEASE_LOST): Phase.LOST for phase in (*_LIVE, *_STOPPING)},
}


def step(phase: Phase, event: Event) -> Phase:
    """The phase ``event`` leads to from ``phase``; an ended phase never moves."""
    return TRANSITIONS.get((phase, event), phase)
