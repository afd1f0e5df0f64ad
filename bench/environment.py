"""The benchmark's world, built from nothing and torn down on exit (also on Ctrl-C and on errors).

- embedded PostgreSQL and Redis (`ghostpay.dev`) in a fresh directory under /tmp, the database migrated;
- a merchant client in `clients` and a real RS256 access token for it, signed with the key store that the
  service reads (so the service verifies a genuine JWT on every request);
- three batches of pre-issued active cards inserted in bulk (`s…` for the service, `f…` for the floor, `p…`
  for pgbench), so the benchmark measures charges and not issuance;
- `ghostpay serve charges` as a subprocess on 127.0.0.1, with auth and rate limiting on (a merchant budget far
  above what the benchmark can reach, so the limiter is asked once per request but never refuses), and
  otherwise the product's defaults (one process, a database pool of 20, unless `db_pool` says otherwise);
- the floor (`bench.floor_app`) as a second subprocess on 127.0.0.1, on the same server, PostgreSQL and Redis;
- the bare route (`bench.floor_app --bare`: the floor's route with no I/O) as a third, on the same server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import redis
from argon2 import PasswordHasher
from tests.support.procs import free_port

from ghostpay.auth import service as auth_service
from ghostpay.auth import store as auth_store
from ghostpay.core import db
from ghostpay.core.ids import new_id
from ghostpay.core.keys.cache import KeyCache
from ghostpay.core.keys.local import LocalKeyStore
from ghostpay.core.tokens import claims_for, issue_token
from ghostpay.dev import EmbeddedPostgres, EmbeddedRedis, die_with_parent

ISSUER = AUDIENCE = "ghostpay"
_KEYS_PASSPHRASE = secrets.token_urlsafe(16)  # the benchmark's throwaway key store
CURRENCY = "USD"
CARD_AMOUNT = 100_000  # every card allows more than one charge asks for: the approve path
CHARGE_AMOUNT = 1_999
SERVICE_BATCH, FLOOR_BATCH, PGBENCH_BATCH = "s", "f", "p"
BARE_BATCH = "b"  # card ids the bare route is sent: never in the database, and never looked up
_CARD_DIGITS = 23  # "card_" + batch letter + 23 digits: as long as a real id ("card_" + 24 hex digits)
_DATA_KEY_ID = "key_bench"
_TOKEN_TTL = 3600


def card_id(batch: str, number: int) -> str:
    return f"card_{batch}{number:0{_CARD_DIGITS}d}"


def card_id_sql(batch: str, number_sql: str) -> str:
    """The SQL expression for `card_id(batch, number)`, for bulk inserts and the pgbench script."""
    return f"'card_{batch}' || lpad(({number_sql})::text, {_CARD_DIGITS}, '0')"


@dataclass(frozen=True)
class Environment:
    root: Path
    database_url: str
    redis_url: str
    merchant_id: str
    token: str
    cards_per_batch: int
    base_url: str
    service: subprocess.Popen[bytes]
    floor_url: str
    floor: subprocess.Popen[bytes]
    bare_url: str
    bare: subprocess.Popen[bytes]
    postgres_pid: int
    redis_pid: int

    def check_service(self) -> None:
        """Raise, with the end of its log, if the charges service, the floor or the bare route has exited."""
        for name, process in (("service", self.service), ("floor", self.floor), ("bare", self.bare)):
            if process.poll() is not None:
                log = (self.root / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"the {name} exited ({process.returncode}):\n{log}")


@contextlib.contextmanager
def environment(
    cards_per_batch: int, db_pool: int | None = None, data_dir: Path = Path("/tmp")
) -> Iterator[Environment]:
    """`db_pool`: the service's and the floor's PostgreSQL pool size (`GHOSTPAY_DB_POOL_MAX`), else the default.
    `data_dir`: where the servers' data and sockets go, in a directory of their own removed afterwards."""
    with contextlib.ExitStack() as stack:
        # A short path: Unix socket paths are limited to 107 bytes.
        root = Path(tempfile.mkdtemp(prefix="gpbench-", dir=data_dir))
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        postgres = EmbeddedPostgres(root / "pg")
        stack.callback(postgres.stop)
        database_url = postgres.start()
        redis_server = EmbeddedRedis(root / "redis")
        stack.callback(redis_server.stop)
        redis_url = redis_server.start()
        keys_dir = root / "keys"
        merchant_id, token = asyncio.run(_seed(database_url, keys_dir, cards_per_batch))
        port, floor_port, bare_port = free_port(), free_port(), free_port()
        service_env = {
            "GHOSTPAY_DATABASE_URL": database_url,
            "GHOSTPAY_REDIS_URL": redis_url,
            "GHOSTPAY_KEYS_DIR": str(keys_dir),
            "GHOSTPAY_KEYS_PASSPHRASE": _KEYS_PASSPHRASE,
            "GHOSTPAY_ISSUER": ISSUER,
            "GHOSTPAY_AUDIENCE": AUDIENCE,
            "GHOSTPAY_LOG_LEVEL": "WARNING",
            **({"GHOSTPAY_DB_POOL_MAX": str(db_pool)} if db_pool else {}),
            "GHOSTPAY_RATE_LIMITS": json.dumps({"merchant": {"requestsPerSecond": 1_000_000, "burst": 1_000_000}}),
        }
        ghostpay = [str(Path(sys.executable).parent / "ghostpay"), "serve", "charges", "--host", "127.0.0.1"]
        ghostpay += ["--metrics-port", str(free_port())]  # not 9090: anything else on the machine may hold it
        ghostpay += ["--port", str(port)]
        service = stack.enter_context(_server(ghostpay, service_env, port, root / "service.log"))
        floor_command = [sys.executable, "-m", "bench.floor_app", "--port", str(floor_port), "--merchant", merchant_id]
        floor = stack.enter_context(_server(floor_command, service_env, floor_port, root / "floor.log"))
        bare_command = [*floor_command[:3], "--port", str(bare_port), *floor_command[5:], "--bare"]
        bare = stack.enter_context(_server(bare_command, service_env, bare_port, root / "bare.log"))
        yield Environment(
            root=root,
            database_url=database_url,
            redis_url=redis_url,
            merchant_id=merchant_id,
            token=token,
            cards_per_batch=cards_per_batch,
            base_url=f"http://127.0.0.1:{port}",
            service=service,
            floor_url=f"http://127.0.0.1:{floor_port}",
            floor=floor,
            bare_url=f"http://127.0.0.1:{bare_port}",
            bare=bare,
            postgres_pid=int((root / "pg" / "postmaster.pid").read_text().split()[0]),
            redis_pid=_redis_pid(redis_server.socket_path),
        )


