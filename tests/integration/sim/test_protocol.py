"""The simulator against recorded ComfyUI 0.3.64 exchanges: messages, history, errors."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.sim.conftest import Sim, basic_prompt, kinds
from tests.recordings import sample


def shape(value: Any) -> Any:
    """Structure without values: dict keys, list lengths, scalar types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def recorded_kinds(name: str, key: str | None = None) -> list[str]:
    data = sample(name)
    entries = data[key] if key else data
    return [
        f"bin{e['msg']['event_type']}" if e["kind"] == "binary" else e["msg"]["type"]
        for e in entries
    ]


async def test_basic_run_sends_the_recorded_messages_in_order(sim: Sim) -> None:
    ws = await sim.socket("probe")
    prompt_id = await sim.submit(basic_prompt())
    got = await ws.until_done(prompt_id)
    assert kinds(got) == recorded_kinds("ws_basic_run.json")[1:]
    # The progress_state snapshots grow node by node, like the real ones.
    recorded = [e["msg"] for e in sample("ws_basic_run.json")[1:]]
    for mine, real in zip(got, recorded, strict=True):
        if real["type"] == "progress_state":
            assert shape(mine["data"]["nodes"]) == shape(real["data"]["nodes"])
            states = {k: (v["state"], v["value"]) for k, v in mine["data"]["nodes"].items()}
            assert states == {k: (v["state"], v["value"]) for k, v in real["data"]["nodes"].items()}


async def test_history_has_the_recorded_shape(sim: Sim) -> None:
    prompt_id = await sim.submit(basic_prompt())
    entry = await sim.history(prompt_id)
    (real,) = sample("history_basic.json").values()
    assert shape(entry) == shape(real)
    assert entry["prompt"][2:] == [real["prompt"][2], {"client_id": "probe"}, ["3"]]
    assert entry["outputs"] == real["outputs"]
    assert entry["meta"] == real["meta"]


def normalise(body: Any, root: str) -> Any:
    text = json.dumps(body).replace(root, "<comfy_root>")
    out = json.loads(text)
    if isinstance(out, dict):
        out.pop("prompt_id", None)
        out.pop("number", None)
    return out


async def test_every_recorded_prompt_gets_the_recorded_answer(sim: Sim) -> None:
    cases = sample("post_prompt_errors.json")
    root = str(sim.data_dir.resolve())
    for name, case in cases.items():
        request = case["request"]
        if isinstance(request, str):  # the malformed body, recorded as a bytes repr
            response = await sim.http.post("/prompt", content=b"{not json")
        else:
            response = await sim.http.post("/prompt", json=request)
        assert response.status_code == case["status"], name
        if isinstance(case["response"], str):
            assert response.headers["content-type"].startswith("text/plain"), name
            assert response.text == case["response"], name
        else:
            assert normalise(response.json(), root) == normalise(case["response"], root), name
            if "prompt_id" in request:
                assert response.json()["prompt_id"] == request["prompt_id"]


async def test_numbers_count_up_and_front_goes_negative(sim: Sim) -> None:
    first = (await sim.http.post("/prompt", json={"prompt": basic_prompt(1)})).json()
    second = (
        await sim.http.post("/prompt", json={"prompt": basic_prompt(2), "front": True})
    ).json()
    explicit = (
        await sim.http.post("/prompt", json={"prompt": basic_prompt(3), "number": 7.5})
    ).json()
    assert (first["number"], second["number"], explicit["number"]) == (0, -1, 7.5)


async def test_float_for_int_is_stored_coerced(sim: Sim) -> None:
    prompt = basic_prompt()
    prompt["1"]["inputs"]["width"] = 64.7
    prompt["1"]["inputs"]["bogus_extra"] = 5
    entry = await sim.history(await sim.submit(prompt))
    assert entry["prompt"][2]["1"]["inputs"]["width"] == 64
    assert entry["status"]["status_str"] == "success"


async def test_partial_acceptance_runs_only_the_valid_output(sim: Sim) -> None:
    case = sample("post_prompt_errors.json")["enum_value_not_in_list + one_valid_output"]
    response = await sim.http.post("/prompt", json={**case["request"], "client_id": "probe"})
    body = response.json()
    assert response.status_code == 200 and body["node_errors"]["4"]["dependent_outputs"] == ["5"]
    entry = await sim.history(body["prompt_id"])
    assert entry["prompt"][4] == ["3"]
    assert list(entry["outputs"]) == ["3"]


async def test_cached_rerun_replays_the_old_file(sim: Sim) -> None:
    ws = await sim.socket("probe")
    first = await sim.submit(basic_prompt())
    await ws.until_done(first)
    again = await sim.submit(basic_prompt())
    got = await ws.until_done(again)
    assert kinds(got) == recorded_kinds("ws_cached_rerun.json")
    cached = next(m for m in got if isinstance(m, dict) and m["type"] == "execution_cached")
    assert cached["data"]["nodes"] == ["1", "2", "3"]
    executed = next(m for m in got if isinstance(m, dict) and m["type"] == "executed")
    assert executed["data"]["output"]["images"][0]["filename"] == "basic_00001_.png"
    final_state = [m for m in got if m["type"] == "progress_state"][-1]["data"]["nodes"]
    assert final_state["3"]["value"] == 1 and isinstance(final_state["3"]["value"], int)
    assert sorted(p.name for p in (sim.data_dir / "output").iterdir()) == ["basic_00001_.png"]

    renamed = await sim.submit(basic_prompt(prefix="basic_renamed"))
    got = await ws.until_done(renamed)
    assert kinds(got) == recorded_kinds("ws_prefix_change_rerun.json")
    assert next(m for m in got if isinstance(m, dict) and m["type"] == "execution_cached")["data"][
        "nodes"
    ] == ["1", "2"]


