"""``comfygate submit`` when the gateway or a file is not there: one line, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from typer.testing import CliRunner

from comfygate.cli import app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def submit(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, ["submit", "txt2img", *args])
    return result.exit_code, result.stderr.splitlines(), result.output


def test_a_gateway_that_is_not_there_is_one_line_naming_it() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    code, said, output = submit("--gateway", url, "--wait")
    assert code == 2, output
    assert len(said) == 1 and said[0].startswith(f"error: cannot reach the gateway at {url} ")
    assert "--gateway URL" in said[0] and "Traceback" not in output


def test_a_file_that_is_not_there_is_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    code, said, output = submit("--gateway", "http://127.0.0.1:9", "-f", f"image=@{missing}")
    assert code == 2, output
    assert said == [f"error: -f: no file {missing}"] and "Traceback" not in output
