"""Login attempts limited per attempted `client_id`, whatever address they come from.

Called by `auth.service` around the secret check of `POST /auth/token`. The per-address (anonymous) budget at the
edge cannot protect one client from guesses spread over many addresses, nor keep one client's attacker from
using up a budget that other clients share. So each client id has its own GCRA bucket in Redis
(`ghostpay:rl:login:<client_id>`, policy `GHOSTPAY_LOGIN_FAILURE_LIMIT`). Every attempt spends one unit before
its secret is checked — atomically, so concurrent guesses get no more than the budget — and a correct one makes
the bucket whole again: only failures add up. While the bucket is empty every attempt for that id, a correct one
too, is refused with 429 (and costs no argon2 work); other clients are not affected. Unknown ids are counted
like known ones, so a 429 does not tell whether an id exists.
"""

from __future__ import annotations

from ghostpay.core.errors import RateLimited
from ghostpay.core.runtime import Runtime


def _bucket(client_id: str) -> str:
    return f"login:{client_id}"


async def spend_attempt(runtime: Runtime, client_id: str) -> None:
    """Spend one of `client_id`'s attempts, or raise 429 (with Retry-After) when its failures used them up."""
    policy = runtime.settings.login_failure_limit
    decision = await runtime.limiter.check(_bucket(client_id), policy)
    if not decision.allowed:
        raise RateLimited(
            f"Too many failed logins for this client (at most {policy.burst}, then one every "
            f"{1 / policy.requests_per_second:g} s); retry in {decision.retry_after_seconds} s.",
            response_headers={"Retry-After": str(decision.retry_after_seconds)},
        )


async def forget_failures(runtime: Runtime, client_id: str) -> None:
    """After a correct secret: the client's earlier failures no longer count."""
    await runtime.limiter.forget(_bucket(client_id))
