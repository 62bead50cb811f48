"""Scaled out, under fire: three gateway processes on one PostgreSQL and one S3 bucket,
remote agents (``comfygate worker``) beside simulator processes, clients spreading their
jobs over the gateways with idempotency keys. Midway one gateway and one agent are
killed with SIGKILL; the agent comes back pointed at a surviving gateway, the gateway
comes back after its leases ran out. Every job ends with one ``succeeded`` record and
each output once in its manifest and in the bucket.

``COMFYGATE_SCALE_JOBS`` sets the number of jobs (1,000 by default).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import text

from comfygate.config import load_settings
from comfygate.gateway import Gateway, build_gateway
from comfygate.serve import free_port, spawn_gateway
from tests.integration.chaos.tally import TERMINAL, tally
from tests.integration.store.conftest import throwaway_pg_database
from tests.s3server import S3Server

# A thousand jobs through three gateways and their kills: minutes on a busy machine.
pytestmark = [pytest.mark.postgres, pytest.mark.timeout(600)]

JOBS = int(os.environ.get("COMFYGATE_SCALE_JOBS", "1000"))
GATEWAYS = 3
#: agents, each beside its own simulator, spread over the gateways
AGENTS = 4
#: clients submitting at once
SUBMITTERS = 6
#: jobs the clients keep on their way at most
WINDOW = 30
STEP_MS = 10
#: the gateway stays down longer than a lease: the others rescue what its agents held
GATEWAY_DOWN_S = 8.0
#: the whole run, kills included, ends within this or fails
RUN_S = 600.0
#: a process starts slowly on a busy machine
STARTUP_S = 120.0
SECRET = "scale-out-test-secret-shared-by-every-gateway"
PARAMS = {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 2}


@dataclass
class Agent:
    token: str
    comfy: str
    gateway: int
    proc: asyncio.subprocess.Process | None = None


@dataclass
class Cluster:
    """The processes of the run, each started again in place after a kill."""

    tmp: Path
    workflows: Path
    env: dict[str, str]
    ports: list[int]
    gateways: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    sims: list[asyncio.subprocess.Process] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def url(self, gateway: int) -> str:
        return f"http://127.0.0.1:{self.ports[gateway]}"

    def _log(self, name: str) -> IO[bytes]:
        log = (self.tmp / "logs" / f"{name}.log").open("ab")
        self.logs.append(log)
        return log

    async def start_gateway(self, n: int) -> None:
        # In a thread: spawn_gateway waits for the gateway by blocking calls.
        proc, _ = await asyncio.to_thread(
            spawn_gateway,
            self.tmp / f"gw-{n}",
            self.workflows,
            [],
            port=self.ports[n],
            env=self.env,
            within_s=STARTUP_S,
        )
        self.gateways[n] = proc

    def kill_gateway(self, n: int) -> None:
        proc = self.gateways[n]
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.gateways[n] = None

    async def start_sim(self, n: int) -> str:
        port = free_port()
        args = ["sim", "--port", str(port), "--data-dir", str(self.tmp / f"sim-{n}")]
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "comfygate", *args, "--step-ms", str(STEP_MS)),
            stdout=subprocess.DEVNULL,
            stderr=self._log(f"sim-{n}"),
        )
        self.sims.append(proc)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=1) as c:
            for _ in range(int(STARTUP_S * 10)):
                with suppress(httpx.HTTPError):
                    if (await c.get(f"{url}/system_stats")).status_code == 200:
                        return url
                assert proc.returncode is None, "a simulator exited at start"
                await asyncio.sleep(0.1)
        raise AssertionError(f"simulator {n} did not answer")

    async def start_agent(self, n: int) -> None:
        agent = self.agents[n]
        agent.proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "comfygate", "worker", "--gateway", self.url(agent.gateway)),
            *("--token", agent.token, "--comfy", agent.comfy),
            stdout=subprocess.DEVNULL,
            stderr=self._log(f"agent-{n}"),
        )

    async def kill_agent(self, n: int) -> None:
        proc = self.agents[n].proc
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        for child in [*(a.proc for a in self.agents), *self.sims]:
            if child is not None and child.returncode is None:
                child.kill()
                await child.wait()
        for proc in self.gateways:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from throwaway_pg_database()


@pytest.fixture
async def inspector(
    pg_url: str, s3_server: S3Server, tmp_path: Path, workflows_dir: Path
) -> AsyncIterator[Gateway]:
    """A gateway that serves nothing: it migrates the database first, creates the
    worker tokens, and at the end sweeps and reads what the run left."""
    settings = load_settings(
        None,
        data_dir=tmp_path / "inspector",
        workflows_dir=workflows_dir,
        database_url=pg_url,
        secret_key=SECRET,
        **s3_server.overrides(),
    )
    gw = await build_gateway(settings)
    try:
        yield gw
    finally:
        await gw.stop()


def gateway_env(gw: Gateway) -> dict[str, str]:
    s = gw.settings
    return {
        "COMFYGATE_DATABASE_URL": s.database_url,
        "COMFYGATE_STORAGE_URL": s.storage_url,
        "COMFYGATE_S3__ENDPOINT_URL": s.s3.endpoint_url,
        "COMFYGATE_S3__REGION": s.s3.region,
        "COMFYGATE_S3__ACCESS_KEY_ID": s.s3.access_key_id,
        "COMFYGATE_S3__SECRET_ACCESS_KEY": s.s3.secret_access_key,
        "COMFYGATE_SECRET_KEY": SECRET,
        "COMFYGATE_MAX_QUEUE_DEPTH": str(JOBS * 2),
        "COMFYGATE_LEASE__TTL_S": "6",
        "COMFYGATE_LEASE__HEARTBEAT_S": "2",
        "COMFYGATE_LEASE__RESCUE_EVERY_S": "1",
    }


async def test_three_gateways_lose_no_job_to_kill_9(
    inspector: Gateway,
    tmp_path: Path,
    workflows_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "logs").mkdir()
    cluster = Cluster(
        tmp=tmp_path,
        workflows=workflows_dir,
        env=gateway_env(inspector),
        ports=[free_port() for _ in range(GATEWAYS)],
        gateways=[None] * GATEWAYS,
    )
    background: list[asyncio.Task[None]] = []
    try:
        sims = await asyncio.gather(*(cluster.start_sim(n) for n in range(AGENTS)))
        for n, sim in enumerate(sims):
            _, secret = await inspector.api_keys.create(f"gpu-{n}", frozenset({"worker"}))
            cluster.agents.append(Agent(token=secret, comfy=sim, gateway=n % GATEWAYS))
        await asyncio.gather(*(cluster.start_gateway(n) for n in range(GATEWAYS)))
        for n in range(len(cluster.agents)):
            await cluster.start_agent(n)

        run = Run(inspector)
        chaos = asyncio.create_task(kill_midway(cluster, run))
        background += [asyncio.create_task(run.watch()), chaos]
        try:
            # A run that stalls ends here; the tally below names what did not end.
            async with asyncio.timeout(RUN_S):
                await submit_all(cluster, run)
                await chaos
                await run.all_ended.wait()
        except TimeoutError:
            pass
        executions = await prompts_run(sims)
    finally:
        for task in background:
            task.cancel()
        await cluster.stop()

    # Past the settle time of the losing attempts' files: the sweep removes them.
    await inspector.sweeper.run_once(settle_s=0)
    db = await read_database(inspector)
    result = await tally(db.jobs, inspector.storage)
    bucket = await stored_keys(inspector)
    line = result.line(f"scale-out {GATEWAYS} gateways, kill -9 a gateway and an agent")
    with capsys.disabled():
        print(
            f"\n{line}, re-executed prompts {sum(n - 1 for n in executions.values())}, "
            f"rescued leases {db.outcomes['lease_expired']}, adopted {adopted(tmp_path)}, "
            f"submits sent again {run.resent}, documents of cut submits "
            f"{len(orphans(bucket, set(run.submitted.values())))}"
        )
    submitted = run.submitted
    assert sorted(submitted) == list(range(JOBS)), "submits that never got their job"
    assert {j["id"] for j in db.jobs} == set(submitted.values()), "jobs beside the submitted"
    assert result.lost == [] and result.duplicated == [], line
    assert result.statuses["succeeded"] == JOBS, line
    assert db.succeeded_attempts == Counter({job_id: 1 for job_id in submitted.values()})
    assert set(executions) <= set(submitted.values())
    # The bucket holds each committed output once and nothing of the losing attempts.
    assert bucket["outputs"] == db.outputs
    assert bucket["previews"] == bucket["inputs"] == []
    ids = set(submitted.values())
    documents = Counter(k.rsplit("/", 1)[1] for k in bucket["jobs"] if k.split("/")[1] in ids)
    assert documents == {name: JOBS for name in ("request.json", "prompt.json", "output.json")}
    # A submit cut between storing its documents and inserting its row leaves them.
    assert len(orphans(bucket, ids)) <= run.cut


@dataclass
class Run:
    """How far the run is: jobs submitted (by number) and ended (read from the database)."""

    gw: Gateway
    submitted: dict[int, str] = field(default_factory=dict)
    ended: int = 0
    #: submits sent again after no answer or a 409/429/503
    resent: int = 0
    #: submits that reached a gateway killed before it answered
    cut: int = 0
    halfway: asyncio.Event = field(default_factory=asyncio.Event)
    all_ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def watch(self) -> None:
        finished = ", ".join(f"'{s}'" for s in TERMINAL)
        query = text(f"SELECT count(*) FROM jobs WHERE status IN ({finished})")

        def count(conn: Any) -> int:
            return int(conn.execute(query).scalar())

        while True:
            self.ended = await self.gw.store.db.read(count)
            if self.ended >= JOBS // 2:
                self.halfway.set()
            if self.ended >= JOBS:
                self.all_ended.set()
            await asyncio.sleep(0.5)

    async def room(self) -> None:
        """Clients keep at most WINDOW jobs on their way, so submits go on all run long."""
        while len(self.submitted) - self.ended >= WINDOW:  # noqa: ASYNC110 - polled count
            await asyncio.sleep(0.2)


async def kill_midway(cluster: Cluster, run: Run) -> None:
    """Once half the jobs ended: SIGKILL gateway 0 and an agent of gateway 1. The agent
    comes back at once, pointed at gateway 2 (it takes its running prompts back there);
    the gateway after its agents' leases ran out."""
    await run.halfway.wait()
    victim = next(n for n, a in enumerate(cluster.agents) if a.gateway == 1)
    cluster.kill_gateway(0)
    await cluster.kill_agent(victim)
    cluster.agents[victim].gateway = 2
    await cluster.start_agent(victim)
    await asyncio.sleep(GATEWAY_DOWN_S)
    await cluster.start_gateway(0)


