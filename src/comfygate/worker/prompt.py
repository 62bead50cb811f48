"""The prompt an attempt submits: the job's graph with its inputs uploaded and bound."""

from __future__ import annotations

import json
from typing import Any

from comfygate.comfy.graph import set_input, set_output_prefix
from comfygate.jobs.model import Lease
from comfygate.worker.blobs import WorkerBlobs
from comfygate.worker.ports import ComfyBackend


async def attempt_graph(blobs: WorkerBlobs, lease: Lease) -> dict[str, Any]:
    """The job's graph, writing its outputs under this attempt's folder."""
    graph: dict[str, Any] = (
        lease.graph
        if lease.graph is not None
        else json.loads(await blobs.read(lease, lease.prompt_key))
    )
    # ComfyUI's cache is global: a per-attempt folder makes every attempt write anew.
    return set_output_prefix(graph, f"comfygate/{lease.job_id}/{lease.attempt}")


async def prepare(comfy: ComfyBackend, blobs: WorkerBlobs, lease: Lease) -> dict[str, Any]:
    """The attempt's graph, once its input files are on the backend under their names."""
    graph = await attempt_graph(blobs, lease)
    for item in lease.inputs:
        data = await blobs.read(lease, item.key)
        name = await comfy.upload_image(
            data, f"{lease.job_id}-{item.filename}", subfolder="comfygate"
        )
        for node_id, input_name in item.bindings:
            graph = set_input(graph, node_id, input_name, name)
    return graph
