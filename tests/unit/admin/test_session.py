from __future__ import annotations

import pytest

from comfygate.admin.session import AdminSessions
from comfygate.clock import FakeClock


def sessions(
    clock: FakeClock, token: str = "s3cret-token", key: bytes = b"k" * 32
) -> AdminSessions:
    return AdminSessions(token=token, key=key, clock=clock, ttl_s=3600)


def test_token_check() -> None:
    auth = sessions(FakeClock())
    assert auth.check_token("s3cret-token")
    assert not auth.check_token("s3cret-toke")
    assert not auth.check_token("")
    assert not auth.check_token("s3cret-token\x00")
    assert not auth.check_token("ünïcode")


def test_an_issued_session_verifies_until_it_expires() -> None:
    clock = FakeClock()
    auth = sessions(clock)
    session = auth.issue()
    assert session.max_age_s == 3600
    assert (session.expires_at - clock.now()).total_seconds() == 3600
    assert auth.verify(session.value) == session.expires_at
    clock.advance(3599)
    assert auth.verify(session.value) == session.expires_at
    clock.advance(1)
    assert auth.verify(session.value) is None


def test_sessions_are_distinct() -> None:
    auth = sessions(FakeClock())
    assert auth.issue().value != auth.issue().value


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: v[:-1] + ("A" if v[-1] != "A" else "B"),  # the MAC
        lambda v: v.replace(".", ".9", 1),  # a later expiry
        lambda v: "1" + v[1:],  # another version
        lambda v: v.replace(".-.", ".key-1.", 1),  # claims a key it was not bought with
        lambda v: v.rsplit(".", 1)[0],  # no MAC
        lambda v: "",
        lambda v: "2.x.y.z.w",
    ],
)
def test_altered_cookies_fail(tamper: object) -> None:
    auth = sessions(FakeClock())
    value = auth.issue().value
    assert callable(tamper)
    assert auth.verify(tamper(value)) is None


def test_a_session_names_the_admin_key_it_was_bought_with() -> None:
    auth = sessions(FakeClock())
    by_key = auth.claims(auth.issue("0b9c-key").value)
    by_token = auth.claims(auth.issue().value)
    assert by_key is not None and by_key.key_id == "0b9c-key"
    assert by_token is not None and by_token.key_id is None
    forged = auth.issue("0b9c-key").value.replace(".0b9c-key.", ".-.")
    assert auth.claims(forged) is None  # a key's session cannot pass for the token's


def test_another_key_or_a_rotated_token_signs_everyone_out() -> None:
    clock = FakeClock()
    value = sessions(clock).issue().value
    assert sessions(clock, key=b"x" * 32).verify(value) is None
    assert sessions(clock, token="new-token").verify(value) is None
    assert sessions(clock).verify(value) is not None


def test_an_empty_token_is_refused() -> None:
    with pytest.raises(ValueError):
        sessions(FakeClock(), token="")
