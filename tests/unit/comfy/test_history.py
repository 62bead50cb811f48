from __future__ import annotations

import json

from comfygate.comfy.history import ExecutionErrorInfo, OutputRef, parse_history_entry
from tests.recordings import sample
from tests.unit.comfy.recorded import history_sample


def test_outputs_of_save_and_preview() -> None:
    prompt_id, raw = history_sample("history_load_scale_save.json")
    entry = parse_history_entry(prompt_id, raw)
    assert entry.succeeded and entry.completed and entry.error is None
    assert entry.outputs == {
        "3": (OutputRef("scaled_00001_.png", "gw/job1", "output", "images"),),
        "4": (OutputRef("ComfyUI_temp_ugpsh_00001_.png", "", "temp", "images"),),
    }
    assert entry.prompt["3"]["inputs"]["filename_prefix"] == "gw/job1/scaled"
    assert [name for name, _ in entry.messages] == [
        "execution_start",
        "execution_cached",
        "execution_success",
    ]


def test_error_entry_is_cleaned() -> None:
    prompt_id, raw = history_sample("errors_and_clients.json#runtime_error_history")
    entry = parse_history_entry(prompt_id, raw)
    assert not entry.succeeded and not entry.completed and not entry.interrupted
    assert entry.outputs == {}
    assert entry.error == ExecutionErrorInfo(
        "1",
        "LoadImage",
        "PIL.UnidentifiedImageError",
        "cannot identify image file 'not_really.png'",
    )
    text = json.dumps(entry.messages)
    assert "traceback" not in text and "<comfy" not in text


def test_interrupted_entry() -> None:
    interrupted = sample("queue_interrupt.json#ws_after_interrupt_running_target")[-1]["msg"]
    raw = {
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_interrupted", interrupted["data"]]],
        },
    }
    entry = parse_history_entry("p", raw)
    assert entry.interrupted and entry.error is None and not entry.succeeded


def test_error_without_message_still_is_an_error() -> None:
    entry = parse_history_entry("p", {"status": {"status_str": "error", "completed": False}})
    assert entry.error is not None and not entry.succeeded


def test_animated_video_audio_text_and_unknown_kinds() -> None:
    file = {"filename": "a_00001_.webp", "subfolder": "x", "type": "output"}
    raw = {
        "outputs": {
            "5": {"images": [file], "animated": [True]},
            "6": {"images": [file], "animated": [False]},
            "7": {
                "audio": [{**file, "filename": "s.flac"}],
                "video": [{**file, "filename": "v.mp4"}],
            },
            "8": {"text": ["width: 96"]},
            "9": {"3d": [{**file, "filename": "m.glb"}], "result": ["m.glb", None]},
        },
        "status": {"status_str": "success", "completed": True, "messages": []},
    }
    entry = parse_history_entry("p", raw)
    assert entry.outputs["5"] == (
        OutputRef("a_00001_.webp", "x", "output", "images", animated=True),
    )
    assert entry.outputs["6"][0].animated is False
    assert [(r.kind, r.filename) for r in entry.outputs["7"]] == [
        ("audio", "s.flac"),
        ("video", "v.mp4"),
    ]
    assert entry.texts == {"8": ("width: 96",)}
    assert "8" not in entry.outputs
    assert [(r.kind, r.filename) for r in entry.outputs["9"]] == [("3d", "m.glb")]


def test_tolerates_odd_entries() -> None:
    entry = parse_history_entry("p", {"outputs": {"1": "x"}, "status": None, "prompt": "?"})
    assert entry.outputs == {} and entry.status_str == "" and entry.prompt == {}
