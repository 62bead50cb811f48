"""What comfygate adds on top of talking to ComfyUI directly.

Both sides run ``image-ops`` at its first example against the same simulator process:
the direct client posts the patched graph (fresh SaveImage prefix each run), follows
its WebSocket to ``execution_success``, reads ``/history`` and downloads with ``/view``;
comfygate is driven through its API (submit, SSE until succeeded, download). A third
side, the floor, sends the same three requests to a bare FastAPI app on the gateway's
server stack that answers them from a recording of one comfygate job
(bench/contract_floor.py): what the job contract costs before any work, so the direct
time plus the floor is what a gateway on this stack that did nothing would take. Then
200 jobs of 100 ms of work each over 4 simulator backends, against the ideal.

    .venv/bin/python bench/overhead.py [--runs 200]
    .venv/bin/python bench/overhead.py --part latency --comfy http://127.0.0.1:8188

The second form measures the latency part against a running (real) ComfyUI instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from comfygate.comfy.client import ComfyClient
from comfygate.comfy.graph import set_output_prefix
from comfygate.comfy.messages import Executing, ExecutionError, ExecutionSuccess
from comfygate.contracts import load_workflow, patch_graph, validate_params
from comfygate.ids import new_prompt_id
from comfygate.serve import free_port, spawn_gateway, start_simulator, stop_process
from comfygate.sse import SseParser

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "comfyui" / "samples" / "bench.json"
#: the recorded real server, sequential unique 64x64 EmptyImage → SaveImage (round 2)
REAL_P50_MS = 3.6


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def direct_run(comfy: ComfyClient, sock: Any, graph: dict[str, Any], n: int) -> float:
    start = time.perf_counter()
    prompt_id = new_prompt_id()
    await comfy.submit(set_output_prefix(graph, f"bench/direct/{n}"), prompt_id=prompt_id)
    async for msg in sock:
        if isinstance(msg, ExecutionSuccess | ExecutionError) and msg.prompt_id == prompt_id:
            break
    entry = await comfy.history(prompt_id)
    if entry is None:
        # ComfyUI writes the entry after execution_success, then sends executing(None).
        async for msg in sock:
            if isinstance(msg, Executing) and msg.node is None and msg.prompt_id == prompt_id:
                break
        entry = await comfy.history(prompt_id)
    assert entry is not None
    for refs in entry.outputs.values():
        for ref in refs:
            async with comfy.view(ref) as response:
                async for _ in response.iter_bytes():
                    pass
    return (time.perf_counter() - start) * 1000


async def trivial_run(comfy: ComfyClient, sock: Any, n: int) -> float:
    """The recorded real measurement's graph: POST → execution_success."""
    graph = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 1000 + n},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
    }
    prompt_id = new_prompt_id()
    start = time.perf_counter()
    await comfy.submit(graph, prompt_id=prompt_id)
    async for msg in sock:
        if isinstance(msg, ExecutionSuccess) and msg.prompt_id == prompt_id:
            break
    return (time.perf_counter() - start) * 1000