async def submit_all(cluster: Cluster, run: Run) -> None:
    """Every job once, each by a client that prefers one gateway and, when that one does
    not answer, sends the same request with the same key to the next."""
    numbers = iter(range(JOBS))

    async def client(c: httpx.AsyncClient) -> None:
        for n in numbers:
            await run.room()
            run.submitted[n] = await submit(cluster, run, c, n)

    async with httpx.AsyncClient(timeout=30) as c:
        await asyncio.gather(*(client(c) for _ in range(SUBMITTERS)))


async def submit(cluster: Cluster, run: Run, c: httpx.AsyncClient, n: int) -> str:
    headers = {"Idempotency-Key": f"scale-{n}"}
    body = {"params": {**PARAMS, "seed": n}}
    for tries in itertools.count():
        url = cluster.url((n + tries) % GATEWAYS)
        try:
            r = await c.post(f"{url}/v1/workflows/txt2img/jobs", json=body, headers=headers)
        except httpx.TransportError as exc:
            # That gateway is down: the same request to the next one.
            run.resent += 1
            if not isinstance(exc, httpx.ConnectError):
                run.cut += 1
            continue
        if r.status_code == 202:
            job_id: str = r.json()["id"]
            return job_id
        # 409: the first request with this key is still in flight (or died with its
        # gateway); 429/503: busy. Any other answer is a failure of the test.
        assert r.status_code in (409, 429, 503), r.text
        assert tries < 200, f"job {n} could not be submitted: {r.text}"
        run.resent += 1
        await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def prompts_run(sims: list[str]) -> Counter[str]:
    """How many times the backends ran each job's prompt (from their /history)."""
    runs: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=30) as c:
        for sim in sims:
            history: dict[str, Any] = (await c.get(f"{sim}/history")).json()
            for entry in history.values():
                runs[entry["prompt"][3]["comfygate_job"]] += 1
    return runs


