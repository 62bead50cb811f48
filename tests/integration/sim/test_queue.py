"""Queue delete, targeted and global interrupts, and restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.sim.conftest import (
    Sim,
    basic_prompt,
    interrupted_like_real,
    kinds,
    sd_prompt,
    start_sim,
)


async def test_queue_delete_and_targeted_interrupt(tmp_path: Path) -> None:
    async for sim in start_sim(tmp_path, step_ms=30):
        ws = await sim.socket("probe")
        running = await sim.submit(sd_prompt(steps=200))
        await ws.until("progress")
        pending = [await sim.submit(sd_prompt(seed=s, steps=2)) for s in (1, 2, 3)]
        queue = (await sim.http.get("/queue")).json()
        assert [item[1] for item in queue["queue_running"]] == [running]
        assert sorted(item[1] for item in queue["queue_pending"]) == sorted(pending)
        assert all(len(item) == 5 for item in queue["queue_pending"])
        assert (await sim.http.get("/prompt")).json() == {"exec_info": {"queue_remaining": 4}}

        deleted = await sim.http.post("/queue", json={"delete": [pending[1], running]})
        assert (deleted.status_code, deleted.content) == (200, b"")
        assert kinds(await ws.until("status"))[-1:] == ["status"]
        queue = (await sim.http.get("/queue")).json()
        assert [item[1] for item in queue["queue_running"]] == [running]
        assert sorted(item[1] for item in queue["queue_pending"]) == sorted(
            [pending[0], pending[2]]
        )

        # Targeting a pending prompt does nothing; targeting the running one stops it.
        await sim.http.post("/interrupt", json={"prompt_id": pending[0]})
        await sim.http.post("/interrupt", json={"prompt_id": running})
        await interrupted_like_real(sim, ws, running)
        assert (await sim.history(pending[0]))["status"]["status_str"] == "success"
        assert (await sim.history(pending[2]))["status"]["status_str"] == "success"
        assert (await sim.http.get(f"/history/{pending[1]}")).json() == {}
        assert ("POST", "/queue", {"delete": [pending[1], running]}) in sim.server.log
        assert ("POST", "/interrupt", {"prompt_id": running}) in sim.server.log
        assert sim.server.max_concurrent == 1


async def test_global_interrupt_stops_at_the_next_node(tmp_path: Path) -> None:
    async for sim in start_sim(tmp_path, step_ms=30):
        # An idle interrupt leaves no trace on the next prompt.
        assert (await sim.http.post("/interrupt")).status_code == 200
        ws = await sim.socket("probe")
        first = await sim.submit(basic_prompt(1))
        await ws.until_done(first)
        assert (await sim.history(first))["status"]["status_str"] == "success"

        running = await sim.submit(sd_prompt(steps=100))
        await ws.until("progress")
        await sim.http.post("/interrupt", content=b"")
        got = await ws.until_done(running)
        assert "execution_success" not in kinds(got)
        assert "execution_interrupted" in kinds(got)


async def test_queue_clear_keeps_the_running_prompt(tmp_path: Path) -> None:
    async for sim in start_sim(tmp_path, step_ms=20):
        ws = await sim.socket("probe")
        running = await sim.submit(sd_prompt(steps=30))
        await ws.until("progress")
        for seed in range(3):
            await sim.submit(sd_prompt(seed=seed))
        await sim.http.post("/queue", json={"clear": True})
        queue = (await sim.http.get("/queue")).json()
        assert (len(queue["queue_running"]), queue["queue_pending"]) == (1, [])
        await ws.until_done(running)


async def test_restart_empties_queue_and_history_and_keeps_files(tmp_path: Path) -> None:
    async for sim in start_sim(tmp_path, step_ms=20):
        done = await sim.submit(basic_prompt())
        await sim.history(done)
        ws = await sim.socket("probe")
        await sim.submit(sd_prompt(steps=50))
        await ws.until("progress")
        await sim.submit(sd_prompt(seed=99))
        (sim.data_dir / "temp" / "stale.png").write_bytes(b"x")
        port = sim.server.port
        await sim.server.restart()
        assert sim.server.port == port
        assert (await sim.http.get("/history")).json() == {}
        assert (await sim.http.get("/queue")).json() == {"queue_running": [], "queue_pending": []}
        assert list((sim.data_dir / "temp").iterdir()) == []
        assert (sim.data_dir / "output" / "basic_00001_.png").exists()
        # number restarts at 0 and the cache is gone: the same prompt runs again.
        response = (await sim.http.post("/prompt", json={"prompt": basic_prompt()})).json()
        assert response["number"] == 0
        entry = await sim.history(response["prompt_id"])
        assert entry["outputs"]["3"]["images"][0]["filename"] == "basic_00002_.png"


async def test_history_listing_and_deletion(sim: Sim) -> None:
    ids = [await sim.submit(basic_prompt(c)) for c in range(4)]
    for prompt_id in ids:
        await sim.history(prompt_id)
    assert list((await sim.http.get("/history", params={"max_items": 2})).json()) == ids[2:]
    listed: dict[str, Any] = (
        await sim.http.get("/history", params={"max_items": 2, "offset": 1})
    ).json()
    assert list(listed) == ids[1:3]
    await sim.http.post("/history", json={"delete": [ids[0], "unknown"]})
    assert list((await sim.http.get("/history")).json()) == ids[1:]
    await sim.http.post("/history", json={"clear": True})
    assert (await sim.http.get("/history")).json() == {}