async def test_cache_is_global_across_clients_and_node_ids(sim: Sim) -> None:
    ws = await sim.socket("other")
    await sim.history(await sim.submit(basic_prompt(), client_id="probe"))
    renumbered = {
        "10": basic_prompt()["1"],
        "20": {"class_type": "ImageInvert", "inputs": {"image": ["10", 0]}},
        "30": {
            "class_type": "SaveImage",
            "inputs": {"images": ["20", 0], "filename_prefix": "basic"},
        },
    }
    got = await ws.until_done(await sim.submit(renumbered, client_id="other"))
    assert next(m for m in got if isinstance(m, dict) and m["type"] == "execution_cached")["data"][
        "nodes"
    ] == [
        "10",
        "20",
        "30",
    ]


async def test_free_memory_drops_the_cache(sim: Sim) -> None:
    await sim.history(await sim.submit(basic_prompt()))
    assert (await sim.http.post("/free", json={"free_memory": True})).status_code == 200
    assert (await sim.http.post("/free", content=b"")).status_code == 500
    entry = await sim.history(await sim.submit(basic_prompt()))
    assert entry["outputs"]["3"]["images"][0]["filename"] == "basic_00002_.png"


async def test_load_scale_save_runs_outputs_first(sim: Sim) -> None:
    files = {"image": ("probe_sub.png", _png(), "image/png")}
    await sim.http.post("/upload/image", files=files, data={"subfolder": "gw/job1"})
    ws = await sim.socket("probe")
    real_entry = sample("history_load_scale_save.json")
    prompt_id = await sim.submit(real_entry["prompt"][2])
    got = await ws.until_done(prompt_id)
    assert kinds(got) == recorded_kinds("ws_load_scale_save.json")[1:]
    executing = [m["data"]["node"] for m in got if m["type"] == "executing"]
    assert executing == ["1", "4", "2", "3", None]
    entry = await sim.history(prompt_id)
    assert entry["outputs"]["3"] == real_entry["outputs"]["3"]
    (temp,) = entry["outputs"]["4"]["images"]
    assert temp["type"] == "temp" and temp["filename"].startswith("ComfyUI_temp_")
    assert temp["filename"].endswith("_00001_.png") and len(temp["filename"]) == 29


async def test_routing_follows_client_ids(sim: Sim) -> None:
    owner = await sim.socket("owner")
    observer = await sim.socket("observer")
    prompt_id = await sim.submit(basic_prompt(5), client_id="owner")
    await owner.until_done(prompt_id)
    await sim.history(prompt_id)
    seen = await observer.until_idle()
    assert kinds(seen) == ["status", "status", "status"]

    anonymous = await sim.submit(basic_prompt(6), client_id=None)
    await sim.history(anonymous)
    seen = await observer.until_idle()
    # The recording starts with the socket's own greeting, which socket() has consumed.
    assert kinds(seen) == sample("errors_and_clients.json")["no_client_id_observer_saw"][1:]


async def test_runtime_error_matches_the_recorded_one(sim: Sim) -> None:
    files = {"image": ("not_really.png", b"this is text", "image/png")}
    await sim.http.post("/upload/image", files=files)
    ws = await sim.socket("probe")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "not_really.png"}},
        "2": {
            "class_type": "SaveImage",
            "inputs": {"images": ["1", 0], "filename_prefix": "never"},
        },
    }
    prompt_id = await sim.submit(prompt)
    got = await ws.until_done(prompt_id)
    recorded = sample("errors_and_clients.json")
    assert kinds(got) == [e["msg"]["type"] for e in recorded["runtime_error_ws"][1:]]
    error = next(m for m in got if isinstance(m, dict) and m["type"] == "execution_error")["data"]
    real = next(
        e["msg"]["data"]
        for e in recorded["runtime_error_ws"]
        if e["msg"]["type"] == "execution_error"
    )
    root = str(sim.data_dir.resolve())
    mine = normalise({**error, "prompt_id": "x", "timestamp": 0}, root)
    assert mine == normalise({**real, "prompt_id": "x", "timestamp": 0}, root)
    entry = await sim.history(prompt_id)
    assert shape(entry) == shape(recorded["runtime_error_history"][real["prompt_id"]])


async def test_reconnecting_socket_is_told_the_running_node(tmp_path: Any) -> None:
    from tests.integration.sim.conftest import sd_prompt, start_sim

    async for sim in start_sim(tmp_path, step_ms=40):
        first = await sim.socket("probe")
        prompt_id = await sim.submit(sd_prompt(steps=10))
        await first.until("progress")
        await first.ws.close()
        again = await sim.socket("probe")  # the status is consumed by socket()
        replay = await again.next()
        assert replay == {"type": "executing", "data": {"node": "3"}}
        assert (await again.until_done(prompt_id))[-1]["data"]["node"] is None


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()
