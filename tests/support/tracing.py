"""Helpers of the tracing tests: a caller's W3C traceparent, and the JSON access-log lines a request writes."""

from __future__ import annotations

import json
import logging

from ghostpay.core import telemetry

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


class Lines(logging.Handler):
    """The JSON access-log lines the process would write, kept for the test (`with Lines() as lines:`)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(telemetry.JsonFormatter())
        self.lines: list[dict[str, object]] = []
        self.logger = logging.getLogger("ghostpay.access")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def __enter__(self) -> Lines:
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(logging.NOTSET)
