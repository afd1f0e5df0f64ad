"""Benchmark of the key paths: what signing a token costs on each backend, what verifying costs (in full and from
the verified-token cache), and how many backend reads a flood of tokens with unknown `kid`s causes.

    make bench-keys            # or: python -m bench.keys_bench [--tokens N]

Runs a dev-mode OpenBao (tools/openbao/build.sh) and a local key store in a temporary directory; prints a table
and writes bench/last-keys-bench.json. Figures are ratios and latencies measured in one run on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from tests.support import transit
from tests.support.vault import DevVault, server_binary

from bench.stats import percentile
from ghostpay.core.keys import KeyBackend, ring
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.keys.local import LocalKeyStore
from ghostpay.core.keys.vault import VaultKeys
from ghostpay.core.settings import Settings
from ghostpay.core.tokens import Principal, TokenVerifier, claims_for, issue_token

PRINCIPAL = Principal("cli_bench", "merchant", merchant_id="cli_bench")
FLOOD_SECONDS = 11.0  # a little over two of KeyCache's 5-second minimum intervals between unknown-kid refreshes
OUT = Path(__file__).resolve().parent / "last-keys-bench.json"


class CountingBackend:
    """Counts reads of the published keys, to see what an unknown-kid flood costs the backend."""

    def __init__(self, inner: KeyBackend) -> None:
        self.inner = inner
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def public_keys(self) -> list[ring.PublicKey]:
        self.reads += 1
        return self.inner.public_keys()


async def _timed(count: int, operation: Callable[[], Awaitable[object]]) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter()
        await operation()
        latencies.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"ops_per_s": count / elapsed, "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}


async def measure(backend: KeyBackend, tokens: int) -> dict[str, Any]:
    counting = CountingBackend(backend)
    keys = KeyCache(counting, refresh_interval=30, min_refresh_interval=5, activation_delay=0)  # type: ignore[arg-type]
    assert await keys.refresh()
    verifier = TokenVerifier(keys, "ghostpay", "ghostpay")

    def new_token() -> Awaitable[str]:
        return issue_token(keys, claims_for(PRINCIPAL, "ghostpay", "ghostpay", 600))

    sign = await _timed(tokens, new_token)
    issued = [await new_token() for _ in range(tokens)]
    pending = iter(issued)
    verify_full = await _timed(tokens, lambda: verifier.verify(next(pending)))  # each token once: no cache hit
    verify_cached = await _timed(tokens, lambda: verifier.verify(issued[0]))

    reads_before, bogus = counting.reads, 0
    key = keys.signing_key()
    flood_until = time.monotonic() + FLOOD_SECONDS
    while time.monotonic() < flood_until:  # forged tokens with random kids, as fast as they verify
        forged = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": secrets.token_hex(8)})
        try:
            await verifier.verify(forged)
        except Exception:
            bogus += 1
    return {
        "sign": sign,
        "verify_full": verify_full,
        "verify_cached": verify_cached,
        "unknown_kid_flood": {
            "tokens": bogus,
            "seconds": FLOOD_SECONDS,
            "backend_reads": counting.reads - reads_before,
        },
        "kid": key.kid,
    }


def _row(label: str, figures: dict[str, float]) -> str:
    return f"{label:<34}{figures['ops_per_s']:>10.0f}{figures['p50_ms']:>10.3f}{figures['p99_ms']:>10.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=300, help="operations per measurement (default 300)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gp-keys-bench-", dir="/tmp"))
    vault = DevVault(binary=server_binary(), workdir=workdir / "vault")
    vault.start()
    try:
        transit.prepare(vault.client())
        backends: dict[str, KeyBackend] = {
            "local": LocalKeyStore(workdir / "keys", secrets.token_urlsafe(16)).open(),
            "vault": VaultKeys(Settings(vault_addr=vault.addr, vault_token=vault.root_token)),
        }
        results = {name: asyncio.run(measure(backend, args.tokens)) for name, backend in backends.items()}
    finally:
        vault.stop()
    print(f"{'':<34}{'ops/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, figures in results.items():
        print(_row(f"{name}: sign a token", figures["sign"]))
        print(_row(f"{name}: verify (first time)", figures["verify_full"]))
        print(_row(f"{name}: verify (cached)", figures["verify_cached"]))
        flood = figures["unknown_kid_flood"]
        print(
            f"{name}: {flood['tokens']} tokens with unknown kids in {FLOOD_SECONDS:.0f} s -> "
            f"{flood['backend_reads']} backend read(s)"
        )
    ratio = results["vault"]["sign"]["p50_ms"] / results["local"]["sign"]["p50_ms"]
    print(f"signing on Vault / local (p50): {ratio:.2f}")
    OUT.write_text(json.dumps(results, indent=2))
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
