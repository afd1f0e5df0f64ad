"""pgbench (the binary in the `pgserver` wheel) executing the service's own statement, `charges.store.CHARGE_SQL`,
with its eight parameters filled in by pgbench variables, as prepared statements (as asyncpg sends them).

Every transaction charges a distinct card of the pgbench batch: client `c` of `C`, on its `n`-th transaction,
charges card `base + (n - 1) * C + c + 1`, and `base` moves past the cards a run used, so runs never share a card.
Charge ids are `ch_p` + run number + client + n (27 characters, as long as a real id), unique across runs, and
countable per run afterwards. Latency percentiles come from pgbench's per-transaction log (`--log`).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pgserver

from bench.environment import (
    CHARGE_AMOUNT,
    CURRENCY,
    PGBENCH_BATCH,
    Environment,
    card_id,
    card_id_sql,
)
from bench.stats import Summary, summarize
from ghostpay.charges.service import request_fingerprint
from ghostpay.charges.store import CHARGE_SQL
from ghostpay.dev import die_with_parent

PGBENCH = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench"
CHARGE_ID_PREFIX = "ch_p"


def _statement() -> str:
    """CHARGE_SQL with $1..$8 replaced by what the service would bind, as pgbench expressions."""
    charge_id = (
        f"'{CHARGE_ID_PREFIX}' || lpad(:run::text, 2, '0') || lpad(:client_id::text, 3, '0') || lpad(:n::text, 18, '0')"
    )
    parameters = [
        charge_id,
        card_id_sql(PGBENCH_BATCH, ":card"),
        ":merchant",  # the merchant scope
        str(CHARGE_AMOUNT),
        f"'{CURRENCY}'",
        ":merchant",  # the owner (the calling client, which for a merchant is the merchant)
        "NULL",  # no Idempotency-Key
        ":hash",
    ]
    return re.sub(r"\$(\d+)", lambda m: parameters[int(m.group(1)) - 1], CHARGE_SQL)


SCRIPT = f"""\\set n :n + 1
\\set card (:base + (:n - 1) * :clients + :client_id) % :cards + 1
{_statement()};
"""


@dataclass
class PgbenchCursor:
    """What the next run may use: its run number, and the first card number no run has charged yet."""

    run: int = 0
    base: int = 0


def run_pgbench(
    env: Environment, cursor: PgbenchCursor, concurrency: int, seconds: int, rate: float | None = None
) -> Summary:
    """One pgbench run of `seconds` at `concurrency` clients, flat out or at `rate` transactions per second."""
    cursor.run += 1
    log_prefix = env.root / f"pgbench-{cursor.run}"
    completed = subprocess.run(
        _command(env, cursor, concurrency, seconds, rate, log_prefix),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        cwd=env.root,
        preexec_fn=die_with_parent,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"pgbench failed ({completed.returncode}):\n{completed.stderr}\n{completed.stdout}")
    latencies, finished, per_client, outcomes = _read_logs(log_prefix)
    cursor.base += max(per_client.values(), default=0) * concurrency
    tps = float(_field(completed.stdout, r"tps = ([\d.]+) \(without initial connection time\)"))
    return summarize(
        "pgbench" if rate is None else "pgbench at a fixed rate",
        concurrency,
        latencies,
        finished,
        outcomes["ok"],
        float(seconds),
        outcomes,
        throughput=tps,
        target_rate=rate,
    )


def _command(
    env: Environment, cursor: PgbenchCursor, concurrency: int, seconds: int, rate: float | None, log_prefix: Path
) -> list[str]:
    script = env.root / "charge.pgbench"
    script.write_text(SCRIPT)
    request_hash = request_fingerprint(card_id(PGBENCH_BATCH, 1), CHARGE_AMOUNT, CURRENCY)
    variables = {
        "n": 0,
        "base": cursor.base,
        "clients": concurrency,
        "cards": env.cards_per_batch,
        "run": cursor.run,
        "merchant": env.merchant_id,
        "hash": "\\x" + request_hash.hex(),
    }
    command = [str(PGBENCH), "--no-vacuum", "--protocol=prepared", f"--file={script}"]
    command += [f"--client={concurrency}", f"--jobs={min(concurrency, os.cpu_count() or 1)}", f"--time={seconds}"]
    command += ["--log", f"--log-prefix={log_prefix}"]
    command += [f"--define={name}={value}" for name, value in variables.items()]
    if rate is not None:
        command.append(f"--rate={rate:.1f}")
    return [*command, env.database_url]


def _field(output: str, pattern: str) -> str:
    match = re.search(pattern, output)
    if match is None:
        raise RuntimeError(f"pgbench output has no {pattern!r}:\n{output}")
    return match.group(1)


def _read_logs(prefix: Path) -> tuple[list[float], list[float], Counter[int], Counter[str]]:
    """(latencies and completion times in seconds, transactions per client, outcomes) from pgbench's
    per-transaction logs, whose lines are `client transaction latency_us script epoch_s epoch_us [lag_us]`
    (latency counted from the scheduled start when --rate is used)."""
    latencies: list[float] = []
    finished: list[float] = []
    per_client: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    for path in prefix.parent.glob(f"{prefix.name}.*"):
        for line in path.read_text().splitlines():
            client, _, latency, _, epoch_s, epoch_us = line.split()[:6]
            per_client[int(client)] += 1
            if latency.isdigit():
                latencies.append(int(latency) / 1e6)
                finished.append(int(epoch_s) + int(epoch_us) / 1e6)
                outcomes["ok"] += 1
            else:
                outcomes[latency] += 1  # failed / skipped
    return latencies, finished, per_client, outcomes
