from __future__ import annotations

import pytest

from comfygate.api.served_files import served_headers


@pytest.mark.parametrize(
    "content_type",
    [
        "image/png",
        "image/jpeg",
        "image/webp",
        "image/gif",
        "image/avif",
        "video/mp4",
        "audio/ogg",
        "text/plain",
        "text/plain; charset=utf-8",
        "IMAGE/PNG",
    ],
)
def test_types_that_cannot_run_script_are_inline(content_type: str) -> None:
    assert served_headers("a", content_type)["Content-Disposition"].startswith("inline;")


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "image/svg+xml",
        "application/xml",
        "text/xml",
        "text/javascript",
        "application/pdf",
        "application/octet-stream",
        "application/xhtml+xml",
        "",
    ],
)
def test_everything_else_is_an_attachment(content_type: str) -> None:
    headers = served_headers("a", content_type)
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].startswith("sandbox;")


def test_the_file_name_cannot_break_the_header() -> None:
    headers = served_headers('a"; filename=x.html\r\nSet-Cookie: a=b', "image/png")
    assert headers["Content-Disposition"] == (
        'inline; filename="a___filename_x.html__Set-Cookie__a_b"'
    )
