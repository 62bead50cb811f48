"""A job handed to a waiting agent inside the transaction that queues it.

When an agent here waits for work that fits a job being submitted, the submit claims
for it in the job's own transaction (``JobStore.create_and_claim``) and hands it the
outcome: no ring, no second transaction, no look at the queue between the two.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from comfygate.jobs.model import Attempt, Claim, Job

Claimed = tuple[Job, Attempt] | None


@dataclass(eq=False)
class Handoff:
    """A waiter taken out of the waiting for one submit, and that submit's claim."""

    claim: Claim
    #: what the claim took (None: nothing, or the submit failed); settled exactly once
    outcome: asyncio.Future[Claimed]

    def hand(self, claimed: Claimed) -> None:
        """Settle the waiter's wait. Every handoff is handed, None when nothing was
        claimed for it: the waiter looks at the queue again."""
        if not self.outcome.done():
            self.outcome.set_result(claimed)
