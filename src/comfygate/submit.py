"""``comfygate submit``: a client of the public API, with a progress bar."""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from comfygate.sse import SseEvent, SseParser

console = Console(stderr=True)


class SubmitError(Exception):
    pass


def parse_value(raw: str) -> Any:
    """``-p steps=20`` is a number, ``-p text=hello`` a string, ``-p x=[1,2]`` JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def parse_pairs(pairs: list[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SubmitError(f"{flag} {pair!r}: expected NAME=VALUE")
        out.append((key, value))
    return out


def sse_events(response: httpx.Response) -> Iterator[SseEvent]:
    parser = SseParser()
    for line in response.iter_lines():
        if (event := parser.feed(line)) is not None:
            yield event


def follow(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    """Follow the job's events until it ends, resuming after a dropped connection."""
    last_id: str | None = None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[node]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(job["status"], total=1.0, node="")
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                with client.stream(
                    "GET",
                    job["urls"]["events"],
                    headers=headers,
                    timeout=httpx.Timeout(10, read=60),
                ) as response:
                    if response.status_code != 200:
                        raise SubmitError(f"events: HTTP {response.status_code}")
                    for event in sse_events(response):
                        last_id = event.id or last_id
                        kind, data = event.type, event.json()
                        if kind == "progress":
                            bar.update(
                                task, completed=data["value"], node=data.get("current_node") or ""
                            )
                        elif kind == "status":
                            job = data
                            bar.update(
                                task, description=job["status"], completed=job["progress"]["value"]
                            )
                            if job["status"] in ("succeeded", "failed", "canceled", "expired"):
                                if job["status"] == "succeeded":
                                    bar.update(task, completed=1.0, node="")
                                return job
            except httpx.TransportError:
                time.sleep(1)


def run_submit(
    gateway: str,
    workflow: str,
    params: list[str],
    files: list[str],
    *,
    wait: bool,
    out: Path,
    idempotency_key: str | None = None,
    key: str | None = None,
) -> int:
    """Submit, and with ``wait`` follow and save; a gateway that cannot be reached, an
    answer that is not the gateway's, or a file that is not there is a SubmitError."""
    try:
        return _submit(
            gateway, workflow, params, files, wait=wait, out=out,
            idempotency_key=idempotency_key, key=key,
        )  # fmt: skip
    except httpx.TransportError as exc:
        raise SubmitError(
            f"cannot reach the gateway at {gateway} ({exc or type(exc).__name__}): "
            "is it running there? (--gateway URL or COMFYGATE_GATEWAY)"
        ) from None
    except json.JSONDecodeError:
        raise SubmitError(f"{gateway} answered, but not as a comfygate gateway does") from None
    except FileNotFoundError as exc:
        raise SubmitError(f"-f: no file {exc.filename}") from None


def _submit(
    gateway: str,
    workflow: str,
    params: list[str],
    files: list[str],
    *,
    wait: bool,
    out: Path,
    idempotency_key: str | None,
    key: str | None,
) -> int:
    values = {k: parse_value(v) for k, v in parse_pairs(params, "-p")}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=gateway, timeout=30, headers=auth) as client:
        url = f"/v1/workflows/{workflow}/jobs"
        if files:
            parts: list[tuple[str, Any]] = [
                ("params", (None, json.dumps({"params": values}), "application/json"))
            ]
            for name, ref in parse_pairs(files, "-f"):
                path = Path(ref.removeprefix("@"))
                mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                parts.append((name, (path.name, path.read_bytes(), mime)))
            response = client.post(url, files=parts, headers=headers)
        else:
            response = client.post(url, json={"params": values}, headers=headers)
        body = response.json()
        if response.status_code >= 400:
            err = body.get("error", {})
            console.print(f"[red]{response.status_code} {err.get('code')}: {err.get('message')}")
            for item in err.get("details") or []:
                if isinstance(item, dict):
                    console.print(f"  {item.get('path')}: {item.get('message')}")
            return 1
        console.print(f"job [bold]{body['id']}[/] {body['status']}")
        print(body["id"])
        if not wait:
            return 0
        job = follow(client, body)
        if job["status"] != "succeeded":
            err = job.get("error") or {}
            console.print(f"[red]{job['status']}: {err.get('code')} {err.get('message', '')}")
            return 1
        out.mkdir(parents=True, exist_ok=True)
        for i, asset in enumerate(job["outputs"]):
            ext = mimetypes.guess_extension(asset["content_type"].split(";")[0]) or ".bin"
            target = out / f"{job['id']}-{asset['node_id']}-{i}{ext}"
            with client.stream("GET", asset["url"]) as response, target.open("wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
            console.print(f"saved {target} ({asset['bytes']} bytes)")
        return 0
