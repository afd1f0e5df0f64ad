"""A TCP proxy on 127.0.0.1 in front of the test PostgreSQL's unix socket, that a test can take away.

`cut()` drops every open connection (a reset, as when the server process dies) and stops listening, so new
connections are refused, as while PostgreSQL restarts; `restore()` listens again. `hold_closes()` keeps each
client's side open after PostgreSQL has closed its end, until `let_close()`: what a client sees in the moment
between a backend's last message (PostgreSQL's FATAL "terminating connection") and the end of the connection,
made as long as the test needs instead of one turn of the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib


class CuttableProxy:
    """127.0.0.1:<port> → PostgreSQL's unix socket."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._closes_allowed = asyncio.Event()
        self._closes_allowed.set()
        self.held = 0  # connections PostgreSQL has ended whose client side is held open

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._open):
            writer.transport.abort()

    def hold_closes(self) -> None:
        self._closes_allowed.clear()

    def let_close(self) -> None:
        self._closes_allowed.set()
        self.held = 0

    async def wait_held(self, count: int, turns: int = 1000) -> None:
        """Until `count` connections are held (PostgreSQL's last bytes on each passed on), at most `turns` looks."""
        for _ in range(turns):
            if self.held >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{self.held} connections held, not {count}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path)
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer, to_client=True))
        finally:
            self._open.difference_update((writer, up_writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to_client: bool = False) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        if to_client and not self._closes_allowed.is_set():
            self.held += 1
            await self._closes_allowed.wait()
        writer.transport.abort()
