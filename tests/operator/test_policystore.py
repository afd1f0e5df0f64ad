"""The operator's one Redis write (the rate-limit policy, issue 16) against a real Redis: first write, rewrite,
out of reach, and with the least-privilege ACL user docs/operator.md gives (only `SET` on `ghostpay:ratelimits:*`)."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import redis.asyncio as aioredis

from ghostpay_operator import policystore, ratelimits
from tests.support.servers import Servers

# The ACL line of docs/operator.md, for a user named here with a password made here.
ACL_RULES = ["resetkeys", "~ghostpay:ratelimits:*", "resetchannels", "-@all", "+set"]


def _write(url: str, key: str, value: str = '{"generation": 1, "limits": {}}') -> ratelimits.Write:
    return ratelimits.Write(url, key, value, 1)


async def test_the_policy_is_written_and_a_rewrite_tells_what_was_there(servers: Servers) -> None:
    key = f"ghostpay:ratelimits:test:{secrets.token_hex(4)}"
    first = await policystore.write(_write(servers.redis_url, key))
    assert first == ratelimits.Written(ok=True, previous=None)
    second = await policystore.write(_write(servers.redis_url, key, '{"generation": 2, "limits": {}}'))
    assert second == ratelimits.Written(ok=True, previous='{"generation": 1, "limits": {}}')
    client = aioredis.from_url(servers.redis_url, decode_responses=True)
    try:
        assert await client.get(key) == '{"generation": 2, "limits": {}}'
        await client.delete(key)
    finally:
        await client.aclose()


async def test_an_unreachable_redis_is_an_answer_not_an_error() -> None:
    written = await policystore.write(_write("unix:///tmp/gp-no-such-redis.sock", "ghostpay:ratelimits:a:b"))
    assert (written.ok, written.reason) == (False, "RedisUnreachable") and "ConnectionError" in written.error


async def test_the_least_privilege_acl_user_can_write_the_policy_and_nothing_else(servers: Servers) -> None:
    user, password = f"op-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    admin = aioredis.from_url(servers.redis_url, decode_responses=True)
    try:
        await admin.execute_command("ACL", "SETUSER", user, "on", f">{password}", *ACL_RULES)
        socket = servers.redis_url.removeprefix("unix://")
        url = f"unix://{quote(user)}:{quote(password)}@{socket}"
        key = f"ghostpay:ratelimits:test:{secrets.token_hex(4)}"
        assert (await policystore.write(_write(url, key))).ok
        assert await admin.get(key) == '{"generation": 1, "limits": {}}'
        outside = await policystore.write(_write(url, "ghostpay:rl:client:someone"))
        assert (outside.ok, outside.reason) == (False, "RedisRefused")
        wrong = await policystore.write(_write(url.replace(quote(password), "wrong"), key))
        assert (wrong.ok, wrong.reason) == (False, "RedisRefused") and "wrong" not in wrong.error, wrong
        await admin.delete(key)
    finally:
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()
