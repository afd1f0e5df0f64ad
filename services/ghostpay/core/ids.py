"""Opaque, prefixed identifiers (`card_…`, `ch_…`, `cli_…`), random so they leak no volume."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"
