"""Uploads and /view, against the recorded answers of a real ComfyUI 0.3.64."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.integration.sim.conftest import Sim
from tests.recordings import sample


def png(color: tuple[int, int, int], alpha: int | None = None) -> bytes:
    mode, fill = ("RGB", color) if alpha is None else ("RGBA", (*color, alpha))
    buf = io.BytesIO()
    Image.new(mode, (16, 12), fill).save(buf, format="PNG")
    return buf.getvalue()


async def test_upload_names_follow_the_recording(sim: Sim) -> None:
    recorded = sample("upload_image.json")
    a, b = png((1, 2, 3)), png((4, 5, 6))
    steps: list[tuple[str, bytes, dict[str, str]]] = [
        ("first", a, {}),
        ("same_name_same_bytes", a, {}),
        ("same_name_diff_bytes", b, {}),
        ("overwrite_true", b, {"overwrite": "true"}),
        ("subfolder", a, {"subfolder": "gw/job1"}),
        ("type_temp", a, {"type": "temp"}),
        ("traversal", a, {}),
        ("traversal_subfolder", a, {"subfolder": "../../etc"}),
    ]
    for name, content, fields in steps:
        case = recorded[name]
        files = {"image": (case["filename_sent"], content, "image/png")}
        response = await sim.http.post("/upload/image", files=files, data=fields)
        assert response.status_code == case["status"], name
        assert (response.json() if response.status_code == 200 else "") == case["body"], name
    response = await sim.http.post("/upload/image", data={"subfolder": "x"})
    assert response.status_code == recorded["no_image_field"]["status"]
    assert (sim.data_dir / "input" / "probe_in.png").read_bytes() == b
    assert (sim.data_dir / "input" / "probe_in (1).png").read_bytes() == b
    assert (sim.data_dir / "input" / "gw" / "job1" / "probe_sub.png").exists()
    assert not (sim.data_dir / "evil.png").exists()


async def test_load_image_lists_the_input_folder(sim: Sim) -> None:
    before = (await sim.http.get("/object_info/LoadImage")).json()
    assert before["LoadImage"]["input"]["required"]["image"][0] == []
    for name in ("b.png", "a.png"):
        await sim.http.post("/upload/image", files={"image": (name, png((9, 9, 9)), "image/png")})
    await sim.http.post("/upload/image", files={"image": ("notes.txt", b"x", "text/plain")})
    after = (await sim.http.get("/api/object_info/LoadImage")).json()
    assert after["LoadImage"]["input"]["required"]["image"] == [
        ["a.png", "b.png"],
        {"image_upload": True},
    ]


async def _make_output(sim: Sim) -> None:
    files = {"image": ("probe_in.png", png((200, 100, 50), alpha=128), "image/png")}
    await sim.http.post("/upload/image", files=files)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "probe_in.png"}},
        "2": {
            "class_type": "ImageScale",
            "inputs": {
                "image": ["1", 0],
                "upscale_method": "bilinear",
                "width": 32,
                "height": 32,
                "crop": "center",
            },
        },
        "3": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": "gw/job1/scaled"},
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    entry = await sim.history(await sim.submit(prompt))
    assert entry["outputs"]["3"]["images"] == [
        {"filename": "scaled_00001_.png", "subfolder": "gw/job1", "type": "output"}
    ]


async def test_view_variants_follow_the_recording(sim: Sim) -> None:
    await _make_output(sim)
    recorded: dict[str, Any] = sample("view_variants.json")
    temp_name = next((sim.data_dir / "temp").iterdir()).name
    recorded["temp_preview"]["params"]["filename"] = temp_name
    recorded["temp_preview"]["content_disposition"] = f'filename="{temp_name}"'
    for name, case in recorded.items():
        response = await sim.http.get("/view", params=case["params"])
        assert response.status_code == case["status"], name
        if case["status"] != 200:
            assert response.content == b"", name
            continue
        assert response.headers["content-type"] == case["content_type"], name
        assert response.headers["content-disposition"] == case["content_disposition"], name
        assert "cache-control" not in response.headers, name
        assert response.content[:4].hex() == case["magic"], name
    plain = await sim.http.get(
        "/view", params={"filename": "scaled_00001_.png", "subfolder": "gw/job1"}
    )
    assert {"etag", "last-modified", "accept-ranges"} <= set(plain.headers)
    rgb = Image.open(
        io.BytesIO(
            (
                await sim.http.get(
                    "/view", params={"filename": "probe_in.png [input]", "channel": "rgb"}
                )
            ).content
        )
    )
    alpha = Image.open(
        io.BytesIO(
            (
                await sim.http.get(
                    "/view", params={"filename": "probe_in.png [input]", "channel": "a"}
                )
            ).content
        )
    )
    pixel = alpha.getpixel((0, 0))
    assert rgb.mode == "RGB" and isinstance(pixel, tuple) and pixel[3] == 128


async def test_origin_check_and_api_prefix(sim: Sim) -> None:
    foreign = await sim.http.get("/queue", headers={"Origin": "http://evil.example"})
    assert (foreign.status_code, foreign.content) == (403, b"")
    post = await sim.http.post(
        "/api/prompt", json={"prompt": {}}, headers={"Origin": "http://evil.example"}
    )
    assert post.status_code == 403
    host = sim.server.url.removeprefix("http://")
    same = await sim.http.get("/api/queue", headers={"Origin": f"http://{host}"})
    assert same.json() == {"queue_running": [], "queue_pending": []}
    assert (await sim.http.options("/prompt")).status_code == 200
    assert (await sim.http.get("/features")).json() == {
        "supports_preview_metadata": True,
        "max_upload_size": 104857600,
    }
    stats = (await sim.http.get("/api/system_stats")).json()
    assert stats["system"]["comfyui_version"] == "0.3.64" and stats["system"]["ram_total"] > 0
    assert stats["devices"][0]["vram_total"] == stats["system"]["ram_total"]
    assert (await sim.http.get("/object_info/NoSuch")).json() == {}
