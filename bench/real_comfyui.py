"""Compatibility check: run workflows through the gateway against a real ComfyUI.

    .venv/bin/python bench/real_comfyui.py --comfy http://127.0.0.1:8188

Starts a gateway in front of that server, runs image-ops, animated-webp and
preview-any through the public API, checks the outputs, and saves each attempt's
``/history`` entry under ``tests/data/real/`` (server paths scrubbed).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ["image-ops", "animated-webp", "preview-any"]


def scrub(text: str) -> str:
    return re.sub(r"(/[\w.\-]+)+/(input|output|temp)/", r"<comfy_root>/\2/", text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comfy", required=True)
    parser.add_argument("--port", type=int, default=8790)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as data:
        gw = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "comfygate",
                "serve",
                "--allow-anonymous",
                "--port",
                str(args.port),
                "--data-dir",
                data,
                "--workflows",
                str(ROOT / "workflows"),
                "--comfy",
                args.comfy,
            ]
        )
        try:
            for _ in range(100):
                try:
                    if all(httpx.get(f"{url}/healthz").json()["backends"].values()):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                time.sleep(0.2)
            version = httpx.get(f"{args.comfy}/system_stats").json()["system"]["comfyui_version"]
            print(f"real ComfyUI {version} at {args.comfy}")
            failures = 0
            with httpx.Client(base_url=url, timeout=60) as client:
                for name in WORKFLOWS:
                    wf = client.get(f"/v1/workflows/{name}").json()
                    params = wf["examples"][0]["params"]
                    start = time.monotonic()
                    job = client.post(f"/v1/workflows/{name}/jobs", json={"params": params}).json()
                    while job["status"] not in ("succeeded", "failed", "canceled", "expired"):
                        time.sleep(0.1)
                        job = client.get(f"/v1/jobs/{job['id']}").json()
                    took = time.monotonic() - start
                    attempts = client.get(f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
                    prompt_id = attempts[-1]["prompt_id"]
                    history = httpx.get(f"{args.comfy}/history/{prompt_id}").json()
                    (ROOT / "tests" / "data" / "real" / f"{name}.history.json").write_text(
                        scrub(json.dumps(history, indent=1)) + "\n"
                    )
                    outs = []
                    for asset in job["outputs"]:
                        body = client.get(asset["url"]).content
                        ok = len(body) == asset["bytes"]
                        outs.append(
                            f"{asset['kind']} {asset['content_type']} {len(body)} B"
                            f"{'' if ok else ' SIZE MISMATCH'}"
                        )
                    good = job["status"] == "succeeded" and job["outputs"]
                    failures += not good
                    print(
                        f"{name:<14} {job['status']:<9} {took * 1000:6.0f} ms  "
                        f"prompt {prompt_id}  outputs: {'; '.join(outs) or job.get('error')}"
                    )
            return 1 if failures else 0
        finally:
            gw.terminate()
            gw.wait(10)


if __name__ == "__main__":
    sys.exit(main())
