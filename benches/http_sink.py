"""A local HTTP/1.1 receiver for delivery benchmarks, fast enough not to be the bottleneck.

It runs in its own process (the sender keeps its CPU), keeps connections alive, reads
each request's body, answers ``204`` to every POST and counts them; ``GET /count``
returns the count. The request line and headers are parsed by hand on an asyncio
``Protocol``: no per-request objects beyond the slices it needs.

    python benches/http_sink.py     # prints the port on stdout, serves until killed
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import subprocess
import sys
from pathlib import Path
from types import TracebackType

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self, counter: list[int]) -> None:
        self.counter = counter
        self.buf = bytearray()
        self.need = -1  # bytes of the current request (head + body) once its head is parsed
        self.is_post = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buf = self.buf
        buf += data
        while True:
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                length = 0
                at = head.find(b"\r\ncontent-length:")
                if at >= 0:
                    stop = head.find(b"\r\n", at + 2)
                    try:
                        length = int(head[at + 17 : stop if stop >= 0 else None])
                    except ValueError:
                        self.transport.write(_BAD_REQUEST)
                        self.transport.close()
                        return
                self.need = end + 4 + length
                self.is_post = head.startswith(b"post ")
            if len(buf) < self.need:
                return
            del buf[: self.need]
            self.need = -1
            if self.is_post:
                self.counter[0] += 1
                self.transport.write(_NO_CONTENT)
            else:
                body = str(self.counter[0]).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
                    % (len(body), body)
                )


async def _serve() -> None:
    counter = [0]
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(counter), "127.0.0.1", 0, backlog=1024, reuse_address=True
    )
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


class Sink:
    """The receiver in a child process: ``url`` to post to, ``count()`` POSTs so far."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip():
            self._proc.kill()
            raise RuntimeError("the HTTP sink did not start (no port on its stdout)")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def count(self) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/count")
            return int(conn.getresponse().read())
        finally:
            conn.close()

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Sink:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())
