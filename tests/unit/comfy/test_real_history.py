"""History entries recorded from a real ComfyUI 0.3.64 running jobs sent by the gateway
(bench/real_comfyui.py): the parser must read every output kind they hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfygate.comfy.history import HistoryEntry, parse_history_entry

REAL = Path(__file__).resolve().parents[2] / "data" / "real"


def load(name: str) -> HistoryEntry:
    raw = json.loads((REAL / f"{name}.history.json").read_text())
    [(prompt_id, entry)] = raw.items()
    return parse_history_entry(prompt_id, entry)


def test_image_ops_saved_into_the_attempt_folder() -> None:
    entry = load("image-ops")
    assert entry.status_str == "success" and entry.error is None
    [(node, refs)] = entry.outputs.items()
    assert refs[0].type == "output" and refs[0].filename.endswith(".png")
    assert refs[0].subfolder.startswith("comfygate/") and refs[0].subfolder.endswith(f"/{node}")


def test_animated_webp_is_one_animated_file() -> None:
    [refs] = load("animated-webp").outputs.values()
    assert len(refs) == 1 and refs[0].filename.endswith(".webp") and refs[0].animated


@pytest.mark.parametrize("name", ["image-ops", "animated-webp"])
def test_file_outputs_have_no_text(name: str) -> None:
    assert not load(name).texts


def test_preview_any_is_text() -> None:
    entry = load("preview-any")
    assert not entry.outputs
    assert list(entry.texts.values()) == [("96",)]
