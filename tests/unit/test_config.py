from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from comfygate.config import DEMO_VISITOR_LIMITS, Backend, KindLimits, load_settings


def test_env_then_toml_then_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 9001\ncomfy = ["gpu=http://h:1"]\n[lease]\nttl_s = 24\n')
    monkeypatch.setenv("COMFYGATE_PORT", "9002")
    s = load_settings(toml)
    assert s.port == 9002  # env beats the file
    assert s.backends == [Backend("gpu", "http://h:1")]
    assert s.lease.ttl_s == 24 and s.lease.heartbeat_s == 10
    assert load_settings(toml, port=9003).port == 9003  # the command line beats both


def test_comfy_list_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYGATE_COMFY", "http://a:1, gpu=http://b:2/")
    s = load_settings()
    assert s.backends == [Backend("default", "http://a:1"), Backend("gpu", "http://b:2")]


@pytest.mark.parametrize("spec", ["ftp://x", "gpu=", "=http://x"])
def test_bad_backend_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        Backend.parse(spec)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")


def test_signing_key_is_generated_once(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    assert s.signing_key() == s.signing_key()
    assert len(s.signing_key()) >= 32


@pytest.mark.parametrize(
    ("lease", "field"),
    [
        ({"ttl_s": 5}, "ttl_s"),
        ({"heartbeat_s": 1}, "heartbeat_s"),
        ({"rescue_every_s": 0.5}, "rescue_every_s"),
        ({"ttl_s": 10, "heartbeat_s": 6}, "heartbeat_s"),
    ],
)
def test_lease_timings_below_the_floor_are_refused(lease: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        load_settings(lease=lease)


def test_chaos_timings_are_allowed() -> None:
    s = load_settings(lease={"ttl_s": 6, "heartbeat_s": 2, "rescue_every_s": 1})
    assert (s.lease.ttl_s, s.lease.heartbeat_s, s.lease.rescue_every_s) == (6, 2, 1)


def test_admin_token_is_generated_once_unless_configured(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path)
    token = s.admin_key()
    assert len(token) >= 32 and token == s.admin_key()
    assert s.admin_token_file.read_text() == token
    assert str(s.admin_token_file) in s.admin_token_origin
    fixed = load_settings(data_dir=tmp_path / "other", admin_token="given")
    assert fixed.admin_key() == "given" and not fixed.admin_token_file.exists()
    assert "COMFYGATE_ADMIN_TOKEN" in fixed.admin_token_origin


def test_cors_origins_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYGATE_CORS_ORIGINS", "https://a.example, https://b.example")
    assert load_settings().cors_origins == ["https://a.example", "https://b.example"]


def test_jwt_needs_issuer_audience_and_jwks_together() -> None:
    with pytest.raises(ValidationError, match="together"):
        load_settings(jwt={"issuer": "https://id.example"})
    s = load_settings(
        jwt={"issuer": "i", "audience": "a", "jwks_url": "https://id.example/jwks.json"}
    )
    assert s.jwt.enabled and not load_settings().jwt.enabled


def test_broker_url_names_redis_or_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().broker_url == ""
    monkeypatch.setenv("COMFYGATE_BROKER_URL", "redis://127.0.0.1:6379/0")
    assert load_settings().broker_url == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("COMFYGATE_BROKER_URL", "amqp://rabbit")
    with pytest.raises(ValueError, match="broker_url"):
        load_settings()


def test_limits_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYGATE_LIMITS__KINDS__KEY__PER_MINUTE", "600")
    monkeypatch.setenv("COMFYGATE_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8")
    monkeypatch.setenv("COMFYGATE_BROKER_URL", "redis://127.0.0.1:6379/2")
    s = load_settings()
    assert s.limits.kinds["key"].per_minute == 600
    assert s.trusted_proxies == ["10.0.0.0/8", "fd00::/8"]
    assert s.broker_url == "redis://127.0.0.1:6379/2"


def test_limit_settings_per_kind(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        "[limits.kinds.visitor]\nper_minute = 5\nmax_active = 2\n"
        '[limits.visitor_budget]\namount = 20\nperiod = "month"\n'
    )
    s = load_settings(toml)
    assert s.limits.for_kind("visitor") == KindLimits(per_minute=5, max_active=2)
    assert s.limits.for_kind("key") == KindLimits(), "off for kinds not named"
    assert s.limits.visitor_budget is not None and s.limits.visitor_budget.period == "month"
    # The demo limits its visitors only when the operator did not say how.
    assert s.limits.with_demo_defaults() == s.limits
    assert load_settings().limits.with_demo_defaults().kinds == {"visitor": DEMO_VISITOR_LIMITS}


@pytest.mark.parametrize(
    "overrides",
    [
        {"trusted_proxies": ["10.0.0.0/33"]},
        {"trusted_proxies": ["proxy.example"]},
        {"limits": {"kinds": {"visitor": {"per_minute": -1}}}},
        {"limits": {"visitor_budget": {"amount": 5, "period": "week"}}},
    ],
)
def test_bad_limit_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        load_settings(**overrides)
