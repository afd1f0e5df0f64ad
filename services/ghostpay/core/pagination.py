"""Cursor pagination as Stripe does it: `limit` items after the one named by `starting_after`, newest first,
and whether more follow. Used by the cards and charges services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ghostpay.core.errors import InvalidRequest

RowT = TypeVar("RowT")


async def page_after(
    find: Callable[[str], Awaitable[RowT | None]],
    fetch: Callable[[RowT | None, int], Awaitable[list[RowT]]],
    limit: int,
    starting_after: str | None,
    noun: str,
) -> tuple[list[RowT], bool]:
    """`find` looks the cursor up among what the caller may see; `fetch(cursor, n)` returns up to n rows after it.
    One extra row is asked for, to tell whether there are more."""
    cursor = None
    if starting_after is not None:
        cursor = await find(starting_after)
        if cursor is None:
            raise InvalidRequest(f"starting_after: no {noun} {starting_after!r}.", field="starting_after")
    rows = await fetch(cursor, limit + 1)
    return rows[:limit], len(rows) > limit
