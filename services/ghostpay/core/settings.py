"""One `Settings` object, read from the environment (prefix `GHOSTPAY_`) at start-up and passed down.

Built by the CLI (`ghostpay serve`, `ghostpay dev`, `ghostpay migrate`) and by tests; nothing else reads
the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ghostpay import __version__

Role = Literal["admin", "merchant", "user"]
RateLimitedRole = Literal["admin", "merchant", "user", "anonymous"]


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


class Settings(BaseSettings):
    """Everything a GhostPay process needs to know, from `GHOSTPAY_*` variables."""

    model_config = SettingsConfigDict(env_prefix="GHOSTPAY_", extra="ignore")

    database_url: str = "postgresql://localhost/ghostpay"
    redis_url: str = "redis://127.0.0.1:6379/0"
    keys_dir: Path = Path(".ghostpay/keys")

    issuer: str = "ghostpay"
    audience: str = "ghostpay"
    token_ttl_seconds: int = Field(default=900, ge=60, le=86400)

    admin_client_id: str | None = None
    admin_client_secret: SecretStr | None = None

    rate_limits: Annotated[dict[RateLimitedRole, RateLimit], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS)
    )
    # Payments must not go down with the limiter: by default a Redis outage lets requests through.
    rate_limit_fail_closed: bool = False

    card_bin: str = Field(default="400000", pattern=r"^[0-9]{6,8}$")
    card_default_ttl_seconds: int = Field(default=30 * 86400, ge=1)

    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=20, ge=1)
    analytics_relay_interval_seconds: float = Field(default=0.5, gt=0)
    log_level: str = "INFO"
    # The release this process belongs to (the operator sets it to spec.version); a label on the HTTP metrics.
    version: str = Field(default=__version__, max_length=128)

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
