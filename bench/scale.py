"""How the gateway keeps many backends busy: one gateway on SQLite, one on PostgreSQL,
and three on one PostgreSQL (the backends split among their in-process agents).

Rows: (a) 10 backends with 200 ms jobs, (b) 200 backends with 2 s jobs, all served by
one ``comfygate sim --backends N`` process. The bench keeps exactly as many jobs in
flight as the agents have slots (two per backend: one running, one pending in ComfyUI's
own queue) and submits a new job, round-robin over the gateways, each time one
succeeds. So a job waits for a slot only as long as the claim path takes, and a backend
idles only when the refill comes later than its pending prompt ends.

Measured over the steady window (from when every slot has been handed a job to the
last submission, so neither the start nor the drain of the last jobs counts):

* jobs/s: jobs that succeeded in the window over its length, against the ideal
  (backends / job time);
* utilisation: the backends' busy time in the window over backends x window, busy
  being execution_start → execution_success of each prompt as the backends record it
  in /history's status.messages;
* claim lag: job created → leased (its ``started_at``), p50/p95 of the window's jobs;
* gateway CPU ms per job: user + system time of the gateway processes in the window;
* statements per job: the statements the gateways sent (``db_statements`` of the
  admin stats) in the window;
* /v1/events ids: p95 size in bytes of the resume cursors the followers received;
* double leases: jobs with more than one attempt, prompts on more than one backend,
  and prompts the backends ran beyond one per job (from the attempts and /history).

Three gateways wake each other's agents through PostgreSQL's LISTEN/NOTIFY: a job
submitted to one gateway rings the agents attached to the others.

    .venv/bin/python bench/scale.py [--row a|b] [--setup sqlite-1|pg-1|pg-3] [--jobs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from overhead import ROOT, pct  # bench/ is on the path of a script run from it

from comfygate.serve import spawn_gateway, stop_process
from comfygate.sse import SseParser

STEPS = 4
SLOTS = 2  # an agent's default capacity: one prompt running, one pending
ADMIN_TOKEN = "bench-scale-admin"
PG = "postgres@127.0.0.1:5432"
UTILISATION_AIM = 0.95
LAG_P95_AIM_MS = 50.0
ENDED = ("succeeded", "failed", "canceled", "expired")


@dataclass(frozen=True)
class Row:
    backends: int
    work_ms: float
    jobs: int


@dataclass(frozen=True)
class Setup:
    name: str
    gateways: int
    postgres: bool


ROWS = {
    # ~15 s of steady window each at the ideal rate
    "a": Row(backends=10, work_ms=200, jobs=800),
    "b": Row(backends=200, work_ms=2000, jobs=1900),
}
SETUPS = {
    "sqlite-1": Setup("SQLite", 1, postgres=False),
    "pg-1": Setup("PostgreSQL", 1, postgres=True),
    "pg-3": Setup("PostgreSQL", 3, postgres=True),
}


@dataclass
class Result:
    row: str
    setup: Setup
    backends: int
    jobs: int
    rate: float
    ideal: float
    utilisation: float
    lag_p50: float
    lag_p95: float
    cpu_ms: float
    #: CPU ms per job of the simulator process and of this bench (the client)
    sim_cpu_ms: float
    client_cpu_ms: float
    statements: float
    double_leases: int
    #: p95 size in bytes of the event ids (resume cursors) the /v1/events followers saw
    id_p95: float
    notes: list[str] = field(default_factory=list)


def start_sims(
    data_dir: Path, backends: int, step_ms: float
) -> tuple[subprocess.Popen[str], list[str]]:
    """One simulator process serving ``backends`` backends on free ports."""
    args = [sys.executable, "-m", "comfygate", "sim", "--backends", str(backends), "--port", "0"]
    args += ["--data-dir", str(data_dir), "--step-ms", str(step_ms)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    urls = []
    for _ in range(backends):
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator exited at start")
        urls.append(line.rsplit(" at ", 1)[1].strip())
    return proc, urls


@contextlib.contextmanager
def database(setup: Setup) -> Iterator[str]:
    """The gateways' database URL: empty (SQLite in the data dir) or a throwaway
    PostgreSQL database, dropped after."""
    if not setup.postgres:
        yield ""
        return
    name = f"comfygate_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(f"postgresql://{PG}/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{PG}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(value: str) -> float:
    return datetime.fromisoformat(value).timestamp() * 1000


async def statements(client: httpx.AsyncClient) -> int:
    r = await client.get("/v1/admin/stats", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    r.raise_for_status()
    return int(r.json()["db_statements"])


@dataclass
class Window:
    start_ms: float
    stop_ms: float
    jobs: int
    #: CPU seconds in the window of each gateway, then the simulator, then this bench
    cpu_s: list[float]
    statements: int
    #: ids of the jobs submitted in the window, and every job's final resource
    steady: set[str]
    done: dict[str, dict[str, Any]]
    #: the size in bytes of each /v1/events id the followers saw
    id_bytes: list[int]


async def drive(urls: list[str], pids: list[int], sim: int, row: Row, backlog: int) -> Window:
    clients = [httpx.AsyncClient(base_url=u, timeout=60) for u in urls]
    done: dict[str, dict[str, Any]] = {}
    finished: asyncio.Queue[str] = asyncio.Queue()
    listening = [asyncio.Event() for _ in clients]
    all_ended = asyncio.Event()
    id_bytes: list[int] = []

    async def follow(client: httpx.AsyncClient, ready: asyncio.Event) -> None:
        # A job's ending is published by the gateway whose agent ran it. A gateway cuts
        # a stream that falls far behind; it resumes from its last event id.
        last_id: str | None = None
        while True:
            headers = {"last-event-id": last_id} if last_id else {}
            try:
                async with client.stream("GET", "/v1/events", headers=headers, timeout=None) as r:
                    ready.set()
                    parser = SseParser()
                    async for raw in r.aiter_lines():
                        event = parser.feed(raw)
                        if event is None:
                            continue
                        if event.id:
                            id_bytes.append(len(event.id.encode()))
                        last_id = event.id or last_id
                        job = event.json()
                        ended = event.type == "status" and job["status"] in ENDED
                        if ended and job["id"] not in done:
                            done[job["id"]] = job
                            finished.put_nowait(job["id"])
                            if len(done) >= row.jobs:
                                all_ended.set()
            except httpx.TransportError:
                continue  # resumes like a cut stream

    followers = [asyncio.create_task(follow(c, e)) for c, e in zip(clients, listening, strict=True)]
    await asyncio.gather(*(e.wait() for e in listening))
    rotation = itertools.cycle(clients)
    params = {"prompt": "scale", "steps": STEPS, "width": 64, "height": 64}

    fill = asyncio.Semaphore(32)

    async def submit(n: int) -> str:
        client = next(rotation)
        # An idle keep-alive connection the server is closing can fail a request;
        # the key makes the retry safe.
        key = {"idempotency-key": f"scale-{n}"}
        body = {"params": {**params, "seed": n}}
        async with fill:
            try:
                r = await client.post("/v1/workflows/txt2img/jobs", json=body, headers=key)
            except httpx.TransportError:
                r = await client.post("/v1/workflows/txt2img/jobs", json=body, headers=key)
        r.raise_for_status()
        return str(r.json()["id"])

    try:
        inflight = SLOTS * row.backends + backlog
        await asyncio.gather(*(submit(n) for n in range(inflight)))
        start_ms = time.time() * 1000
        cpu0 = [cpu_s(p) for p in (*pids, sim, os.getpid())]
        statements0 = sum(await asyncio.gather(*(statements(c) for c in clients)))
        refills: list[asyncio.Task[str]] = []
        for n in range(inflight, row.jobs):
            job_id = await asyncio.wait_for(finished.get(), 120)
            if done[job_id]["status"] != "succeeded":
                raise RuntimeError(f"job {job_id} ended {done[job_id]['status']}")
            refills.append(asyncio.create_task(submit(n)))
        stop_ms = time.time() * 1000
        cpu1 = [cpu_s(p) for p in (*pids, sim, os.getpid())]
        statements1 = sum(await asyncio.gather(*(statements(c) for c in clients)))
        steady = set(await asyncio.gather(*refills))
        try:
            await asyncio.wait_for(all_ended.wait(), 120)
        except TimeoutError:
            raise RuntimeError(f"only {len(done)} of {row.jobs} jobs ended") from None
        return Window(
            start_ms=start_ms,
            stop_ms=stop_ms,
            jobs=row.jobs - inflight,
            cpu_s=[b - a for a, b in zip(cpu0, cpu1, strict=True)],
            statements=statements1 - statements0,
            steady=steady,
            done=done,
            id_bytes=id_bytes,
        )
    finally:
        for task in followers:
            task.cancel()
        for client in clients:
            await client.aclose()


async def histories(backends: list[str]) -> dict[str, list[tuple[str, float, float]]]:
    """Per backend, each prompt it ran: (prompt id, execution_start ms, execution_success ms)."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    async with httpx.AsyncClient(timeout=60) as http:
        for url in backends:
            runs = []
            for prompt_id, entry in (await http.get(f"{url}/history")).json().items():
                stamps = {name: data["timestamp"] for name, data in entry["status"]["messages"]}
                runs.append((prompt_id, stamps["execution_start"], stamps["execution_success"]))
            out[url] = runs
    return out


