"""Finding 2: a burst of bad logins must not exhaust the auth pod's memory.

`ghostpay serve auth` runs under a real 256 MiB memory limit (a cgroup v1 memory group, like the pod's), takes
200 concurrent wrong logins (wrong secrets for a real client, and unknown client ids), and must stay up: each
answered 401, 429 or 503 as a problem, the limit never hit, and a correct login right after succeeds. The peak
memory is printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import httpx

from tests.conftest import ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS
from tests.support import procs
from tests.support.cgroups import MiB, assert_limit_enforced, memory_group
from tests.support.servers import Servers

POD_LIMIT = 256 * MiB
BAD_LOGINS = 200
REQUEST_TIMEOUT = 60.0


async def _login(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post("/auth/token", json={"client_id": client_id, "client_secret": secret})


async def test_finding_2_concurrent_bad_logins_do_not_oom_the_auth_service(
    servers: Servers, database_url: str, keys_dir: Path, tmp_path: Path
) -> None:
    await asyncio.to_thread(assert_limit_enforced, POD_LIMIT)
    env = procs.service_env(database_url, servers.redis_url, keys_dir, ADMIN_ID, ADMIN_SECRET, GENEROUS_LIMITS)
    # Every wrong secret must reach argon2 here: the per-client failed-login limit (finding 7) would answer most of
    # them 429 without hashing, which is not the load this finding is about.
    env["GHOSTPAY_LOGIN_FAILURE_LIMIT"] = json.dumps({"requestsPerSecond": 1000, "burst": 1000})
    proc = procs.serve("auth", env, tmp_path)
    with memory_group(POD_LIMIT, "ghostpay-auth") as group:
        try:
            proc.spawn()
            group.add(proc.pid)  # before the interpreter has even imported the app
            await asyncio.to_thread(proc.wait_ready)
            limits = httpx.Limits(max_connections=BAD_LOGINS, max_keepalive_connections=BAD_LOGINS)
            async with httpx.AsyncClient(base_url=proc.url, timeout=REQUEST_TIMEOUT, limits=limits) as http:
                admin = (await _login(http, ADMIN_ID, ADMIN_SECRET)).json()["access_token"]
                created = await http.post(
                    "/auth/clients",
                    json={"name": "finding-2", "role": "merchant"},
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assert created.status_code == 201, created.text
                merchant = created.json()
                idle = group.peak_bytes

                bad = [
                    _login(http, merchant["client_id"], f"wrong-{i}")
                    if i % 2
                    else _login(http, f"cli_{secrets.token_hex(8)}", f"wrong-{i}")
                    for i in range(BAD_LOGINS)
                ]
                answers = await asyncio.gather(*bad, return_exceptions=True)

                assert proc.process is not None and proc.process.poll() is None, (
                    f"the auth service died (exit {proc.process and proc.process.returncode}):\n{proc.logs()[-3000:]}"
                )
                good = await _login(http, merchant["client_id"], merchant["client_secret"])
        finally:
            proc.stop()
            service_log = proc.logs()
        peak, hits, kills = group.peak_bytes, group.limit_hits, group.oom_kills

    print(
        f"\nauth under a {POD_LIMIT // MiB} MiB cgroup: peak {peak / MiB:.0f} MiB after {BAD_LOGINS} concurrent bad "
        f"logins (idle with a few logins: {idle / MiB:.0f} MiB); limit hits {hits}, OOM kills {kills}; answers "
        f"{sorted({a.status_code for a in answers if isinstance(a, httpx.Response)})}"
    )
    errors = {i: a for i, a in enumerate(answers) if not isinstance(a, httpx.Response)}
    assert not errors, (
        f"{len(errors)} requests got no answer: {dict(list(errors.items())[:5])!r} (odd: the real client, even: "
        f"an unknown id); the service's log:\n{service_log[-3000:]}"
    )
    for answer in answers:
        assert isinstance(answer, httpx.Response)
        assert answer.status_code in (401, 429, 503), answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        if answer.status_code == 503:
            assert answer.json()["code"] == "auth_busy" and int(answer.headers["retry-after"]) >= 1
    assert sum(a.status_code == 401 for a in answers if isinstance(a, httpx.Response)) > 0
    assert good.status_code == 200, good.text
    assert kills == 0 and hits == 0, f"the memory limit was hit {hits} times ({kills} OOM kills)"
