"""The shell blocks of the Markdown docs, and how each is marked.

A fenced ```sh (or ```bash) block preceded (on the line before its fence) by `<!-- runnable -->` is run by
tests/docs/test_runnable.py against a `ghostpay dev` the test starts; by `<!-- cluster -->`, it needs a Kubernetes
cluster and is only parsed (`bash -n`), like every other shell block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
MARKERS = {"<!-- runnable -->": "runnable", "<!-- cluster -->": "cluster"}
_FENCE = re.compile(r"^```(\w*)[^\n]*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    marker: str  # "runnable", "cluster" or ""
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def shell_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        if fence.group(1) in ("sh", "bash", "shell"):
            before = lines[index - 1].strip() if index else ""
            code = "\n".join(lines[index + 1 : end]) + "\n"
            blocks.append(Block(path, index + 1, MARKERS.get(before, ""), code))
        index = end + 1
    return blocks


def all_shell_blocks() -> list[Block]:
    return [block for path in sorted(DOCS.glob("*.md")) for block in shell_blocks(path)]


def curl_calls(code: str) -> list[tuple[str, str]]:
    """(method, path) of every curl in `code` whose URL is "$BASE/…"; the method as curl picks it (-X, else POST
    when a body is sent, else GET)."""
    calls = []
    for command in re.split(r"(?=\bcurl\s)", code.replace("\\\n", " "))[1:]:
        command = command.split("\n", 1)[0]
        url = re.search(r'"\$BASE(/[^"?]*)', command)
        if url is None:
            continue
        method = re.search(r"-X\s+([A-Z]+)", command)
        sends_body = re.search(r"\s(-d|--data\S*|-F)\s", command) is not None
        calls.append((method.group(1) if method else "POST" if sends_body else "GET", url.group(1)))
    return calls
