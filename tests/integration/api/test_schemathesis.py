"""Schemathesis against ``/openapi.json`` of a real gateway with a simulator behind it.

Every check, every phase (examples, coverage, fuzzing, and the stateful phase that
follows the document's links: submit → get → cancel → delete, declare → complete), a
fixed seed and few examples per operation, so a run is repeatable. It must find no
5xx and no answer its schema does not describe.

Runs three times: as the anonymous local principal of the demo (admin and worker routes
answer it 401, which their documents say), and on a gateway that refuses anonymous
requests as a plain key (``jobs:read,jobs:write``) and as an admin key (see ``AS`` for
the phases of each). The SSE streams are left out: a stream of the caller's events
never ends, and schemathesis reads a body whole (tests/integration/api/test_events.py
covers them).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.images import png
from tests.integration.api.helpers import declare_send_complete
from tests.integration.conftest import ROOT, WORKFLOWS, GatewayFactory, SimFactory

SEED = 20261130
MAX_EXAMPLES = 6
RUN_TIMEOUT_S = 600
#: A stateful scenario may delete a job and then use it: 410 Gone is the right answer
#: there, as 404 is for a job that never was (the default list has 404, not 410).
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]
"""


#: who runs it (None: the anonymous demo principal, else the key's scopes), and the
#: phases. Only the admin key runs the coverage phase (about 100 s of the runs' 160):
#: it reaches every route, the public ones included, and what that phase sends (values
#: at and past each bound) meets the same validation whoever sends it.
ALL_PHASES = "examples,coverage,fuzzing,stateful"
NO_COVERAGE = "examples,fuzzing,stateful"
AS = {
    "anonymous": (None, NO_COVERAGE),
    "plain key": ("jobs:read jobs:write", NO_COVERAGE),
    "admin key": ("admin", ALL_PHASES),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("who", list(AS))
async def test_schemathesis_finds_nothing(
    who: str, start_sim: SimFactory, start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    sim = await start_sim(step_ms=2)
    scopes, phases = AS[who]
    # The example workflows only: the test-only ones add operations, not kinds of them.
    # Webhooks may go to this gateway's own address: a generated host name would not
    # resolve, and a schema-valid request would be rightly refused.
    gateway = await start_gateway(
        sim.url,
        workflows_dir=WORKFLOWS,
        outbound={"allow": ["127.0.0.1"]},
        allow_anonymous=scopes is None,
    )
    auth: list[str] = []
    headers: dict[str, str] = {}
    if scopes is not None:
        _, secret = await gateway.gw.api_keys.create(who, frozenset(scopes.split()))
        headers = {"Authorization": f"Bearer {secret}"}
        auth = ["-H", f"Authorization: Bearer {secret}"]
    async with gateway.client(headers=headers) as c:
        upload_id, done = await declare_send_complete(c, png())
        assert done.status_code == 200
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        f"--config-file={config}",
        "run",
        f"{gateway.url}/openapi.json",
        "--checks=all",
        f"--phases={phases}",
        f"--seed={SEED}",
        f"--max-examples={MAX_EXAMPLES}",
        *auth,
        "--workers=1",
        "--generation-database=none",
        "--exclude-path-regex=/events$",
        "--request-timeout=30",
        "--no-color",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCHEMATHESIS_HOOKS": "tests.integration.api.fuzz_hooks",
        "COMFYGATE_FUZZ_UPLOAD": upload_id,
        "COMFYGATE_FUZZ_WEBHOOK": f"{gateway.url}/healthz",
    }
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        raise
    text = output.decode("utf-8", "replace")
    (tmp_path / "schemathesis.txt").write_text(text)
    failures = text.partition("= FAILURES =")[2].partition("= WARNINGS =")[0]
    assert process.returncode == 0, (failures or text)[-20_000:]
    assert "API Links:" in text and " 0 covered" not in text, text[-5_000:]
