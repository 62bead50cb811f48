"""Signatures as Standard Webhooks defines them, checked by its reference library."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from comfygate.clock import SYSTEM_CLOCK
from comfygate.config import Settings
from comfygate.errors import InvalidParams
from comfygate.jobs.webhooks import WebhookTarget
from comfygate.webhooks.signing import owner_secret, signed_headers


def test_each_owner_has_its_own_secret_derived_from_the_signing_key() -> None:
    alice, bob = owner_secret(b"key", "alice"), owner_secret(b"key", "bob")
    assert alice.startswith("whsec_") and alice != bob
    assert owner_secret(b"key", "alice") == alice != owner_secret(b"other", "alice")


def test_the_reference_library_verifies_our_signature_and_refuses_a_forgery() -> None:
    secret = owner_secret(b"key", "alice")
    body = b'{"type":"job.succeeded","timestamp":"2026-01-01T00:00:00+00:00","data":{}}'
    now = int(SYSTEM_CLOCK.now().timestamp())
    headers = signed_headers(secret, "msg_1", now, body)
    assert Webhook(secret).verify(body, headers)["type"] == "job.succeeded"
    with pytest.raises(WebhookVerificationError):
        Webhook(owner_secret(b"key", "bob")).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_2"})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"type":"job.succeeded"}', "v1,Px0HpRu+fHP2JJg6xljmvliSCFm2he3ZyTlmQpG040k="),
        # a body is signed as its bytes, not as text
        (b"\xff\x00 not utf8", "v1,kqAkJpVctfl3p+4nYhIYG2nTrVNanEqlDRkAb6p/kI4="),
    ],
)
def test_signatures_stay_what_receivers_already_verify(body: bytes, expected: str) -> None:
    # Known answers from the signer before the library: a change here breaks receivers.
    secret = owner_secret(b"key", "alice")
    assert secret == "whsec_BPrrVy+uq5fvx20Yh/Kp+8dZlRRCYYF0tjm/i5py4f0="
    assert signed_headers(secret, "msg_1", 1767225600, body) == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1767225600",
        "webhook-signature": expected,
    }


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("https://x", "/webhook"),
        ({}, "/webhook/url"),
        ({"url": "https://x", "secret": 1}, "/webhook/secret"),
        ({"url": "https://x", "events": "job.started"}, "/webhook/events"),
        ({"url": "https://x", "events": ["job.started", "job.started"]}, "/webhook/events"),
        ({"url": "https://x", "events": ["job.done"]}, "/webhook/events/0"),
        ({"url": "https://x/" + "a" * 2048}, "/webhook/url"),
    ],
)
def test_a_bad_webhook_names_its_field(raw: object, path: str) -> None:
    with pytest.raises(InvalidParams) as caught:
        WebhookTarget.parse(raw)
    assert caught.value.details[0]["path"] == path


def test_terminal_events_are_the_default_and_started_is_opt_in() -> None:
    target = WebhookTarget.parse({"url": "https://x"})
    assert "job.started" not in target.events and "job.expired" in target.events
    assert WebhookTarget.parse({"url": "https://x", "events": ["job.started"]}).events == (
        "job.started",
    )


def test_the_allow_list_setting_reads_lists_and_comma_separated_text() -> None:
    assert Settings(outbound={"allow": "10.0.0.0/8, hooks.lan"}).outbound.allow == [
        "10.0.0.0/8",
        "hooks.lan",
    ]
    assert Settings(outbound={"allow": '["::1"]'}).outbound.allow == ["::1"]
