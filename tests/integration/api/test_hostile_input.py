"""Hostile input through the real gateway: files, names, text, graphs, logs, tracebacks."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfygate.sim import SimServer
from tests.images import GPS_IFD, bomb_gif, bomb_png, encode, png
from tests.integration.api.helpers import declare_send_complete
from tests.integration.conftest import GatewayFactory, RunningGateway, SimFactory, wait_status
from tests.integration.sse import read_frames, terminal

IMAGE_OPS_JOBS = "/v1/workflows/image-ops/jobs"
TRAVERSAL_NAMES = [
    "../../x.png",
    "/etc/passwd",
    "C:\\Windows\\x.png",
    "..\\..\\x.png",
    "a\x00b.png",
    "inputs/other-upload/image.png",
]


@pytest.mark.parametrize("name", TRAVERSAL_NAMES)
async def test_the_clients_file_name_never_reaches_a_storage_key(
    gateway: RunningGateway, name: str
) -> None:
    async with gateway.client() as c:
        upload_id, done = await declare_send_complete(c, png(), filename=name)
        assert done.status_code == 200, done.text
        files: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
            (
                "params",
                (None, json.dumps({"params": {"steps": 2}}), "application/json"),
            ),
            ("image", (name, png(), "image/png")),
        ]
        job = await c.post("/v1/workflows/img2img/jobs", files=files)
        assert job.status_code == 202, job.text
        assert (await wait_status(c, job.json()["id"], "succeeded", "failed"))[
            "status"
        ] == "succeeded"
    storage = gateway.settings.storage_dir
    assert sorted(p.name for p in (storage / "inputs" / upload_id).iterdir()) == [
        "image.png",
        "upload.json",
    ]
    assert {p.name for p in gateway.settings.data_dir.parent.rglob("*")} & {
        "x.png",
        "passwd",
        "b.png",
    } == set()
    for meta in storage.glob("inputs/*/upload.json"):
        record = json.loads(meta.read_text())
        assert record["filename"] == "image.png" and name not in meta.read_text()


@pytest.mark.parametrize(
    ("bomb", "content_type"),
    [(bomb_png(50_000, 50_000), "image/png"), (bomb_gif(), "image/gif")],
    ids=["header", "gif-later-frame"],
)
async def test_a_decompression_bomb_is_refused_with_422_on_both_paths(
    gateway: RunningGateway, bomb: bytes, content_type: str
) -> None:
    async with gateway.client() as c:
        upload_id, done = await declare_send_complete(c, bomb, content_type=content_type)
        assert done.status_code == 422
        assert done.json()["error"]["details"][0]["path"] == "/file"
        assert not (gateway.settings.storage_dir / "inputs" / upload_id / "original").exists()
        files: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
            ("params", (None, json.dumps({"params": {}}), "application/json")),
            ("image", ("bomb", bomb, content_type)),
        ]
        r = await c.post("/v1/workflows/img2img/jobs", files=files)
        assert r.status_code == 422
        assert r.json()["error"]["details"][0]["path"] == "/image"
        assert "pixels" in r.json()["error"]["details"][0]["message"]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "image/png"),
        (encode(Image.new("RGB", (8, 8)), "BMP"), "image/png"),
        (b"GIF89a" + b"<script>alert(1)</script>" * 3, "image/gif"),
    ],
)
async def test_other_formats_are_refused(
    gateway: RunningGateway, data: bytes, content_type: str
) -> None:
    async with gateway.client() as c:
        _, done = await declare_send_complete(c, data, content_type=content_type)
    assert done.status_code == 422 and done.json()["error"]["code"] == "invalid_upload"


async def test_exif_gps_is_gone_before_the_backend_sees_the_picture(
    gateway: RunningGateway, sim: SimServer
) -> None:
    exif = Image.Exif()
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (48.0, 51.0, 30.0)})
    exif[0x010F] = "SpyCam"
    photo = encode(Image.new("RGB", (64, 48), (9, 99, 199)), "JPEG", exif=exif.tobytes())
    async with gateway.client() as c:
        upload_id, done = await declare_send_complete(c, photo, content_type="image/jpeg")
        assert done.status_code == 200, done.text
        job = await c.post(
            "/v1/workflows/img2img/jobs", json={"params": {"image": upload_id, "steps": 2}}
        )
        assert (await wait_status(c, job.json()["id"], "succeeded", "failed"))[
            "status"
        ] == "succeeded"
    kept = (gateway.settings.storage_dir / "inputs" / upload_id / "image.jpg").read_bytes()
    [sent] = [p for p in sim.config.input_dir.rglob("*") if p.is_file()]
    for data in (kept, sent.read_bytes()):
        assert b"SpyCam" not in data
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and not img.getexif().get_ifd(GPS_IFD)


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": {"3": {"class_type": "KSampler", "inputs": {}}}},
        {"params": {"prompt": "a cat"}, "graph": {"3": {"class_type": "SaveImage"}}},
        {"params": {"prompt": "a cat"}, "workflow": {}, "extra_data": {}},
        {"params": {"prompt": {"3": {"class_type": "KSampler", "inputs": {}}}}},
    ],
)
async def test_the_public_api_never_takes_a_graph(
    gateway: RunningGateway, body: dict[str, Any]
) -> None:
    async with gateway.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json=body)
        assert r.status_code == 422, r.text
        paths = {d["path"] for d in r.json()["error"]["details"]}
        assert paths & {"/prompt", "/graph", "/workflow", "/extra_data"}
        # nor does it speak ComfyUI's own protocol anywhere
        for path in ("/prompt", "/api/prompt", "/v1/prompt"):
            assert (await c.post(path, json={"prompt": {}})).status_code in (404, 405)
        assert (await c.get("/v1/jobs?limit=200")).json()["jobs"] == []


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"prompt": "a cat\x00"}, "/prompt"),
        ({"prompt": "a cat\x1b[31m red"}, "/prompt"),
        ({"prompt": "a cat", "negative_prompt": "x" * 2001}, "/negative_prompt"),
    ],
)
async def test_text_parameters_are_bounded_and_free_of_control_characters(
    gateway: RunningGateway, params: dict[str, Any], path: str
) -> None:
    async with gateway.client() as c:
        r = await c.post("/v1/workflows/txt2img/jobs", json={"params": params})
        assert r.status_code == 422, r.text
        assert [d["path"] for d in r.json()["error"]["details"]] == [path]
        ok = await c.post(
            "/v1/workflows/txt2img/jobs", json={"params": {"prompt": "line one\n\tline two"}}
        )
        assert ok.status_code == 202


async def test_an_error_repeats_a_prefix_of_a_huge_value_not_the_value(
    gateway: RunningGateway,
) -> None:
    huge = "q" * 3_000_000
    async with gateway.client() as c:
        too_long = await c.post("/v1/workflows/txt2img/jobs", json={"params": {"prompt": huge}})
        unknown = await c.post("/v1/workflows/txt2img/jobs", json={"params": {huge: 1}})
        field = await c.post("/v1/workflows/txt2img/jobs", json={"params": {}, huge: 1})
    assert too_long.status_code == 422
    [detail] = too_long.json()["error"]["details"]
    assert (detail["path"], detail["keyword"]) == ("/prompt", "maxLength")
    assert "3000002 characters" in detail["message"], "says how long the value was"
    for r in (too_long, unknown, field):
        assert r.status_code == 422
        assert len(r.content) < 4096, f"a {len(r.content)}-byte answer to a 3 MB value"


@pytest.mark.parametrize(
    ("metadata", "path"),
    [
        ({"a\x00b": 1}, "/metadata"),
        ({"note": "\x00"}, "/metadata/note"),
        ({"big": "m" * 100_000}, "/metadata"),
        ([], "/metadata"),
    ],
)
async def test_metadata_is_bounded_and_plain(
    gateway: RunningGateway, metadata: Any, path: str
) -> None:
    deep: Any = "leaf"
    for _ in range(200):
        deep = {"k": deep}
    async with gateway.client() as c:
        r = await c.post(IMAGE_OPS_JOBS, json={"params": {}, "metadata": metadata})
        too_deep = await c.post(IMAGE_OPS_JOBS, json={"params": {}, "metadata": deep})
        ok = await c.post(IMAGE_OPS_JOBS, json={"params": {}, "metadata": {"order": [1, "x"]}})
    assert r.status_code == 422, r.text
    assert [d["path"] for d in r.json()["error"]["details"]] == [path]
    assert too_deep.status_code == 422, too_deep.text
    assert too_deep.json()["error"]["details"][0]["keyword"] == "maxDepth"
    assert ok.status_code == 202 and ok.json()["metadata"] == {"order": [1, "x"]}


PROMPT = "zebra-quokka-7731 riding a unicycle"


@pytest.mark.parametrize("log_prompts", [False, True])
async def test_logs_hold_no_prompt_text_unless_configured(
    start_sim: SimFactory,
    start_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
    log_prompts: bool,
) -> None:
    good = await start_sim()
    failing = await start_sim(fail_rate=1.0, seed=1)
    caplog.set_level(logging.DEBUG)
    for backend in (good, failing):
        gw = await start_gateway(backend.url, log_prompts=log_prompts)
        async with gw.client() as c:
            job = await c.post(
                "/v1/workflows/txt2img/jobs", json={"params": {"prompt": PROMPT, "steps": 2}}
            )
            await wait_status(c, job.json()["id"], "succeeded", "failed")
            # a refused submit too: its value is echoed to the client, not to the log
            await c.post(
                "/v1/workflows/txt2img/jobs",
                json={"params": {"prompt": PROMPT, "steps": "many"}},
            )
        await gw.stop()
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert "accepted: txt2img" in logged
    assert ("zebra-quokka-7731" in logged) is log_prompts


async def test_a_node_failure_reaches_clients_without_traceback_or_server_paths(
    start_sim: SimFactory, start_gateway: GatewayFactory, workflows_dir: Path
) -> None:
    sim = await start_sim()
    # A file LoadImage cannot decode: PIL names its full path, ComfyUI adds a traceback.
    sim.config.input_dir.mkdir(parents=True, exist_ok=True)
    (sim.config.input_dir / "broken.png").write_bytes(b"this is not a picture")
    folder = workflows_dir / "broken-input"
    shutil.copytree(workflows_dir / "image-ops", folder)
    (folder / "workflow.api.json").write_text(
        json.dumps(
            {
                "1": {"class_type": "LoadImage", "inputs": {"image": "broken.png"}},
                "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
            }
        )
    )
    (folder / "contract.json").write_text(
        json.dumps(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {},
                "x-comfygate": {"title": "Broken input"},
            }
        )
    )
    gw = await start_gateway(sim.url)
    async with gw.client() as c:
        job = (await c.post("/v1/workflows/broken-input/jobs", json={"params": {}})).json()
        frames = await read_frames(c, job["urls"]["events"], until=terminal)
        done = (await c.get(f"/v1/jobs/{job['id']}")).json()
    async with httpx.AsyncClient(base_url=sim.url) as raw:
        history = (await raw.get("/history")).json()
    [entry] = history.values()
    [(_, comfy_error)] = [m for m in entry["status"]["messages"] if m[0] == "execution_error"]
    # what the backend said carries both, so the test below means something
    assert comfy_error["traceback"] and str(sim.config.data_dir) in json.dumps(comfy_error)
    error_file = gw.settings.storage_dir / f"jobs/{job['id']}/error.json"
    seen = {
        "api": done["error"],
        "sse": [f.data.get("error") for f in frames if f.type == "status"][-1],
        "error.json": json.loads(error_file.read_text()),
    }
    for where, error in seen.items():
        text = json.dumps(error)
        assert error["code"] == "execution_failed", where
        assert (error["node_id"], error["class_type"]) == ("1", "LoadImage"), where
        assert error["message"] == "UnidentifiedImageError: cannot identify image file 'broken.png'"
        for leak in ("Traceback", 'File "', str(sim.config.data_dir), "/tmp", "execution.py"):
            assert leak not in text, (where, leak)


def deep(levels: int) -> str:
    """JSON ``levels`` objects and arrays deep, as text: json.dumps could not write it."""
    return '{"a": [' * (levels // 2) + "1" + "]}" * (levels // 2)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (f'{{"params": {{"prompt": "a cat", "steps": {deep(2000)}}}}}', "/params"),
        (f'{{"params": {{"prompt": "a cat"}}, "metadata": {deep(5000)}}}', "/metadata"),
        (f'{{"params": {{"prompt": "a cat"}}, "metadata": {deep(200)}}}', "/metadata"),
        ("[" * 5000 + "]" * 5000, "/"),
    ],
    ids=["params-2000", "metadata-5000", "metadata-200", "body-5000"],
)
@pytest.mark.parametrize("multipart", [False, True], ids=["json", "multipart"])
async def test_json_nested_too_deep_is_a_422_naming_the_field(
    gateway: RunningGateway, body: str, path: str, multipart: bool
) -> None:
    async with gateway.client() as c:
        if multipart:
            part = (None, body, "application/json")
            r = await c.post("/v1/workflows/img2img/jobs", files=[("params", part)])
        else:
            r = await c.post(
                "/v1/workflows/txt2img/jobs",
                content=body,
                headers={"content-type": "application/json"},
            )
        assert r.status_code == 422, r.text
        [detail] = r.json()["error"]["details"]
        assert (detail["path"], detail["keyword"]) == (path, "maxDepth")
        assert (await c.get("/v1/jobs")).json()["jobs"] == []
