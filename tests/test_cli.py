"""`ghostpay.cli`'s server start-up (the commands themselves are run as processes by the tests beside this one)."""

from __future__ import annotations

import gc
import signal

import pytest
import uvicorn
from fastapi import FastAPI

from ghostpay import cli


def test_a_server_freezes_its_start_up_objects_before_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    frozen_when_serving: list[int] = []
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the test process keeps its own handlers
    monkeypatch.setattr(uvicorn.Server, "run", lambda self: frozen_when_serving.append(gc.get_freeze_count()))
    gc.unfreeze()
    try:
        cli.run_server(FastAPI(), "127.0.0.1", 0)
    finally:
        gc.unfreeze()  # the rest of the session collects as before
    # Everything alive at start-up (this process: its imports, the app) is out of the collector's reach.
    assert frozen_when_serving and frozen_when_serving[0] > 10_000
