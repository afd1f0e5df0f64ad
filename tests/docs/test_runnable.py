"""The docs' shell blocks stay true: every shell block in docs/*.md parses (`bash -n`); the blocks marked
`<!-- runnable -->` run, in order and in one shell per page, against a real `ghostpay dev` (embedded PostgreSQL and
Redis) this module starts, with `BASE` and `GHOSTPAY_DIR` pointing at it, and every `curl -fsS` in them succeeds;
every operation of services/openapi.yaml has a curl example among docs/api.md's runnable blocks, and running them
really served each one (the server's own request counter says so, by route template and method). Blocks marked
`<!-- cluster -->` need a Kubernetes cluster: they are parsed only (see docs/operations.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.docs.shell_blocks import DOCS, REPO_ROOT, Block, all_shell_blocks, curl_calls, shell_blocks
from tests.support import procs

OPENAPI = REPO_ROOT / "services" / "openapi.yaml"
DEV_READY_TIMEOUT = 180.0  # a first start runs initdb
RUN_TIMEOUT = 300


def _operations() -> set[tuple[str, str]]:
    paths = yaml.safe_load(OPENAPI.read_text())["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item if method != "parameters"}


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", r"[^/]+", re.escape(template)) + "$")


def _runnable(path: Path) -> list[Block]:
    return [block for block in shell_blocks(path) if block.marker == "runnable"]


@pytest.mark.parametrize("block", all_shell_blocks(), ids=lambda block: block.where)
def test_every_shell_block_parses(block: Block) -> None:
    result = subprocess.run(["bash", "-n"], input=block.code, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{block.where}: {result.stderr}"


def test_runnable_curls_fail_on_http_errors() -> None:
    """`curl -fsS`, so an error status fails the block; a block that expects one compares the status itself."""
    for path in sorted(DOCS.glob("*.md")):
        for block in _runnable(path):
            for command in re.findall(r"\bcurl\s[^\n]*", block.code):
                assert " -fsS " in f" {command} " or "%{http_code}" in command, f"{block.where}: {command}"


def test_every_operation_has_a_curl_example() -> None:
    calls = [call for block in _runnable(DOCS / "api.md") for call in curl_calls(block.code)]
    missing = {
        (method, template)
        for method, template in _operations()
        if not any(m == method and _template_regex(template).match(path) for m, path in calls)
    }
    assert not missing, f"operations without a runnable curl example in docs/api.md: {sorted(missing)}"
    operations = _operations()
    unknown = [(m, p) for m, p in calls if not any(m == om and _template_regex(ot).match(p) for om, ot in operations)]
    assert not unknown, f"curl examples of operations the API does not have: {unknown}"


@dataclass
class Dev:
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    """`ghostpay dev` as `make dev` runs it: its bootstrap admin in DIR/admin-credentials.json, default limits."""
    data_dir = Path(tempfile.mkdtemp(prefix="gpd-", dir="/tmp"))  # short: PostgreSQL's and Redis' sockets live here
    proc = procs.dev(data_dir, tmp_path_factory.mktemp("docs-logs"))
    try:
        proc.start(DEV_READY_TIMEOUT)
        yield Dev(proc.url, data_dir)
    finally:
        proc.stop()
        procs.kill_mentioning(str(data_dir))
        shutil.rmtree(data_dir, ignore_errors=True)


def _run_page(path: Path, dev: Dev, cwd: Path) -> str:
    """The page's runnable blocks in one bash, in order; each announces itself so a failure names its block."""
    script = ["set -euo pipefail"]
    for block in _runnable(path):
        script += [f"echo '>>> {block.where}' >&2", block.code]
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd), "BASE": dev.url, "GHOSTPAY_DIR": str(dev.data_dir)}
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    failed_at = re.findall(r">>> (\S+)", result.stderr)
    where = failed_at[-1] if failed_at else "(before the first block)"
    assert result.returncode == 0, f"{where} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _served(url: str) -> set[tuple[str, str]]:
    """(method, route template) of every operation the server has answered with a 2xx, from its own counter."""
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (sample.labels["method"], sample.labels["route"])
        for family in text_string_to_metric_families(metrics)
        if family.name == "ghostpay_http_requests"
        for sample in family.samples
        if sample.name == "ghostpay_http_requests_total" and sample.labels["status"].startswith("2") and sample.value
    }


@pytest.mark.slow
@pytest.mark.parametrize("page", [path.name for path in sorted(DOCS.glob("*.md")) if _runnable(path)])
def test_runnable_blocks_run(page: str, dev: Dev, tmp_path: Path) -> None:
    """Each page's runnable blocks succeed. After docs/api.md's, the server has answered every operation of the
    OpenAPI document with a 2xx at least once (the guide's examples really exercise each endpoint)."""
    print(_run_page(DOCS / page, dev, tmp_path))
    if page == "api.md":
        # /metrics is counted, if at all, only after this scrape; the guide fetched it with -f before.
        missing = _operations() - _served(dev.url) - {("GET", "/metrics")}
        assert not missing, f"operations the guide's examples got no 2xx from: {sorted(missing)}"
