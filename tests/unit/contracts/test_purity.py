from __future__ import annotations

import subprocess
import sys


def test_contracts_import_no_framework_and_no_other_layer() -> None:
    code = (
        "import sys, comfygate.contracts\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', "
        "'sqlalchemy', 'httpx') or m.startswith(('comfygate.store', 'comfygate.api', "
        "'comfygate.jobs'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
