"""Card rules: who may see which card, issuing with an encrypted PAN, listing, closing.

Called by `cards.api`. The PAN and CVV leave this module only inside `IssuedCard`, which the API returns once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from ghostpay.cards import pan, sealing, store
from ghostpay.core import pagination
from ghostpay.core.errors import Conflict, NotFound
from ghostpay.core.ids import new_id
from ghostpay.core.runtime import Runtime
from ghostpay.core.telemetry import CARDS_ISSUED
from ghostpay.core.tokens import Principal

_CARD_KEYS = "cards.keys"
_PAN_ATTEMPTS = 5


@dataclass(frozen=True)
class IssuedCard:
    card: store.CardRow
    pan: str
    cvv: str


def visibility_of(principal: Principal) -> store.Visibility:
    """Admin sees every card, a merchant the cards it issued, a user the cards issued to it."""
    if principal.role == "merchant":
        return store.Visibility(merchant_id=principal.merchant_id)
    if principal.role == "user":
        return store.Visibility(user_id=principal.user_id)
    return store.Visibility()


@dataclass(frozen=True)
class CardKeys:
    """What issuing a card needs, unwrapped once per process: the newest PAN data key and the look-up key."""

    data_key: sealing.DataKey
    lookup_key: bytes


async def _unwrapped_key(runtime: Runtime, purpose: store.KeyPurpose) -> sealing.DataKey:
    """The newest key of `purpose`, made (and wrapped by the key backend) if there is none yet."""
    latest = await store.latest_data_key(runtime.pool, purpose)
    if latest is None:
        key_id, material = new_id("dk"), sealing.new_data_key_material()
        wrapped = await runtime.keys.call(runtime.keys.backend.wrap, material)
        if await store.insert_data_key(runtime.pool, key_id, wrapped, purpose):
            return sealing.DataKey(key_id, material)
        latest = await store.latest_data_key(runtime.pool, purpose)
        if latest is None:  # the insert lost to another process's key, so it must be there now
            raise RuntimeError(f"No {purpose} data key after a conflicting insert.")
    return sealing.DataKey(latest[0], await runtime.keys.call(runtime.keys.backend.unwrap, latest[1]))


async def open_keys(runtime: Runtime) -> None:
    """Load the card keys for this process's life, and rewrap them after every key rotation."""
    data_key = await _unwrapped_key(runtime, "pan")
    lookup = await _unwrapped_key(runtime, "lookup")
    runtime.extras[_CARD_KEYS] = CardKeys(data_key, lookup.key)
    await rewrap_keys(runtime)
    runtime.keys.on_refresh(lambda: rewrap_keys(runtime))


async def rewrap_keys(runtime: Runtime) -> None:
    """Wrap every stored data key by the newest usable key-encryption version (Vault: without seeing it in
    clear), so nothing depends on the old versions any more."""
    for key_id, wrapped in await store.wrapped_keys(runtime.pool):
        rewrapped = await runtime.keys.call(runtime.keys.backend.rewrap, wrapped)
        if rewrapped != wrapped:
            await store.replace_wrapped_key(runtime.pool, key_id, wrapped, rewrapped)


async def issue_card(
    runtime: Runtime, principal: Principal, user_id: str, amount: int, currency: str, ttl_seconds: int | None
) -> IssuedCard:
    keys: CardKeys = runtime.extras[_CARD_KEYS]
    merchant_id = principal.merchant_id or principal.client_id
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds or runtime.settings.card_default_ttl_seconds)
    for _ in range(_PAN_ATTEMPTS):
        card_id, number, cvv = new_id("card"), pan.generate_pan(runtime.settings.card_bin), pan.generate_cvv()
        new_card = store.NewCard(
            card_id=card_id,
            merchant_id=merchant_id,
            user_id=user_id,
            amount=amount,
            currency=currency,
            expires_at=expires_at,
            exp_month=expires_at.month,
            exp_year=expires_at.year,
            last4=number[-4:],
            pan_ciphertext=sealing.seal_pan(keys.data_key, card_id, number),
            data_key_id=keys.data_key.key_id,
            pan_hash=sealing.pan_lookup_hash(keys.lookup_key, number),
        )
        try:
            row = await store.insert_card(runtime.pool, new_card)
        except asyncpg.UniqueViolationError:
            continue  # the random digits matched a live PAN: draw again
        CARDS_ISSUED.inc()
        return IssuedCard(row, number, cvv)
    raise Conflict("Could not draw an unused card number; try again.")


async def get_card(runtime: Runtime, principal: Principal, card_id: str) -> store.CardRow:
    card = await store.get_card(runtime.pool, card_id, visibility_of(principal))
    if card is None:
        raise NotFound(f"No card {card_id!r}.")
    return card


async def list_cards(
    runtime: Runtime,
    principal: Principal,
    user_id: str | None,
    status: str | None,
    limit: int,
    starting_after: str | None,
) -> tuple[list[store.CardRow], bool]:
    visibility = visibility_of(principal)
    return await pagination.page_after(
        lambda card_id: store.get_card(runtime.pool, card_id, visibility),
        lambda cursor, n: store.list_cards(runtime.pool, visibility, user_id, status, n, cursor),
        limit,
        starting_after,
        "card",
    )


async def close_card(runtime: Runtime, principal: Principal, card_id: str) -> store.CardRow:
    visibility = visibility_of(principal)
    closed = await store.close_card(runtime.pool, card_id, visibility)
    if closed is not None:
        return closed
    card = await get_card(runtime, principal, card_id)
    if card.status == "used":
        raise Conflict("The card has already been used and cannot be closed.")
    return card  # already closed: closing again changes nothing