async def attempts(url: str, job_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(job_id: str) -> tuple[str, list[dict[str, Any]]]:
            async with limit:
                r = await client.get(f"/v1/jobs/{job_id}/attempts")
                return job_id, r.json()["attempts"]

        return dict(await asyncio.gather(*(one(j) for j in job_ids)))


def busy_ms(runs: list[tuple[str, float, float]], start: float, stop: float) -> float:
    return sum(max(0.0, min(end, stop) - max(begin, start)) for _, begin, end in runs)


def double_leases(
    tried: dict[str, list[dict[str, Any]]], ran: dict[str, list[tuple[str, float, float]]]
) -> tuple[int, list[str]]:
    """Jobs leased more than once, prompts run on more than one backend or more than once,
    and prompts run that belong to no attempt."""
    notes = []
    twice = [j for j, a in tried.items() if len(a) != 1]
    prompts = [p for runs in ran.values() for p, _, _ in runs]
    known = {a["prompt_id"] for tries in tried.values() for a in tries}
    repeated = len(prompts) - len(set(prompts))
    strangers = len(set(prompts) - known)
    if twice:
        notes.append(f"{len(twice)} jobs with more than one attempt")
    if repeated:
        notes.append(f"{repeated} prompts ran twice")
    if strangers:
        notes.append(f"{strangers} prompts belong to no attempt")
    return len(twice) + repeated + strangers, notes


class RowFailed(Exception):
    """A row that could not finish, with the gateways' most frequent error."""

    def __init__(self, cause: Exception, log: Path) -> None:
        errors = Counter(
            line.strip()[:160]
            for line in log.read_text(errors="replace").splitlines()
            if re.match(r"^[\w.]+(Error|Exception):", line)
        )
        seen = ""
        for text, count in errors.most_common(1):
            seen = f"; gateways logged {text} (x{count})"
        super().__init__(f"{type(cause).__name__}: {cause}{seen}")


def run_row(name: str, row: Row, setup: Setup, jobs: int | None, backlog: int, tmp: Path) -> Result:
    row = Row(row.backends, row.work_ms, jobs or row.jobs)
    sim, backends = start_sims(tmp / "sim", row.backends, row.work_ms / STEPS)
    gateways: list[subprocess.Popen[bytes]] = []
    try:
        with database(setup) as db_url, (tmp / "gateways.log").open("wb") as log:
            env = {
                "COMFYGATE_ADMIN_TOKEN": ADMIN_TOKEN,
                "COMFYGATE_DATABASE_URL": db_url,
                "COMFYGATE_SECRET_KEY": uuid.uuid4().hex,
            }
            try:
                urls = []
                # One after another: the first migrates the database. They share one data
                # directory for its storage, as gateways on many machines share a bucket.
                for i in range(setup.gateways):
                    mine = backends[i :: setup.gateways]
                    proc, url = spawn_gateway(
                        tmp / "gw", ROOT / "workflows", mine, env=env, stderr=log
                    )
                    gateways.append(proc)
                    urls.append(url)
                pids = [g.pid for g in gateways]
                window = asyncio.run(drive(urls, pids, sim.pid, row, backlog))
                ran = asyncio.run(histories(backends))
                tried = asyncio.run(attempts(urls[0], list(window.done)))
            except Exception as exc:
                raise RowFailed(exc, tmp / "gateways.log") from exc
            finally:
                for proc in gateways:
                    stop_process(proc)
    finally:
        sim.terminate()
        sim.wait()
    seconds = (window.stop_ms - window.start_ms) / 1000
    busy = sum(busy_ms(runs, window.start_ms, window.stop_ms) for runs in ran.values())
    lags = [
        ms(job["started_at"]) - ms(job["created_at"])
        for job_id, job in window.done.items()
        if job_id in window.steady
    ]
    doubles, notes = double_leases(tried, ran)
    return Result(
        row=name,
        setup=setup,
        backends=row.backends,
        jobs=row.jobs,
        rate=window.jobs / seconds,
        ideal=row.backends / (row.work_ms / 1000),
        utilisation=busy / (row.backends * (window.stop_ms - window.start_ms)),
        lag_p50=statistics.median(lags),
        lag_p95=pct(lags, 0.95),
        cpu_ms=sum(window.cpu_s[:-2]) * 1000 / window.jobs,
        sim_cpu_ms=window.cpu_s[-2] * 1000 / window.jobs,
        client_cpu_ms=window.cpu_s[-1] * 1000 / window.jobs,
        statements=window.statements / window.jobs,
        double_leases=doubles,
        id_p95=pct([float(n) for n in window.id_bytes], 0.95) if window.id_bytes else 0.0,
        notes=notes,
    )


HEADER = (
    f"{'row':<18} {'database':<10} {'gw':>2} {'jobs':>5} {'jobs/s':>7} {'ideal':>6} "
    f"{'util':>5} {'lag p50':>8} {'lag p95':>8} {'cpu ms/job':>10} {'stmts/job':>9} "
    f"{'double':>6}  aims"
)


def line(r: Result, one_gateway: Result | None) -> str:
    aims = [f"util {'ok' if r.utilisation >= UTILISATION_AIM else 'MISS'}"]
    if r.setup.gateways > 1:
        aims.append(f"lag p95 {'ok' if r.lag_p95 < LAG_P95_AIM_MS else 'MISS'}")
        if one_gateway is not None:
            ratio = r.rate / one_gateway.rate
            aims.append(f"vs 1 gw {ratio:.2f}x {'ok' if ratio >= 0.95 else 'MISS'}")
    aims.append(f"double {'ok' if r.double_leases == 0 else 'MISS'}")
    label = f"({r.row}) {r.backends}x{ROWS[r.row].work_ms / 1000:g}s"
    return (
        f"{label:<18} {r.setup.name:<10} {r.setup.gateways:>2} {r.jobs:>5} {r.rate:>7.1f} "
        f"{r.ideal:>6.1f} {r.utilisation:>5.2f} {r.lag_p50:>6.1f}ms {r.lag_p95:>6.1f}ms "
        f"{r.cpu_ms:>10.1f} {r.statements:>9.1f} {r.double_leases:>6}  {', '.join(aims)}"
        + f"\n    CPU ms/job of the simulator {r.sim_cpu_ms:.1f}, of this client "
        f"{r.client_cpu_ms:.1f}: the ideal rate needs "
        f"{r.ideal * (r.cpu_ms + r.sim_cpu_ms + r.client_cpu_ms) / 1000:.1f} cores"
        + f"\n    /v1/events ids (resume cursors) p95 {r.id_p95:.0f} bytes"
        + "".join(f"\n    {note}" for note in r.notes)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--row", choices=[*ROWS, "all"], default="all")
    parser.add_argument("--setup", choices=[*SETUPS, "all"], default="all")
    parser.add_argument("--jobs", type=int, help="jobs per row (default: ~15 s of work)")
    parser.add_argument(
        "--backlog",
        type=int,
        default=0,
        help="jobs kept queued beyond the agents' slots: backends then never wait on a "
        "wake-up, and claim lag includes the time in the queue",
    )
    args = parser.parse_args()
    rows = list(ROWS) if args.row == "all" else [args.row]
    setups = list(SETUPS) if args.setup == "all" else [args.setup]
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(
        f"{os.cpu_count()} cores, load average {load} at start; aims: util >= "
        f"{UTILISATION_AIM}, 3 gateways >= 0.95x one and lag p95 < {LAG_P95_AIM_MS:g} ms, "
        "no double lease"
    )
    print(HEADER, flush=True)
    for name in rows:
        pg_one: Result | None = None
        for key in setups:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    result = run_row(
                        name, ROWS[name], SETUPS[key], args.jobs, args.backlog, Path(tmp)
                    )
                except RowFailed as exc:
                    print(f"({name}) {SETUPS[key].name} x{SETUPS[key].gateways} failed: {exc}")
                    continue
            if key == "pg-1":
                pg_one = result
            print(line(result, pg_one), flush=True)
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"load average {load} at the end")


if __name__ == "__main__":
    main()
