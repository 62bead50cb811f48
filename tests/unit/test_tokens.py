from __future__ import annotations

import pytest

from comfygate.clock import FakeClock
from comfygate.ids import new_id
from comfygate.storage.signing import Signer
from comfygate.tokens import VISITOR_PREFIX, Tokens


def tokens(key: bytes = b"k" * 32) -> Tokens:
    return Tokens(Signer(key, FakeClock()))


def test_visitor_cookie_round_trips() -> None:
    t = tokens()
    visitor = t.new_visitor_id()
    assert visitor.startswith(VISITOR_PREFIX)
    assert t.visitor_id(t.visitor_cookie(visitor)) == visitor


def test_new_visitors_differ() -> None:
    t = tokens()
    assert len({t.new_visitor_id() for _ in range(100)}) == 100


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: c.replace("visitor:", "visitor:x", 1),
        lambda c: c.split(".")[0],
        lambda c: "." + c.split(".")[1],
        lambda c: "",
        lambda c: ".",
        lambda c: "local." + c.split(".")[1],
    ],
)
def test_a_changed_visitor_cookie_is_refused(mangle: object) -> None:
    t = tokens()
    cookie = t.visitor_cookie(t.new_visitor_id())
    assert callable(mangle)
    assert t.visitor_id(mangle(cookie)) is None


def test_a_cookie_signed_with_another_key_is_refused() -> None:
    visitor = tokens().new_visitor_id()
    assert tokens(b"other" * 8).visitor_id(tokens().visitor_cookie(visitor)) is None


def test_only_visitor_ids_are_accepted_from_a_cookie() -> None:
    # A validly signed value must still name a visitor, never e.g. the local principal.
    t = tokens()
    assert t.visitor_id(t.visitor_cookie("local")) is None


def test_share_token_round_trips_and_refuses_tampering() -> None:
    t = tokens()
    job_id = new_id()
    token = t.share_token(job_id)
    assert t.share_id(token) == job_id
    assert t.share_id(token[:-2]) is None
    other = new_id()
    assert t.share_id(other + "." + token.split(".")[1]) is None
    assert t.share_id("not-a-job." + t.share_token("not-a-job").split(".")[1]) is None


def test_purposes_do_not_mix() -> None:
    t = tokens()
    job_id = new_id()
    visitor = VISITOR_PREFIX + job_id
    assert t.visitor_id(t.share_token(visitor)) is None
    assert t.share_id(t.visitor_cookie(job_id)) is None
