"""What a chaos run ended with, as one printed line."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from comfygate.storage.base import Storage

TERMINAL = ("succeeded", "failed", "canceled", "expired")


@dataclass
class Tally:
    submitted: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: jobs that never reached a terminal state
    lost: list[str] = field(default_factory=list)
    #: jobs whose manifest names an output twice, or that stored files outside it
    duplicated: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (
            f"chaos {name}: submitted {self.submitted}, succeeded {self.statuses['succeeded']}, "
            f"failed {self.statuses['failed']}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)}"
            + (f"  (errors: {dict(self.errors)})" if self.errors else "")
        )


async def tally(jobs: list[dict[str, Any]], storage: Storage) -> Tally:
    """Every job's end, and whether storage holds exactly its manifest's outputs."""
    result = Tally(submitted=len(jobs))
    for job in jobs:
        result.statuses[job["status"]] += 1
        if job["status"] not in TERMINAL:
            result.lost.append(job["id"])
            continue
        if job["error"]:
            result.errors[job["error"]["code"]] += 1
        stored = {o.key for o in await storage.list(f"outputs/{job['id']}")}
        if job["status"] != "succeeded":
            if stored:
                result.duplicated.append(job["id"])
            continue
        manifest = json.loads(await storage.get_bytes(f"jobs/{job['id']}/output.json"))
        keys = [o["key"] for o in manifest["outputs"]]
        places = [(o["node_id"], o["key"].rsplit("/", 1)[-1]) for o in manifest["outputs"]]
        if len(set(keys)) != len(keys) or len(set(places)) != len(places) or stored != set(keys):
            result.duplicated.append(job["id"])
    return result


async def report(
    capsys: Any, name: str, client: Any, job_ids: list[str], storage: Storage
) -> Tally:
    """Fetch the jobs, tally them against storage, print the line (past pytest's capture)."""
    jobs = [(await client.get(f"/v1/jobs/{job_id}")).json() for job_id in job_ids]
    result = await tally(jobs, storage)
    with capsys.disabled():
        print("\n" + result.line(name))
    return result
