"""Runs ArgoCD resource-customization Lua the way argo-cd does: the object as the global `obj`, the script's
return value back as Python. Lua 5.1 (argo-cd's gopher-lua speaks 5.1) when the lupa wheel bundles it, and
without the libraries argo-cd's sandbox leaves out (io, os, require, load...), so a script relying on them fails
here as it would there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51

ROOT = Path(__file__).resolve().parents[2]
CUSTOMIZATION = ROOT / "argocd/resource_customizations/ghostpay.io/GhostPayInstance"
UNAVAILABLE = ("io", "os", "require", "package", "debug", "dofile", "loadfile", "load", "loadstring")


# argo-cd runs these scripts in gopher-lua, a Lua 5.1: the lupa wheel bundles a real Lua 5.1.
RUNTIME = lupa.lua51


def to_lua(lua: Any, value: Any) -> Any:
    """A YAML value as Lua: mappings and sequences as tables (sequences 1-based), scalars as they are."""
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            table[key] = to_lua(lua, item)
        return table
    if isinstance(value, list):
        return lua.table(*(to_lua(lua, item) for item in value))
    return value


def from_lua(value: Any) -> Any:
    """A Lua value as Python: a table keyed 1..n is a list, any other table a dict (an empty one too)."""
    if RUNTIME.lua_type(value) != "table":
        return value
    items = {key: from_lua(item) for key, item in value.items()}
    if items and sorted(items) == list(range(1, len(items) + 1)):
        return [items[index] for index in range(1, len(items) + 1)]
    return items


def run(script: Path, obj: dict[str, Any]) -> Any:
    """The script's return value, run on a fresh runtime with `obj` as its global."""
    lua = RUNTIME.LuaRuntime(unpack_returned_tuples=False)
    for name in UNAVAILABLE:
        lua.globals()[name] = None
    lua.globals()["obj"] = to_lua(lua, obj)
    return from_lua(lua.execute(script.read_text()))