@dataclass
class DatabaseView:
    #: each job as the tally reads it: id, status, error
    jobs: list[dict[str, Any]]
    #: the keys of every job's committed outputs, sorted
    outputs: list[str]
    #: job id → its attempts that ended succeeded
    succeeded_attempts: Counter[str]
    #: attempt outcome → how many
    outcomes: Counter[str]


async def read_database(gw: Gateway) -> DatabaseView:
    def run(conn: Any) -> DatabaseView:
        rows = conn.execute(text("SELECT id, status, error, outputs FROM jobs")).all()
        jobs = [{"id": r.id, "status": r.status, "error": _json(r.error)} for r in rows]
        attempts = conn.execute(text("SELECT job_id, outcome FROM job_attempts")).all()
        return DatabaseView(
            jobs=jobs,
            outputs=sorted(o["key"] for r in rows for o in _json(r.outputs)),
            succeeded_attempts=Counter(a.job_id for a in attempts if a.outcome == "succeeded"),
            outcomes=Counter(str(a.outcome) for a in attempts),
        )

    return await gw.store.db.read(run)


async def stored_keys(gw: Gateway) -> dict[str, list[str]]:
    """Every key in the bucket under the run's prefix, by top folder, sorted."""
    return {
        folder: sorted(o.key for o in await gw.storage.list(folder))
        for folder in ("jobs", "outputs", "previews", "inputs")
    }


def orphans(bucket: dict[str, list[str]], ids: set[str]) -> set[str]:
    """Folders under jobs/ of no job."""
    return {key.split("/")[1] for key in bucket["jobs"]} - ids


def adopted(tmp: Path) -> int:
    """Jobs the restarted agent took back (its log says so)."""
    found = re.findall(rb"follows (\d+) job", b"".join(p.read_bytes() for p in tmp.glob("logs/*")))
    return sum(int(n) for n in found)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
