"""One `Settings` object, read from the environment (prefix `GHOSTPAY_`) at start-up and passed down.

Built by the CLI (`ghostpay serve`, `ghostpay dev`, `ghostpay migrate`) and by tests; nothing else reads
the environment.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ghostpay import __version__

Role = Literal["admin", "merchant", "user"]
RateLimitedRole = Literal["admin", "merchant", "user", "anonymous"]
# Test-only faults (`ghostpay.core.faults`): what a broken release does, for the release and chaos tests.
Fault = Literal["none", "never-ready", "crash-after-start", "charges-5xx", "decline-charges"]


class RateLimit(BaseModel):
    """One role's budget: a sustained rate and the burst allowed on top of it (GCRA)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, extra="forbid")

    requests_per_second: float = Field(
        validation_alias="requestsPerSecond", serialization_alias="requestsPerSecond", gt=0
    )
    burst: int = Field(ge=1)


DEFAULT_RATE_LIMITS: dict[RateLimitedRole, RateLimit] = {
    "admin": RateLimit(requests_per_second=200, burst=400),
    "merchant": RateLimit(requests_per_second=100, burst=200),
    "user": RateLimit(requests_per_second=10, burst=20),
    # Requests without a valid token (token endpoint, JWKS, rejected tokens), keyed by client address.
    "anonymous": RateLimit(requests_per_second=20, burst=40),
}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ADMIN_SECRET_MIN_LENGTH = 16

