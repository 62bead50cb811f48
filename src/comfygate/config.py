"""One Settings object, read once at start and passed down.

Sources, strongest first: keyword arguments (the CLI's options), ``COMFYGATE_*``
environment variables, the TOML file (``--config`` or ``./comfygate.toml``), defaults.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_TOML = Path("comfygate.toml")


@dataclass(frozen=True)
class Backend:
    """A ComfyUI server the gateway runs jobs on."""

    pool: str
    url: str

    @classmethod
    def parse(cls, spec: str) -> Backend:
        """``POOL=URL`` or ``URL`` (pool ``default``)."""
        pool, sep, url = spec.partition("=")
        if not sep:
            pool, url = "default", spec
        pool, url = pool.strip(), url.strip().rstrip("/")
        if not pool or not url.startswith(("http://", "https://")):
            raise ValueError(f"backend {spec!r} must be URL or POOL=URL with an http(s) URL")
        return cls(pool=pool, url=url)


class LeaseSettings(BaseModel):
    """A lease runs ``ttl_s`` unless its agent's heartbeat renews it; a rescuer looks
    for leases that ran out every ``rescue_every_s``. The minimums keep a busy machine
    from losing leases to a late heartbeat."""

    ttl_s: float = Field(default=30.0, ge=6.0)
    heartbeat_s: float = Field(default=10.0, ge=2.0)
    rescue_every_s: float = Field(default=5.0, ge=1.0)

    @model_validator(mode="after")
    def _beats_fit_in_a_lease(self) -> LeaseSettings:
        if self.heartbeat_s * 2 > self.ttl_s:
            raise ValueError(
                f"lease.heartbeat_s ({self.heartbeat_s:g}) must be at most half of "
                f"lease.ttl_s ({self.ttl_s:g}): one lost heartbeat must not lose the lease"
            )
        return self


class RetentionSettings(BaseModel):
    """How long things are kept; the sweeper runs every ``sweep_every_s``."""

    outputs_days: float = Field(default=7.0, gt=0)
    jobs_days: float = Field(default=30.0, gt=0)
    uploads_hours: float = Field(default=24.0, gt=0)
    sweep_every_s: float = Field(default=600.0, ge=1.0)


class HygieneSettings(BaseModel):
    """When agents call ComfyUI's ``/free`` between jobs (0 turns a rule off)."""

    free_every_jobs: int = Field(default=0, ge=0)
    free_below_fraction: float = Field(default=0.0, ge=0.0, le=1.0)


class UploadSettings(BaseModel):
    """Limits of an uploaded picture; one past them is refused before it is decoded."""

    max_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    #: pixels of all frames together (an animation is one batch in ComfyUI)
    max_pixels: int = Field(default=4096 * 4096, gt=0)
    max_frames: int = Field(default=100, ge=1)
    formats: list[str] = Field(default_factory=lambda: ["PNG", "JPEG", "WEBP", "GIF"])
    url_ttl_s: int = 900

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        known = ("PNG", "JPEG", "WEBP", "GIF")
        formats = [f.upper() for f in value]
        unknown = [f for f in formats if f not in known]
        if unknown:
            raise ValueError(f"uploads.formats: {unknown} not among {list(known)}")
        return formats


class RequestSettings(BaseModel):
    """How large a request body may be; one past it gets 413 before the rest is read.
    Files the clients upload go to signed URLs (each with its own declared size) and
    agents stream outputs, so neither counts here."""

    #: JSON and every other body
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    #: a multipart submit: its pictures (each within uploads.max_bytes) and params
    max_multipart_bytes: int = Field(default=64 * 1024 * 1024, gt=0)


class WebhookSettings(BaseModel):
    """How webhook deliveries are sent and retried: backoff doubles from ``backoff_base_s``
    up to ``backoff_max_s`` (with jitter) until ``retry_for_s`` after the first attempt."""

    timeout_s: float = Field(default=10.0, gt=0)
    retry_for_s: float = Field(default=24 * 3600.0, gt=0)
    backoff_base_s: float = Field(default=5.0, gt=0)
    backoff_max_s: float = Field(default=3600.0, gt=0)
    #: how often the outbox is polled (a local transition also wakes it at once)
    poll_s: float = Field(default=1.0, gt=0)
    batch: int = Field(default=20, ge=1)


