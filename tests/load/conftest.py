"""Importing locust patches the standard library for gevent (sockets, threads, ssl) unless told not to. The rest
of the test session runs on asyncio and real threads, so here its statistics are imported unpatched; the load run
itself runs in a subprocess, patched as usual (tests/load/test_run.py takes the setting out of its environment)."""

import os

os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
