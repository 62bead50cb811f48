#!/usr/bin/env python3
"""Set up and run comfygate from a fresh clone: ``python3 dev.py demo`` or ``python3 dev.py test``.
``python3 dev.py lock [--upgrade]`` resolves ``requirements/*.txt`` anew.

Each command makes or updates its own virtualenv in ``.venv`` (only Python 3.11+ and the
package registries are needed), then runs. ``test`` runs every suite whose services
answer, prints one line per skipped suite with the reason, and with ``CI=true`` treats
a missing service as a failure.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
import time
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def ensure_venv(extras: str) -> None:
    """Make ``.venv`` hold exactly the locked versions: ``requirements/test.txt`` for the
    tests, ``requirements/app.txt`` for the demo (the same pins, fewer packages)."""
    if sys.version_info < (3, 11):  # noqa: UP036 - run by any python3
        sys.exit(f"comfygate needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    lock = ROOT / "requirements" / ("test.txt" if extras == "test" else "app.txt")
    stamp = VENV / f".installed-{lock.stem}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(
        f"installing comfygate and the versions in {lock.relative_to(ROOT)} into .venv", flush=True
    )
    pip = [str(PY), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # Every package, the build backend included, comes from the lock with its hash; the
    # project itself is then built from it without fetching anything further.
    subprocess.run([*pip, "--require-hashes", "-r", str(lock)], check=True, cwd=ROOT)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", "."], check=True, cwd=ROOT)
    stamp.write_text(digest)


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def browser_missing() -> str | None:
    """Why the browser suite cannot run here, or None."""
    chromium = Path(os.environ.get("COMFYGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
    if not chromium.exists():
        return f"{chromium} is missing (apt-get install -y chromium)"
    if subprocess.run([str(PY), "-c", "import playwright"], capture_output=True).returncode:
        return "the playwright package is not installed in .venv"
    return None


def suites() -> list[tuple[str, list[str], str | None]]:
    """(name, pytest args, why it cannot run or None)."""
    pg_host = os.environ.get("COMFYGATE_TEST_PG_HOST", "127.0.0.1")
    pg_port = int(os.environ.get("COMFYGATE_TEST_PG_PORT", "5432"))
    pg = None if answers(pg_host, pg_port) else f"PostgreSQL at {pg_host}:{pg_port} does not answer"
    return [
        ("lint", [], None),
        ("unit", ["tests/unit"], None),
        ("integration", ["tests/integration", "-m", "not postgres"], None),
        ("postgres", ["tests", "-m", "postgres"], pg),
        ("browser", ["tests/browser"], browser_missing()),
    ]


def run_tests(selected: list[str]) -> int:
    ensure_venv("test")
    ci = os.environ.get("CI", "").lower() == "true"
    reports = ROOT / "artifacts" / "test-reports"
    reports.mkdir(parents=True, exist_ok=True)
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    failed_suites: list[str] = []
    env = dict(os.environ)
    # Every suite runs in a random order (pytest-randomly), so tests that lean on one
    # another fail; one seed for the run, printed, so a failing order can be repeated.
    seed = os.environ.get("COMFYGATE_TEST_SEED") or str(random.randrange(2**32))
    print(f"test order: --randomly-seed={seed} (COMFYGATE_TEST_SEED={seed} repeats it)", flush=True)
    for name, args, missing in suites():
        if selected and name not in selected:
            continue
        if missing:
            print(f"skipped suite {name}: {missing}", flush=True)
            if ci:
                failed_suites.append(f"{name} (service missing in CI: {missing})")
            continue
        start = time.monotonic()
        print(f"== suite {name}", flush=True)
        if name == "lint":
            code = 0
            for cmd in (
                ["ruff", "check", "src", "tests", "bench", "dev.py"],
                ["ruff", "format", "--check", "src", "tests", "bench", "dev.py"],
                ["mypy"],
            ):
                code |= subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, env=env).returncode
        else:
            xml = reports / f"{name}.xml"
            code = subprocess.run(
                [
                    str(PY),
                    "-m",
                    "pytest",
                    *args,
                    f"--randomly-seed={seed}",
                    f"--junitxml={xml}",
                    "-q",
                    "--durations=10",
                ],
                cwd=ROOT,
                env=env,
            ).returncode
            if code == 5:  # no tests collected: not a failure of the suite
                code = 0
            if xml.exists():
                for case in ET.parse(xml).getroot().iter("testcase"):
                    kinds = {child.tag for child in case}
                    if kinds & {"failure", "error"}:
                        totals["failed"] += 1
                    elif "skipped" in kinds:
                        totals["skipped"] += 1
                    else:
                        totals["passed"] += 1
        print(
            f"suite {name}: {'ok' if code == 0 else 'FAILED'} in {time.monotonic() - start:.1f} s",
            flush=True,
        )
        if code != 0:
            failed_suites.append(name)
    for name in failed_suites:
        print(f"failed suite {name}")
    print(
        f"total: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped"
    )
    return 1 if failed_suites else 0


LOCKS = (
    # (output, extra arguments): the test lock first, as the app lock is held to it
    ("requirements/test.txt", ["--extra", "test"]),
    ("requirements/app.txt", ["-c", "requirements/test.txt"]),
)


def lock(rest: list[str]) -> int:
    """Resolve the locks anew from pyproject.toml; ``--upgrade`` moves every package to
    its newest release, otherwise the versions already locked are kept where they fit."""
    ensure_venv("test")
    for out, extra in LOCKS:
        cmd = [
            str(BIN / "uv"), "pip", "compile", "pyproject.toml", "requirements/build.in",
            *extra, "--universal", "--python-version", "3.11", "--generate-hashes",
            "--quiet", "-o", out, *rest,
        ]  # fmt: skip
        code = subprocess.run(cmd, cwd=ROOT).returncode
        if code:
            return code
        print(f"wrote {out}")
    return 0


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "help"
    rest = sys.argv[2:]
    if command == "demo":
        ensure_venv("")
        return subprocess.call([str(BIN / "comfygate"), "demo", *rest], cwd=ROOT)
    if command == "test":
        return run_tests(rest)
    if command == "lock":
        return lock(rest)
    print(__doc__)
    return 0 if command == "help" else 2


if __name__ == "__main__":
    sys.exit(main())
