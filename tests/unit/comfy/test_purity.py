from __future__ import annotations

import subprocess
import sys


def test_comfy_knows_nothing_of_jobs() -> None:
    code = (
        "import sys, comfygate.comfy\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'sqlalchemy') "
        "or m.startswith(('comfygate.jobs', 'comfygate.store', 'comfygate.api', "
        "'comfygate.worker', 'comfygate.sim'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
