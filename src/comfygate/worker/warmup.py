"""A backend's warm-up: a small prompt it runs before taking traffic, so the first
visitor does not pay for loading the models.

It runs when the agent connects to a backend that has just started (an empty history:
a ComfyUI restart forgets everything), and not after a mere reconnect of the socket.
"""

from __future__ import annotations

import logging
from typing import Any

from comfygate.clock import Clock
from comfygate.comfy.graph import set_output_prefix
from comfygate.errors import ComfygateError
from comfygate.ids import new_prompt_id
from comfygate.worker.ports import ComfyBackend

log = logging.getLogger(__name__)

POLL_S = 0.2


async def needs_warmup(comfy: ComfyBackend) -> bool:
    """True for a backend that has run nothing since it started."""
    return not await comfy.history_ids(limit=1)


async def run_warmup(
    comfy: ComfyBackend, graph: dict[str, Any], clock: Clock, *, timeout_s: float
) -> bool:
    """Run the warm-up prompt to its end; True when it succeeded. Never raises for the
    backend's sake: a failed warm-up is logged and the backend takes traffic anyway."""
    prompt_id = new_prompt_id()
    try:
        await comfy.submit(set_output_prefix(graph, "comfygate/warmup"), prompt_id=prompt_id)
        deadline = clock.monotonic() + timeout_s
        while clock.monotonic() < deadline:
            if await comfy.prompt_state(prompt_id) == "done":
                entry = await comfy.history(prompt_id)
                ok = entry is not None and entry.status_str == "success"
                if not ok:
                    log.warning("warm-up on %s failed", comfy.base_url)
                return ok
            await clock.sleep(POLL_S)
        log.warning("warm-up on %s took longer than %g s", comfy.base_url, timeout_s)
        await comfy.interrupt(prompt_id)
    except ComfygateError as exc:
        log.warning("warm-up on %s failed: %s", comfy.base_url, exc)
    return False