class OutboundSettings(BaseModel):
    """Requests to URLs the public gives (webhooks, image URLs) reach public addresses
    only; ``allow`` lists host names and addresses or CIDRs (``10.0.0.0/8``) exempt from
    that, for receivers on your own network. A webhook may use ``http://`` only to a
    host listed here."""

    allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: redirects an image URL may take, each hop checked like the first
    max_redirects: int = Field(default=3, ge=0, le=10)
    fetch_timeout_s: float = Field(default=20.0, gt=0)

    @field_validator("allow", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        """A list, JSON, or ``"10.0.0.0/8, hooks.lan"`` from the environment."""
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [part for part in value.replace(",", " ").split() if part]
        return value


class S3Settings(BaseModel):
    """Where and as whom to reach the bucket of ``storage_url``; empty fields fall back to
    the usual AWS environment (``AWS_ENDPOINT_URL``, ``AWS_REGION``, ...)."""

    #: an S3-compatible service (MinIO, R2, ...); empty means AWS itself
    endpoint_url: str = ""
    region: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    #: path-style URLs are the default; some services want ``bucket.host`` instead
    virtual_hosted_style: bool = False

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("s3.endpoint_url must be an http(s) URL")
        return value.rstrip("/")


class JwtSettings(BaseModel):
    """Users signed in by an identity provider (Supabase, Auth0, Keycloak, ...): their
    JWTs are checked against the provider's keys at ``jwks_url``. Off while empty."""

    issuer: str = ""
    audience: str = ""
    jwks_url: str = ""
    #: clock skew allowed on exp/nbf/iat
    leeway_s: float = Field(default=30.0, ge=0)

    @model_validator(mode="after")
    def _all_or_nothing(self) -> JwtSettings:
        given = [bool(self.issuer), bool(self.audience), bool(self.jwks_url)]
        if any(given) and not all(given):
            raise ValueError("jwt needs issuer, audience and jwks_url together")
        if self.jwks_url and not self.jwks_url.startswith(("https://", "http://")):
            raise ValueError("jwt.jwks_url must be an http(s) URL")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.jwks_url)


class KindLimits(BaseModel):
    """Limits for the principals of one kind (``local``, ``visitor``, ``key``, ``user``);
    0 turns a limit off."""

    #: job submissions a minute per principal
    per_minute: int = Field(default=0, ge=0)
    #: job submissions a minute per client address, counted for callers of this kind
    per_address_per_minute: int = Field(default=0, ge=0)
    #: jobs queued and running at once per principal
    max_active: int = Field(default=0, ge=0)


class BudgetSetting(BaseModel):
    amount: float = Field(ge=0)
    period: Literal["day", "month"] = "day"


#: what ``comfygate demo`` limits a visitor of its public pages to, unless configured
DEMO_VISITOR_LIMITS = KindLimits(per_minute=10, per_address_per_minute=30, max_active=3)


