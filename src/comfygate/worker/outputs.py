"""Fetches a finished prompt's outputs from ComfyUI into storage under attempt keys."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import AsyncIterator

from comfygate.comfy.client import ComfyClient, HistoryEntry
from comfygate.jobs.model import Lease, OutputFile
from comfygate.worker.blobs import WorkerBlobs

TEXT_TYPE = "text/plain; charset=utf-8"


def kind_of(content_type: str) -> str:
    major = content_type.split("/", 1)[0]
    return {"image": "image", "video": "video", "audio": "audio", "text": "text"}.get(major, "file")


def extension_of(filename: str, content_type: str) -> str:
    if "." in filename:
        return filename.rsplit(".", 1)[1].lower()
    return (mimetypes.guess_extension(content_type) or ".bin").lstrip(".")


async def collect_outputs(
    comfy: ComfyClient, blobs: WorkerBlobs, lease: Lease, entry: HistoryEntry
) -> list[OutputFile]:
    outputs: list[OutputFile] = []
    for node_id in sorted({*entry.outputs, *entry.texts}, key=_node_order):
        index = 0
        for ref in entry.outputs.get(node_id, ()):
            async with comfy.view(ref) as response:
                content_type = response.content_type
                ext = extension_of(ref.filename, content_type)
                key, size, sha = await blobs.write(
                    lease, f"{node_id}-{index}.{ext}", response.iter_bytes(), content_type
                )
            outputs.append(
                OutputFile(
                    key=key,
                    kind=kind_of(content_type),
                    content_type=content_type,
                    bytes=size,
                    sha256=sha,
                    node_id=str(node_id),
                )
            )
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
