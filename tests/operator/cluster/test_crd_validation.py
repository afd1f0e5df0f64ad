"""The CRD refuses malformed values at apply time with a message naming the field, and accepts the usual ones
(`kubectl apply --dry-run=server` against the real API server; nothing is created)."""

from __future__ import annotations

from typing import Any

import pytest

from ghostpay_devtools import localcluster
from tests.operator.support.kube_helpers import install_crds, instance_yaml

pytestmark = pytest.mark.slow

SHAPE = "schedule must be five cron fields separated by single spaces"
VAULT = "address must be a well-formed http:// or https:// URL with a host"
PROMETHEUS = "prometheusUrl must be a well-formed http:// or https:// URL with a host"
REDIS = "url must be a well-formed redis:// or rediss:// URL with a host"
REDIS_PASSWORD = "url must not carry a password"

# (field under spec, value, the messages expected: one error each)
INVALID: list[tuple[str, str, tuple[str, ...]]] = [
    ("keyRotation.schedule", "not a cron", (SHAPE,)),
    ("keyRotation.schedule", "", (SHAPE,)),
    ("keyRotation.schedule", "* * * * * *", (SHAPE,)),
    ("keyRotation.schedule", "@reboot", (SHAPE,)),
    ("keyRotation.schedule", "99 99 * * *", ("minute (1st field) must be 0-59", "hour (2nd field) must be 0-23")),
    ("keyRotation.schedule", "0 3 32 * *", ("day of month (3rd field) must be 1-31",)),
    ("keyRotation.schedule", "0 3 * 13 *", ("month (4th field) must be 1-12 or jan-dec",)),
    ("keyRotation.schedule", "0 3 * * 8", ("day of week (5th field) must be 0-7 or sun-sat",)),
    ("keyRotation.gracePeriod", "1 day", ("should match",)),  # the pattern alone, no CEL conversion error
    ("keyRotation.gracePeriod", "10m", ("gracePeriod must be at least the token lifetime (15m)",)),
    ("keyRotation.vault.address", "http://", (VAULT,)),
    ("keyRotation.vault.address", "http:// bad url", (VAULT,)),
    ("keyRotation.vault.address", "vault.example:8200", (VAULT,)),
    ("release.analysis.prometheusUrl", "http://", (PROMETHEUS,)),
    ("release.analysis.prometheusUrl", "ftp://prometheus:9090", (PROMETHEUS,)),
    ("redis.url", "redis://", (REDIS,)),
    ("redis.url", "redis://a b c", (REDIS,)),
    ("redis.url", "http://redis:6379", (REDIS,)),
    # Finding 9 of the security review: a password in the URL would be kept in a ConfigMap.
    ("redis.url", "redis://:s3cret@redis.shop:6379/0", (REDIS_PASSWORD,)),
    ("redis.url", "redis://default:s3cret@redis.shop:6379/0", (REDIS_PASSWORD,)),
    ("redis.url", "rediss://redis.shop:6380/0?password=s3cret", (REDIS_PASSWORD,)),
]

VALID: list[tuple[str, str]] = [
    ("keyRotation.schedule", "0 3 * * *"),
    ("keyRotation.schedule", "@daily"),
    ("keyRotation.schedule", "*/15 * * * *"),
    ("keyRotation.schedule", "0 3 * * 1-5"),
    ("keyRotation.schedule", "30 2 1,15 jan-jun MON"),
    ("keyRotation.gracePeriod", "24h"),
    ("keyRotation.gracePeriod", "90m"),
    ("keyRotation.vault.address", "https://vault.example:8200"),
    ("release.analysis.prometheusUrl", "http://prometheus:9090"),
    ("redis.url", "redis://redis.shop:6379/0"),
    ("redis.url", "rediss://r:6380"),
    ("redis.url", "redis://reader@redis.shop:6379/0"),  # a user name alone is no secret
]


@pytest.fixture(scope="module")
def crds(cluster: localcluster.Cluster) -> localcluster.Cluster:
    return install_crds(cluster)


def _dry_run(cluster: localcluster.Cluster, field: str, value: str) -> tuple[int, str]:
    """Server-side dry run of samples/minimal.yaml with spec.`field` (a dotted path) set to `value`."""
    first, *rest = field.split(".")
    nested: Any = value
    for name in reversed(rest):
        nested = {name: nested}
    manifest = instance_yaml("default", **{first: nested})
    result = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    return result.returncode, result.stderr


@pytest.mark.parametrize(("field", "value", "messages"), INVALID)
def test_a_malformed_value_is_refused_with_a_clear_message(
    crds: localcluster.Cluster, field: str, value: str, messages: tuple[str, ...]
) -> None:
    returncode, stderr = _dry_run(crds, field, value)
    assert returncode != 0
    for message in messages:
        assert f'spec.{field}: Invalid value: "{value}"' in stderr and message in stderr, stderr
    assert stderr.count("Invalid value") == len(messages), stderr
    assert "type conversion error" not in stderr, stderr


@pytest.mark.parametrize(("field", "value"), VALID)
def test_a_usual_value_is_accepted(crds: localcluster.Cluster, field: str, value: str) -> None:
    returncode, stderr = _dry_run(crds, field, value)
    assert returncode == 0, stderr


@pytest.mark.parametrize(
    ("redis", "refused"),
    [
        ({"secretRef": {"name": "payments-redis"}}, False),
        ({"url": "redis://redis.shop:6379/0", "secretRef": {"name": "payments-redis"}}, True),
        ({}, True),
    ],
)
def test_redis_is_a_url_or_a_secret_never_both(
    crds: localcluster.Cluster, redis: dict[str, Any], refused: bool
) -> None:
    manifest = instance_yaml("default", redis=redis)
    result = crds.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
    assert (result.returncode != 0) == refused, result.stderr
    if refused:
        assert "set exactly one of redis.url and redis.secretRef" in result.stderr, result.stderr


def test_the_payment_analysis_thresholds_are_bounded_and_explained(crds: localcluster.Cluster) -> None:
    """spec.release.analysis' decline and p99 thresholds (issue 13): out-of-range values are refused naming the
    field, usual ones accepted, and `kubectl explain` describes both."""

    def dry_run(**thresholds: float) -> tuple[int, str]:
        analysis = {"prometheusUrl": "http://prometheus:9090", **thresholds}
        manifest = instance_yaml("default", release={"analysis": analysis})
        result = crds.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest, check=False)
        return result.returncode, result.stderr

    for field, value in (("maxDeclineRateIncrease", 1.5), ("maxDeclineRateIncrease", -0.1), ("maxChargeP99Ratio", 0.5)):
        returncode, stderr = dry_run(**{field: value})
        assert returncode != 0 and f"spec.release.analysis.{field}" in stderr, stderr
    assert dry_run(maxDeclineRateIncrease=0.02, maxChargeP99Ratio=1.5) == (0, "")
    explained = crds.kubectl("explain", "ghostpayinstance.spec.release.analysis").stdout
    for field in ("maxErrorRate", "maxDeclineRateIncrease", "maxChargeP99Ratio"):
        assert field in explained
    assert "stable version" in explained and "decline rate" in explained