async def sse_status(stream: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The job resources of a stream's ``status`` events."""
    parser = SseParser()
    async for line in stream.aiter_lines():
        event = parser.feed(line)
        if event is not None and event.type == "status":
            yield event.json()


async def sse_status_of(response: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The same, read with aiohttp (the latency part's client, as on the direct side)."""
    parser = SseParser()
    async for raw in response.content:
        event = parser.feed(raw.decode().rstrip("\r\n"))
        if event is not None and event.type == "status":
            yield event.json()


def iso(value: str) -> float:
    return datetime.fromisoformat(value).timestamp() * 1000


async def gateway_run(
    client: aiohttp.ClientSession, comfy: ComfyClient, params: dict[str, Any]
) -> tuple[float, dict[str, float]]:
    start = time.perf_counter()
    wall_start = time.time() * 1000
    async with client.post("/v1/workflows/image-ops/jobs", json={"params": params}) as r:
        job = await r.json()
    seen_ms = 0.0
    async with client.get(job["urls"]["events"]) as stream:
        # Read to the end: the stream closes after the terminal status.
        async for event in sse_status_of(stream):
            job = event
            if job["status"] in ("succeeded", "failed", "canceled"):
                seen_ms = time.time() * 1000
    assert job["status"] == "succeeded", job
    for asset in job["outputs"]:
        async with client.get(asset["url"]) as download:
            await download.read()
    total = (time.perf_counter() - start) * 1000
    async with client.get(f"/v1/jobs/{job['id']}/attempts") as r:
        attempts = (await r.json())["attempts"]
    history = await comfy.history(attempts[-1]["prompt_id"])
    assert history is not None
    # ComfyUI's own timestamps of the attempt (epoch ms, on this machine's clock)
    stamps = {}
    raw = (await comfy._request("GET", f"/history/{attempts[-1]['prompt_id']}")).json()
    for name, data in raw[attempts[-1]["prompt_id"]]["status"]["messages"]:
        stamps[name] = data["timestamp"]
    split = {
        "submit→lease": iso(job["started_at"]) - max(iso(job["created_at"]), wall_start),
        "lease→POST": stamps["execution_start"] - iso(job["started_at"]),
        "success→stored": iso(job["finished_at"]) - stamps["execution_success"],
        "stored→client": seen_ms - iso(job["finished_at"]),
    }
    return total, split


def start_gateway(data: Path, backends: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    return spawn_gateway(data, ROOT / "workflows", backends)


async def record_job(client: aiohttp.ClientSession, params: dict[str, Any]) -> dict[str, Any]:
    """One job's answers as the client saw them: the floor app replays them."""
    async with client.post("/v1/workflows/image-ops/jobs", json={"params": params}) as r:
        submitted = await r.text()
    job = json.loads(submitted)
    async with client.get(job["urls"]["events"]) as stream:
        events = [chunk.decode() async for chunk in stream.content.iter_any()]
    async with client.get(f"/v1/jobs/{job['id']}") as r:
        job = await r.json()
    async with client.get(job["outputs"][0]["url"]) as download:
        output, content_type = await download.read(), download.headers["content-type"]
    return {
        "submit": submitted,
        "events": events,
        "output": output.hex(),
        "content_type": content_type,
    }


def start_floor(recording: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The contract floor app (bench/contract_floor.py) on a free port, once it answers."""
    port = free_port()
    server = ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    server += ["--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "contract_floor:app", "--port", str(port), *server],
        cwd=ROOT / "bench",
        env={**os.environ, "COMFYGATE_FLOOR": str(recording)},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{url}/output", timeout=1)
            return proc, url
        time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError("the contract floor app did not start")


async def floor_run(client: aiohttp.ClientSession, params: dict[str, Any]) -> float:
    """The gateway run's three requests against the floor app: submit, the stream to
    its end, the download."""
    start = time.perf_counter()
    async with client.post("/jobs", json={"params": params}) as r:
        assert r.status == 202
        await r.read()
    async with client.get("/events") as stream:
        async for _ in sse_status_of(stream):
            pass
    async with client.get("/output") as download:
        await download.read()
    return (time.perf_counter() - start) * 1000


async def latency(runs: int, tmp: Path, comfy_url: str | None = None) -> None:
    """Against the simulator, or against the ComfyUI at ``comfy_url`` (a real one)."""
    sim, sim_url = start_simulator(tmp / "sim") if comfy_url is None else (None, comfy_url)
    gateway, gw_url = start_gateway(tmp / "gw", [sim_url])
    try:
        comfy = ComfyClient(sim_url)
        wf = load_workflow(ROOT / "workflows" / "image-ops")
        params = dict(wf.examples[0]["params"])
        graph = patch_graph(wf, validate_params(wf, params))
        async with comfy.socket() as sock:
            for n in range(10):
                await trivial_run(comfy, sock, -n)
            trivial = [await trivial_run(comfy, sock, n) for n in range(50)]
        sim_p50 = statistics.median(trivial)
        print(
            f"{'simulator' if sim else 'ComfyUI at ' + sim_url} direct p50 {sim_p50:.1f} ms "
            "(EmptyImage→SaveImage 64², POST→success) "
            f"vs real ComfyUI recorded p50 {REAL_P50_MS:.1f} ms: {sim_p50 / REAL_P50_MS:.2f}x"
        )
        if sim and sim_p50 > 1.5 * REAL_P50_MS:
            print("stop: the simulator is more than 1.5x slower than the real server")
            raise SystemExit(1)

        direct: list[float] = []
        via: list[float] = []
        bare: list[float] = []
        splits: list[dict[str, float]] = []
        # Every side speaks HTTP through aiohttp, as the direct client (ComfyClient) does:
        # a slower client library on one side only would count as the gateway's time.
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(gw_url, timeout=timeout) as client,
            comfy.socket() as sock,
        ):
            for n in range(10):  # warm both paths
                await direct_run(comfy, sock, graph, -n - 1)
                await gateway_run(client, comfy, params)
            recording = tmp / "floor.json"
            recording.write_text(json.dumps(await record_job(client, params)))
            floor, floor_url = start_floor(recording)
            async with aiohttp.ClientSession(floor_url, timeout=timeout) as bare_client:
                for _ in range(10):
                    await floor_run(bare_client, params)
                # interleaved, so every side sees the same machine
                for n in range(runs):
                    direct.append(await direct_run(comfy, sock, graph, n))
                    total, split = await gateway_run(client, comfy, params)
                    via.append(total)
                    splits.append(split)
                    bare.append(await floor_run(bare_client, params))
        await comfy.aclose()
        d50, d95, g50, g95 = (pct(direct, 0.5), pct(direct, 0.95), pct(via, 0.5), pct(via, 0.95))
        f50, f95 = pct(bare, 0.5), pct(bare, 0.95)
        print(f"image-ops, {runs} runs each, interleaved:")
        print(f"  direct    p50 {d50:7.1f} ms  p95 {d95:7.1f} ms")
        print(f"  comfygate p50 {g50:7.1f} ms  p95 {g95:7.1f} ms")
        print(f"  ratio     p50 {g50 / d50:7.2f}x    p95 {g95 / d95:.2f}x   (aim: p50 ≤ 1.5x)")
        parts = "  ".join(f"{k} {statistics.median(s[k] for s in splits):.1f}" for k in splits[0])
        print(f"  added ms (p50 of each part): {parts}")
        print(
            f"  floor     p50 {f50:7.1f} ms  p95 {f95:7.1f} ms   (the same three requests "
            "answered from a recording by a bare FastAPI app: the contract before any work)"
        )
        print(
            f"  a gateway on this stack that did no work: (direct + floor) / direct = "
            f"{(d50 + f50) / d50:.2f}x at p50; comfygate's own work: {g50 - d50 - f50:.1f} ms"
        )
    finally:
        with contextlib.suppress(NameError):
            stop_process(floor)
        stop_process(gateway)
        if sim:
            stop_process(sim)


async def direct_backend(url: str, graphs: list[dict[str, Any]]) -> None:
    """A direct client with the same work: every prompt queued at once on its backend."""
    comfy = ComfyClient(url)
    async with comfy.socket() as sock:
        left = set()
        for graph in graphs:
            prompt_id = new_prompt_id()
            left.add(prompt_id)
            await comfy.submit(graph, prompt_id=prompt_id)
        async for msg in sock:
            if isinstance(msg, ExecutionSuccess):
                left.discard(msg.prompt_id)
                if not left:
                    break
    await comfy.aclose()


async def throughput(jobs: int, backends: int, work_ms: float, tmp: Path) -> None:
    steps = 4
    sims = [start_simulator(tmp / f"sim{i}", step_ms=work_ms / steps) for i in range(backends)]
    gateway, gw_url = start_gateway(tmp / "gw-tp", [url for _, url in sims])
    try:
        params = {"prompt": "throughput", "steps": steps, "width": 64, "height": 64}
        async with httpx.AsyncClient(base_url=gw_url, timeout=60) as client:
            # measure one job alone: the real work time behind the ideal
            start = time.perf_counter()
            r = await client.post("/v1/workflows/txt2img/jobs", json={"params": params})
            while (await client.get(f"/v1/jobs/{r.json()['id']}")).json()[  # noqa: ASYNC110
                "status"
            ] != "succeeded":
                await asyncio.sleep(0.005)
            # completions are followed on one SSE connection, as a web page would
            done: set[str] = set()
            all_done = asyncio.Event()
            listening = asyncio.Event()

            async def follow() -> None:
                async with client.stream("GET", "/v1/events", timeout=None) as stream:
                    listening.set()
                    async for job in sse_status(stream):
                        assert job["status"] != "failed", job
                        if job["status"] == "succeeded":
                            done.add(job["id"])
                            if len(done) >= jobs:
                                all_done.set()
                                return

            follower = asyncio.create_task(follow())
            await listening.wait()
            start = time.perf_counter()
            for n in range(jobs):
                await client.post(
                    "/v1/workflows/txt2img/jobs", json={"params": {**params, "seed": n}}
                )
            await asyncio.wait_for(all_done.wait(), 300)
            await follower
            wall = time.perf_counter() - start
        wf = load_workflow(ROOT / "workflows" / "txt2img")
        graphs = [
            set_output_prefix(patch_graph(wf, validate_params(wf, {**params, "seed": n})), f"d/{n}")
            for n in range(jobs)
        ]
        start = time.perf_counter()
        await asyncio.gather(
            *[direct_backend(url, graphs[i::backends]) for i, (_, url) in enumerate(sims)]
        )
        direct_rate = jobs / (time.perf_counter() - start)
        ideal = backends / (work_ms / 1000)
        rate = jobs / wall
        print(
            f"throughput: {jobs} jobs over {backends} simulator backends, {work_ms:.0f} ms of "
            f"sampling each (all on this machine's {os.cpu_count()} cores):"
        )
        print(
            f"  comfygate {rate:5.1f} jobs/s = {rate / ideal:.2f} of the ideal {ideal:.1f} "
            "(aim >= 0.95)"
        )
        print(
            f"  direct    {direct_rate:5.1f} jobs/s = {direct_rate / ideal:.2f} of the ideal; "
            f"comfygate/direct = {rate / direct_rate:.2f}"
        )
    finally:
        stop_process(gateway)
        for proc, _ in sims:
            stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--part", choices=["all", "latency", "throughput"], default="all")
    parser.add_argument(
        "--comfy",
        metavar="URL",
        help="run the latency part against this ComfyUI (a real one) instead of the simulator",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("all", "latency"):
            asyncio.run(latency(args.runs, Path(tmp), args.comfy))
        if args.part in ("all", "throughput"):
            asyncio.run(throughput(args.jobs, 4, 100.0, Path(tmp)))


if __name__ == "__main__":
    main()