_DURATION = re.compile(r"^(?:([0-9]+(?:\.[0-9]+)?)(h|m|s))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|m|s)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> object:
    """`24h`, `90m`, `1h30m`, `45s` (the CRD's gracePeriod format) as a timedelta; other values pass through."""
    if isinstance(value, str) and _DURATION.match(value.strip()):
        parts = _DURATION_PART.findall(value.strip())
        return timedelta(seconds=sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts))
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Settings(BaseSettings):
    """Everything a GhostPay process needs to know, from `GHOSTPAY_*` variables."""

    # hide_input_in_errors: a validation error must not echo the settings (admin secret, Vault token, passphrase).
    model_config = SettingsConfigDict(env_prefix="GHOSTPAY_", extra="ignore", hide_input_in_errors=True)

    database_url: str = "postgresql://localhost/ghostpay"
    redis_url: str = "redis://127.0.0.1:6379/0"
    keys_dir: Path = Path(".ghostpay/keys")
    # The local key store is encrypted at rest with this; not needed with Vault.
    keys_passphrase: SecretStr | None = None

    # `development` (what `ghostpay dev` runs as) relaxes checks that protect production, such as plain-HTTP Vault.
    environment: Literal["production", "development"] = "production"

    # Vault (or OpenBao) transit: set the address to keep every key there instead of in the local store.
    vault_addr: str | None = Field(default=None, pattern=r"^https?://")
    vault_token: SecretStr | None = None
    vault_role: str | None = None  # Kubernetes-auth role, logged in with the pod's ServiceAccount token
    vault_auth_mount: str = "kubernetes"
    vault_service_account_token_path: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    vault_transit_mount: str = "transit"
    vault_jwt_key: str = "ghostpay-jwt"
    vault_pan_key: str = "ghostpay-pan"
    vault_timeout_seconds: int = Field(default=3, ge=1)
    # PEM bundle of the CA(s) that signed Vault's TLS certificate (a private CA); unset: the system's CAs.
    vault_ca_cert: Path | None = None

    # Rotation: verifiers refresh the published keys every `key_refresh_seconds` (and on an unknown kid, at
    # most once per `key_min_refresh_seconds`); a new version signs only `key_activation_delay_seconds`
    # after it is published, so it must be more than the refresh interval.
    key_refresh_seconds: float = Field(default=30.0, gt=0)
    key_min_refresh_seconds: float = Field(default=5.0, gt=0)
    key_activation_delay_seconds: float = Field(default=60.0, ge=0)
    key_grace_period: Duration = timedelta(hours=24)
    # The oldest the signing key may get before its rotation is overdue (the operator derives it from
    # spec.keyRotation.schedule); exported as ghostpay_signing_key_max_age_seconds, absent when unset.
    signing_key_max_age_seconds: float | None = Field(default=None, gt=0)

    issuer: str = "ghostpay"
    audience: str = "ghostpay"
    token_ttl_seconds: int = Field(default=900, ge=5, le=86400)

    # Clock-skew leeway for a token's `iat`/`nbf` (a verifier a little behind the issuer still accepts a fresh
    # token); `exp` gets none, so a token never lives longer than issued (the revocation marker relies on it).
    token_leeway_seconds: int = Field(default=30, ge=0, le=300)

    admin_client_id: str | None = None
    admin_client_secret: SecretStr | None = None

    # Client secrets are argon2id hashes. Each verification holds `argon2_memory_kib` for ~0.05 s and at most
    # `auth_hash_concurrency` run at once, so hashing needs at most their product (2 x 19 MiB by default: OWASP's
    # m=19 MiB, t=2, p=1); `auth_hash_queue` more may wait, and logins beyond that get 503 `auth_busy`.
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8 * 1024, le=1024 * 1024)
    argon2_time_cost: int = Field(default=2, ge=1, le=20)
    argon2_parallelism: int = Field(default=1, ge=1, le=8)
    auth_hash_concurrency: int = Field(default=2, ge=1, le=64)
    auth_hash_queue: int = Field(default=32, ge=0, le=10_000)

    rate_limits: Annotated[dict[RateLimitedRole, RateLimit], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS)
    )
    # The Redis key holding the instance's live policy (the operator writes it from spec.rateLimits); while it is
    # absent, or leaves a role out, `rate_limits` apply. None: `rate_limits` only.
    rate_limit_policy_key: str | None = Field(default=None, min_length=1, max_length=512)
    # Payments must not go down with the limiter: by default a Redis outage lets requests through.
    rate_limit_fail_closed: bool = False
    # Each Redis call's deadline (and connecting's): a Redis that has not answered by then counts as unreachable
    # for that call (the limiter fails open, or closed). Every request waits up to this long on a silent Redis.
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=5)
    # Failed logins per attempted client_id (any address): while spent, that client's POST /auth/token is a 429.
    login_failure_limit: RateLimit = RateLimit(requests_per_second=0.2, burst=10)
    # Peers (CIDRs or addresses, comma-separated) whose X-Forwarded-For names the client; empty: never trusted.
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # A larger request body is refused with 413 while it is read (and at once when Content-Length says so).
    max_body_bytes: int = Field(default=64 * 1024, ge=1)

    card_bin: str = Field(default="400000", pattern=r"^[0-9]{6,8}$")
    card_default_ttl_seconds: int = Field(default=30 * 86400, ge=1)

    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=20, ge=1)
    analytics_relay_interval_seconds: float = Field(default=0.5, gt=0)
    log_level: str = "INFO"
    # The release this process belongs to (the operator sets it to spec.version); a label on the HTTP metrics.
    version: str = Field(default=__version__, max_length=128)

    # A broken release on purpose, for tests of rollback and analysis (see `ghostpay.core.faults`); refused in
    # production so that no configuration mistake can switch it on there.
    fault: Fault = "none"
    fault_delay_seconds: float = Field(default=20.0, ge=0)

    @model_validator(mode="after")
    def _vault_is_private(self) -> Settings:
        """Transit decrypt answers with a data key: over plain HTTP anyone on the path could read it. Plain HTTP is
        accepted only to a loopback address (a Vault agent or a dev server beside the process) or in development."""
        url = urlsplit(self.vault_addr or "")
        if url.scheme == "http" and self.environment != "development" and not _is_loopback(url.hostname or ""):
            raise ValueError(
                "GHOSTPAY_VAULT_ADDR must be an https:// URL: transit would send data keys over plain HTTP (http:// "
                "is accepted only to a loopback address, or with GHOSTPAY_ENVIRONMENT=development)."
            )
        return self

    @model_validator(mode="after")
    def _faults_stay_out_of_production(self) -> Settings:
        if self.fault != "none" and self.environment == "production":
            raise ValueError(
                f"GHOSTPAY_FAULT={self.fault} is a test-only fault switch: it is refused with "
                "GHOSTPAY_ENVIRONMENT=production (set GHOSTPAY_ENVIRONMENT=development on test releases only)."
            )
        return self

    @model_validator(mode="after")
    def _rotation_is_safe(self) -> Settings:
        if self.key_activation_delay_seconds <= self.key_refresh_seconds:
            raise ValueError(
                "GHOSTPAY_KEY_ACTIVATION_DELAY_SECONDS must be more than GHOSTPAY_KEY_REFRESH_SECONDS: a new key may "
                "sign only once every verifier has refreshed."
            )
        if self.key_grace_period.total_seconds() < self.token_ttl_seconds:
            raise ValueError(
                "GHOSTPAY_KEY_GRACE_PERIOD must be at least the token lifetime (GHOSTPAY_TOKEN_TTL_SECONDS)."
            )
        return self

    @field_validator("admin_client_secret")
    @classmethod
    def _admin_secret_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        """The bootstrap admin can do anything; a short secret would be guessable (the value is never echoed)."""
        if value is not None and len(value.get_secret_value()) < ADMIN_SECRET_MIN_LENGTH:
            raise ValueError(
                f"GHOSTPAY_ADMIN_CLIENT_SECRET must be at least {ADMIN_SECRET_MIN_LENGTH} characters long "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
            )
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_trusted_proxies(cls, value: object) -> object:
        """`10.0.0.0/8, 192.168.1.7` (as uvicorn's --forwarded-allow-ips writes it) or a list."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _parse_rate_limits(cls, value: object) -> object:
        """Accept the CRD's JSON shape; roles it leaves out keep their defaults."""
        import json

        if isinstance(value, str):
            value = json.loads(value) if value.strip() else {}
        if not isinstance(value, dict):
            raise ValueError("GHOSTPAY_RATE_LIMITS must be a JSON object keyed by role")
        return {**{k: v.model_dump(by_alias=True) for k, v in DEFAULT_RATE_LIMITS.items()}, **value}