class LimitSettings(BaseModel):
    """Rate, concurrency and budget limits per kind of principal. All off by default
    (``comfygate demo`` turns them on for visitors); admins and workers are never limited."""

    kinds: dict[str, KindLimits] = Field(default_factory=dict)
    #: failed authentications (wrong token or key, refused JWT) a minute per client
    #: address, and per API key that was identified but refused; past it, 429. 0: off
    auth_failures_per_minute: int = Field(default=10, ge=0)
    #: the budget of each visitor without one of its own (none: unlimited)
    visitor_budget: BudgetSetting | None = None

    def for_kind(self, kind: str) -> KindLimits:
        return self.kinds.get(kind) or KindLimits()

    def with_demo_defaults(self) -> LimitSettings:
        if "visitor" in self.kinds:
            return self
        return self.model_copy(update={"kinds": {**self.kinds, "visitor": DEMO_VISITOR_LIMITS}})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COMFYGATE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    workflows_dir: Path = Path("workflows")
    #: ComfyUI backends as ``POOL=URL`` or ``URL``
    comfy: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: SQLAlchemy URL; empty means SQLite in the data directory
    database_url: str = ""
    #: apply database migrations at start; off, start only on a schema at head
    #: (then ``comfygate db upgrade`` migrates)
    migrate_on_start: bool = True
    #: ``s3://bucket/prefix``; empty means files in the data directory
    storage_url: str = ""
    s3: S3Settings = Field(default_factory=S3Settings)
    #: how gateways tell each other about events and doorbell rings: ``redis://…`` for
    #: Redis pub/sub; empty means the database's own LISTEN/NOTIFY on PostgreSQL, and
    #: nothing (one gateway) on SQLite
    broker_url: str = ""
    #: idle agents (and other waiters) look at the database at least this often when no
    #: ring wakes them, so a lost notice costs at most this much latency
    poll_s: float = Field(default=1.0, gt=0)
    #: signs URLs and cookies; empty means a key kept in the data directory
    secret_key: str = ""
    #: how long signed output URLs live
    url_ttl_s: int = 3600
    lease: LeaseSettings = Field(default_factory=LeaseSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    hygiene: HygieneSettings = Field(default_factory=HygieneSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)
    requests: RequestSettings = Field(default_factory=RequestSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    #: idempotency keys are kept at least this long
    idempotency_ttl_s: int = 24 * 3600
    #: how long an interrupted prompt may take to stop before its backend is marked down
    interrupt_grace_s: float = Field(default=60.0, ge=1.0)
    #: queued jobs a pool holds at most; past it a submit gets 429 queue_full
    max_queue_depth: int = Field(default=1000, ge=1)
    #: write job parameters and failure messages (which may echo them) into the logs;
    #: off, logs name jobs, workflows and error codes only
    log_prompts: bool = False
    #: signs in to the ops dashboard and admin API; empty means one kept in the data dir
    admin_token: str = ""
    #: how long an admin session cookie stays valid
    admin_session_ttl_s: int = Field(default=12 * 3600, gt=0)
    #: demo only: requests without credentials share one local principal instead of a 401
    allow_anonymous: bool = False
    #: the web pages hand each browser a visitor cookie (an identity of its own)
    public_site: bool = False
    #: origins of other sites whose pages may call the API with bearer keys (CORS, no cookies)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    jwt: JwtSettings = Field(default_factory=JwtSettings)

    limits: LimitSettings = Field(default_factory=LimitSettings)
    #: a message broker; a ``redis://`` URL also holds the rate-limit counters shared
    #: by every gateway (otherwise they are counted in this process's memory)
    #: reverse proxies (CIDRs) whose ``X-Forwarded-For`` is believed: the client
    #: address is then the first hop from the right that is not one of them
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("comfy", "cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.replace(",", " ").split() if part]
        return value

    @field_validator("comfy")
    @classmethod
    def _check_backends(cls, value: list[str]) -> list[str]:
        for spec in value:
            Backend.parse(spec)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for spec in value:
            ipaddress.ip_network(spec, strict=False)
        return value

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str) -> str:
        if value:
            parse_s3_url(value)
        return value

    @field_validator("broker_url")
    @classmethod
    def _check_broker_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"broker_url {value!r} must be empty or a redis:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_toml_path()),
        )

    @property
    def backends(self) -> list[Backend]:
        return [Backend.parse(spec) for spec in self.comfy]

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'comfygate.db').resolve()}"

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "storage"

    def signing_key(self) -> bytes:
        """The configured secret, or one generated once and kept in the data dir."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip().encode()

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir / "admin.token"

    @property
    def admin_token_origin(self) -> str:
        """Where an operator finds the admin token, for banners."""
        if self.admin_token:
            return "the admin_token setting (COMFYGATE_ADMIN_TOKEN)"
        return str(self.admin_token_file)

    def admin_key(self) -> str:
        """The configured admin token, or one generated once and kept in the data dir,
        so a fresh install (and the demo) can sign in to the dashboard."""
        if self.admin_token:
            return self.admin_token
        path = self.admin_token_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` → (bucket, prefix without slashes at either end)."""
    scheme, sep, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not sep or not bucket:
        raise ValueError(f"storage_url {url!r} must be empty or s3://BUCKET[/PREFIX]")
    return bucket, prefix.strip("/")


_toml_file: Path | None = None


def _toml_path() -> Path | None:
    if _toml_file is not None:
        return _toml_file
    return DEFAULT_TOML if DEFAULT_TOML.exists() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``overrides`` are options given on the command line (None = not given)."""
    global _toml_file
    if config_file is not None and not config_file.exists():
        raise FileNotFoundError(f"config file {config_file} does not exist")
    _toml_file = config_file
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _toml_file = None
