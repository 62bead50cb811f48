"""A ComfyUI simulator that answers like a real ComfyUI 0.3.64.

It is the gateway's test peer and the demo's backend, so it follows the recorded protocol
(``shared/comfyui-protocol.md`` and its captures) rather than convenience: same routes,
same WebSocket messages in the same order, same history and error bodies. It stands alone
and imports nothing from comfygate but the clock.
"""

from __future__ import annotations

from comfygate.sim.app import create_app
from comfygate.sim.config import SimConfig
from comfygate.sim.server import SimServer, run_sim

__all__ = ["SimConfig", "SimServer", "create_app", "run_sim"]