def _redis_pid(socket_path: Path) -> int:
    client = redis.Redis(unix_socket_path=str(socket_path))
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


async def _seed(database_url: str, keys_dir: Path, cards_per_batch: int) -> tuple[str, str]:
    """Migrate, create the merchant, issue its token and the cards; returns (merchant id, access token)."""
    await db.migrate(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        client = await auth_store.insert_client(
            pool, new_id("cli"), "bench merchant", "merchant", None, PasswordHasher().hash(secrets.token_urlsafe(32))
        )
        principal = auth_service.principal_of(client)
        keys = KeyCache(LocalKeyStore(keys_dir, _KEYS_PASSPHRASE).open(), 30, 5, activation_delay=0)
        assert await keys.refresh()
        token = await issue_token(keys, claims_for(principal, ISSUER, AUDIENCE, _TOKEN_TTL))
        await pool.execute(
            "INSERT INTO data_keys (key_id, wrapped_key) VALUES ($1, $2)", _DATA_KEY_ID, secrets.token_bytes(60)
        )
        for batch in (SERVICE_BATCH, FLOOR_BATCH, PGBENCH_BATCH):
            await _insert_cards(pool, batch, cards_per_batch, client.client_id)
        await pool.execute("VACUUM ANALYZE cards")
        return client.client_id, token
    finally:
        await pool.close()


async def _insert_cards(pool: asyncpg.Pool, batch: str, count: int, merchant_id: str) -> None:
    """`count` active cards numbered 1..count, with dummy ciphertext and a unique PAN hash."""
    await pool.execute(
        f"""INSERT INTO cards (card_id, merchant_id, user_id, amount, currency, expires_at, exp_month, exp_year,
                               last4, pan_ciphertext, data_key_id, pan_hash)
            SELECT {card_id_sql(batch, "g")}, $1, 'usr_bench', $2, $3, now() + interval '1 day', 12, 2099,
                   lpad((g % 10000)::text, 4, '0'), decode(md5(g::text), 'hex') || decode(md5($4 || g), 'hex'),
                   $5, sha256(($4 || g)::bytea)
            FROM generate_series(1, $6::int) AS g""",
        merchant_id,
        CARD_AMOUNT,
        CURRENCY,
        batch,
        _DATA_KEY_ID,
        count,
    )


@contextlib.contextmanager
def _server(
    command: list[str], server_env: dict[str, str], port: int, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server subprocess, ready (GET /readyz answered 200) when entered, stopped on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHOSTPAY_")} | server_env
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, preexec_fn=die_with_parent)
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}/readyz", log_path)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited ({process.returncode}):\n{log_path.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{process.args} not ready after {timeout:.0f} s:\n{log_path.read_text()}")
