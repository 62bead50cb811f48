"""Fetches a prompt's outputs from ComfyUI into storage under attempt keys.

A file is fetched as soon as its node reports it in an ``executed`` message, while the
rest of the graph runs on; /history stays the list of record once the prompt ends."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
from collections.abc import AsyncIterator, Mapping
from typing import Any

from comfygate.comfy.client import HistoryEntry, OutputRef
from comfygate.comfy.history import file_refs
from comfygate.jobs.model import Lease, OutputFile
from comfygate.worker.blobs import WorkerBlobs
from comfygate.worker.ports import Viewer

#: files fetched at once ahead of the prompt's end: a node may list a whole batch
EARLY_FETCHES = 4

TEXT_TYPE = "text/plain; charset=utf-8"


def kind_of(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return {"image": "image", "video": "video", "audio": "audio", "text": "text"}.get(major, "file")


def extension_of(filename: str, content_type: str) -> str:
    if "." in filename:
        return filename.rsplit(".", 1)[1].lower()
    return (mimetypes.guess_extension(content_type) or ".bin").lstrip(".")


async def fetch_output(
    comfy: Viewer, blobs: WorkerBlobs, lease: Lease, node_id: str, index: int, ref: OutputRef
) -> OutputFile:
    """One file from /view into storage as the node's ``index``-th output."""
    async with comfy.view(ref) as response:
        content_type = response.content_type
        ext = extension_of(ref.filename, content_type)
        key, size, sha = await blobs.write(
            lease, f"{node_id}-{index}.{ext}", response.iter_bytes(), content_type
        )
    return OutputFile(
        key=key,
        kind=kind_of(content_type),
        content_type=content_type,
        bytes=size,
        sha256=sha,
        node_id=str(node_id),
    )


class EarlyFetches:
    """Outputs fetched while the graph still runs, from the nodes' ``executed`` messages.

    The socket is best effort, so these are only a head start: ``collect_outputs`` takes
    one only for the same file at the same place in the node's /history list, and fetches
    anything else (or anything that failed here) itself, in order, as before."""

    def __init__(self, comfy: Viewer, blobs: WorkerBlobs, lease: Lease) -> None:
        self._comfy = comfy
        self._blobs = blobs
        self._lease = lease
        self._slots = asyncio.Semaphore(EARLY_FETCHES)
        self._fetches: dict[tuple[str, int], tuple[OutputRef, asyncio.Task[OutputFile]]] = {}

    def executed(self, node_id: str, ui: Mapping[str, Any]) -> None:
        for index, ref in enumerate(file_refs(ui)):
            if (node_id, index) not in self._fetches:
                task = asyncio.create_task(self._fetch(node_id, index, ref))
                self._fetches[(node_id, index)] = (ref, task)

    async def _fetch(self, node_id: str, index: int, ref: OutputRef) -> OutputFile:
        async with self._slots:
            return await fetch_output(self._comfy, self._blobs, self._lease, node_id, index, ref)

    async def take(self, node_id: str, index: int, ref: OutputRef) -> OutputFile | None:
        """The early fetch of this very file, None when there is none to use."""
        found = self._fetches.get((node_id, index))
        if found is None:
            return None
        early, task = found
        if early != ref:
            task.cancel()
        # Never raises for the task: its failure only means the file is fetched again.
        await asyncio.wait([task])
        del self._fetches[(node_id, index)]
        if early != ref or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def aclose(self) -> None:
        """Stop what is still under way: a job that ends otherwise lists none of it."""
        tasks = [task for _, task in self._fetches.values()]
        self._fetches.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def collect_outputs(
    comfy: Viewer,
    blobs: WorkerBlobs,
    lease: Lease,
    entry: HistoryEntry,
    early: EarlyFetches | None = None,
) -> list[OutputFile]:
    outputs: list[OutputFile] = []
    for node_id in sorted({*entry.outputs, *entry.texts}, key=_node_order):
        index = 0
        for ref in entry.outputs.get(node_id, ()):
            fetched = await early.take(node_id, index, ref) if early is not None else None
            outputs.append(fetched or await fetch_output(comfy, blobs, lease, node_id, index, ref))
            index += 1
        for text in entry.texts.get(node_id, ()):
            data = text.encode()
            key, _, _ = await blobs.write(lease, f"{node_id}-{index}.txt", _one(data), TEXT_TYPE)
            outputs.append(
                OutputFile(
                    key=key,
                    kind="text",
                    content_type=TEXT_TYPE,
                    bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    node_id=str(node_id),
                )
            )
            index += 1
    return outputs


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
