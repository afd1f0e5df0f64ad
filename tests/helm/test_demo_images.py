"""The chart's demo images (tools/demo-images/build.sh, as `make demo-images`): PostgreSQL and Redis from Debian's
packages, OpenBao and Prometheus, run the way the chart's pods run them (uid 999, read-only root, no capabilities,
emptyDirs as tmpfs): GhostPay's own migration and a Redis round trip work against them, OpenBao sets itself up with
the chart's script and the repository's policies, which then allow each workload exactly its transit calls, and
Prometheus runs the chart's configuration and answers queries."""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helm import helm
from tests.helm.helm import CHART, ROOT
from tests.image import docker

pytestmark = [pytest.mark.image, pytest.mark.slow]

POD = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "999:999"]
READY_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def demo_images() -> dict[str, str]:
    result = subprocess.run(
        [str(ROOT / "tools/demo-images/build.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    print(result.stderr)
    assert result.returncode == 0, result.stderr
    return {image.split(":")[0]: image for image in result.stdout.split()}


def test_the_chart_names_the_images_the_script_builds(demo_images: dict[str, str]) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())["demo"]
    for name in ("postgres", "redis"):
        image = values[name]["image"]
        assert demo_images[image["repository"]] == f"{image['repository']}:{image['tag']}"
    for name in ("vault", "prometheus"):
        image = values[name]["image"]
        assert demo_images[image["repository"]] == f"{image['repository']}:{image['tag']}"
    assert sorted(demo_images) == [
        "ghostpay/demo-openbao",
        "ghostpay/demo-postgres",
        "ghostpay/demo-prometheus",
        "ghostpay/demo-redis",
    ]


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"gp-demo-{secrets.token_hex(4)}"
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False, timeout=60)


def test_postgres_runs_hardened_and_ghostpay_migrates_into_it(demo_images: dict[str, str], container_name: str) -> None:
    password = secrets.token_urlsafe(16)
    tmpfs = ["--tmpfs", "/var/lib/postgresql/data:uid=999,gid=999,mode=0700", "--tmpfs", "/tmp"]
    tmpfs += ["--tmpfs", "/var/run/postgresql:uid=999,gid=999"]
    _docker("run", "-d", "--name", container_name, *POD, *tmpfs, "-e", f"POSTGRES_PASSWORD={password}",
            demo_images["ghostpay/demo-postgres"])  # fmt: skip
    _wait_until(container_name, ["pg_isready", "-h", "127.0.0.1", "-U", "ghostpay", "-d", "ghostpay"])
    # The chart's DSN shape, over TCP with the password (scram-sha-256), from GhostPay's image beside it.
    dsn = f"postgresql://ghostpay:{password}@127.0.0.1:5432/ghostpay"
    migrate = docker.run(
        docker.build(), "ghostpay", "migrate", options=("--network", f"container:{container_name}",
                                                       "-e", f"GHOSTPAY_DATABASE_URL={dsn}"),
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    assert "applied" in migrate.stdout
    wrong = docker.run(
        docker.build(), "ghostpay", "migrate", options=("--network", f"container:{container_name}",
                                                       "-e", f"GHOSTPAY_DATABASE_URL={dsn.replace(password, 'x')}"),
    )  # fmt: skip
    assert wrong.returncode != 0  # the password is checked: no trust over TCP


def test_postgres_refuses_to_start_without_a_password(demo_images: dict[str, str]) -> None:
    result = subprocess.run(
        ["docker", "run", "--rm", *POD, "--tmpfs", "/tmp", demo_images["ghostpay/demo-postgres"]],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "POSTGRES_PASSWORD is not set" in result.stderr


def test_redis_runs_hardened_and_answers(demo_images: dict[str, str], container_name: str) -> None:
    _docker("run", "-d", "--name", container_name, *POD, "--tmpfs", "/data:uid=999,gid=999",
            demo_images["ghostpay/demo-redis"])  # fmt: skip
    _wait_until(container_name, ["redis-cli", "ping"])
    reply = _docker("exec", container_name, "redis-cli", "-h", "127.0.0.1", "set", "k", "v")
    assert reply.stdout.strip() == "OK"
    assert _docker("exec", container_name, "id", "-u").stdout.strip() == "999"


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result


def _wait_until(container: str, probe: list[str]) -> None:
    """Poll the probe the chart's readiness probe runs, bounded in time."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        result = subprocess.run(["docker", "exec", container, *probe], capture_output=True, timeout=30, check=False)
        if result.returncode == 0:
            return
        time.sleep(0.5)
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=30, check=False)
    raise AssertionError(f"{container} not ready in {READY_TIMEOUT} s: {logs.stdout}{logs.stderr}")


def test_openbao_sets_itself_up_with_the_charts_script_and_policies(
    demo_images: dict[str, str], container_name: str, tmp_path: Path
) -> None:
    """What the chart's pod mounts: the script and the policies from the chart, its TLS certificate, and a
    ServiceAccount directory (here a stand-in: Kubernetes auth reads its CA when configured; logins need a real API
    server: tests/kind/test_end_to_end.py)."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "/dev/null", "-subj", "/CN=demo",
         "-days", "1", "-out", str(account / "ca.crt")],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    (account / "token").write_text("not-a-token")
    tls = tmp_path / "tls"  # what the chart mounts from <name>-openbao-tls (here self-signed for 127.0.0.1)
    tls.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tls / "tls.key"), "-subj",
         "/CN=payments-openbao", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-out", str(tls / "tls.crt")],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    (account / "namespace").write_text("shop")
    for path in (tmp_path, account, *account.iterdir(), tls, *tls.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    root = secrets.token_hex(16)
    mounts = [
        f"{account}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
        f"{CHART / 'files/openbao-demo.sh'}:/setup/openbao-demo.sh:ro",
        f"{CHART / 'files/policies'}:/policies:ro",
        f"{tls}:/tls:ro",
    ]
    env = {"INSTANCE": "payments", "POD_NAMESPACE": "shop", "BAO_DEV_ROOT_TOKEN_ID": root,
           "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}  # fmt: skip
    options = [
        *(arg for mount in mounts for arg in ("-v", mount)),
        *(arg for k, v in env.items() for arg in ("-e", f"{k}={v}")),
    ]
    _docker("run", "-d", "--name", container_name, *POD, "--tmpfs", "/tmp", *options,
            "--entrypoint", "/bin/sh", demo_images["ghostpay/demo-openbao"], "/setup/openbao-demo.sh")  # fmt: skip
    _wait_until(container_name, ["test", "-f", "/tmp/configured"])  # the chart's readiness probe

    def bao(token: str, *args: str) -> subprocess.CompletedProcess[str]:
        local = ["-e", "BAO_ADDR=http://127.0.0.1:8200", "-e", f"BAO_TOKEN={token}"]
        command = ["docker", "exec", *local, container_name, "bao", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    for workload in ("auth", "cards", "charges", "analytics", "key-rotation"):
        role = bao(root, "read", "-format=json", f"auth/kubernetes/role/ghostpay-{workload}")
        assert role.returncode == 0, role.stderr
        data = yaml.safe_load(role.stdout)["data"]
        assert data["bound_service_account_names"] == [f"payments-{workload}"]
        assert (data["bound_service_account_namespaces"], data["token_policies"]) == (
            ["shop"],
            [f"ghostpay-{workload}"],
        )
    # The auth workload's policy: it signs with the JWT key and cannot touch the PAN key.
    token = bao(root, "token", "create", "-policy=ghostpay-auth", "-field=token").stdout.strip()
    assert bao(token, "write", "transit/sign/ghostpay-jwt", "input=aGVsbG8=").returncode == 0
    refused = bao(token, "write", "transit/encrypt/ghostpay-pan", "plaintext=aGVsbG8=")
    assert refused.returncode != 0 and "permission denied" in refused.stderr
    # What the Service exposes: TLS with the mounted certificate, on 8300 (plain HTTP stays on the loopback).
    status = ["docker", "exec", "-e", "BAO_ADDR=https://127.0.0.1:8300", "-e", "BAO_CACERT=/tls/tls.crt",
              container_name, "bao", "status", "-format=json"]  # fmt: skip
    served = subprocess.run(status, capture_output=True, text=True, timeout=60, check=False)
    assert served.returncode == 0 and yaml.safe_load(served.stdout)["sealed"] is False, served.stderr


def test_prometheus_runs_hardened_with_the_charts_configuration(
    demo_images: dict[str, str], container_name: str, tmp_path: Path
) -> None:
    """The chart's own prometheus.yml (its DNS discovery finds nothing outside a cluster, which is no error), on
    a tmpfs for its storage as the pod's emptyDir: ready, and the query API answers."""
    objects = helm.by_kind(helm.template("demo.enabled=true", "demo.prometheus.enabled=true", namespace="shop"))
    config = tmp_path / "prometheus.yml"
    config.write_text(objects[("ConfigMap", "payments-prometheus")]["data"]["prometheus.yml"])
    tmp_path.chmod(0o755)
    config.chmod(0o644)
    [container] = objects[("Deployment", "payments-prometheus")]["spec"]["template"]["spec"]["containers"]
    _docker("run", "-d", "--name", container_name, *POD, "--tmpfs", "/prometheus:uid=999,gid=999",
            "-v", f"{config}:/etc/prometheus/prometheus.yml:ro", "-p", "127.0.0.1::9090",
            demo_images["ghostpay/demo-prometheus"], *container["args"])  # fmt: skip
    port = _docker("port", container_name, "9090/tcp").stdout.split()[0].rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and not _answers(f"{base}/-/ready"):
        time.sleep(0.5)
    assert _answers(f"{base}/-/ready"), _docker("logs", container_name).stderr[-2000:]
    answer = httpx.get(f"{base}/api/v1/query", params={"query": "vector(1)"}, timeout=10)
    assert answer.json()["status"] == "success"
    assert _docker("exec", container_name, "id", "-u").stdout.strip() == "999"


def test_prometheus_image_has_no_kubernetes_discovery(demo_images: dict[str, str], tmp_path: Path) -> None:
    """Why the chart discovers the pods through DNS: Debian's build refuses `kubernetes_sd_configs`."""
    config = tmp_path / "prometheus.yml"
    config.write_text("scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs: [{role: pod}]\n")
    tmp_path.chmod(0o755)
    config.chmod(0o644)
    result = subprocess.run(
        ["docker", "run", "--rm", *POD, "--tmpfs", "/prometheus:uid=999,gid=999", "-v",
         f"{config}:/etc/prometheus/prometheus.yml:ro", demo_images["ghostpay/demo-prometheus"],
         "--config.file=/etc/prometheus/prometheus.yml"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode != 0 and "kubernetes_sd_configs not found" in result.stderr, result.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
