"""serve_in_thread: the mock server on a trio loop in a background thread, for sync tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager

import trio

from ._groups import lone_exception
from ._records import ConnectionRecord, RecordedRequest
from ._replies import Reply
from ._server import Handler, MockServer

__all__ = ["ThreadedMockServer", "serve_in_thread"]


class ThreadedMockServer:
    """A :class:`MockServer` running in another thread, seen from synchronous code.

    :meth:`enqueue`, :attr:`handler` and the records work as on the server
    itself; the waits block the calling thread. The handler runs in the
    server's thread. :attr:`server` is the server itself, for
    ``trio.from_thread.run(..., trio_token=threaded.trio_token)``.
    """

    def __init__(self, server: MockServer, trio_token: trio.lowlevel.TrioToken) -> None:
        """Wrap ``server``, running in the trio loop ``trio_token``; see :func:`serve_in_thread`."""
        self.server = server
        self.trio_token = trio_token

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.server.base_url

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every complete request, in arrival order (the server's live list)."""
        return self.server.requests

    @property
    def connections(self) -> list[ConnectionRecord]:
        """Every accepted connection (the server's live records)."""
        return self.server.connections

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        return self.server.open_connections

    @property
    def queued(self) -> int:
        """How many enqueued replies no request has used yet."""
        return self.server.queued

    @property
    def handler(self) -> Handler | None:
        """The server's handler for when the queue is empty (called in the server's thread)."""
        return self.server.handler

    @handler.setter
    def handler(self, handler: Handler | None) -> None:
        self.server.handler = handler

    def enqueue(self, *replies: Reply) -> None:
        """Add replies for the next ``POST /v1/messages`` requests, in order."""
        self.server.enqueue(*replies)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no connection is open; ``trio.TooSlowError`` after ``timeout`` seconds."""

        async def wait() -> None:
            with trio.fail_after(timeout):
                await self.server.wait_idle()

        trio.from_thread.run(wait, trio_token=self.trio_token)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> None:
        """Block until ``count`` requests are recorded; ``trio.TooSlowError`` after ``timeout``."""

        async def wait() -> None:
            with trio.fail_after(timeout):
                await self.server.wait_for_requests(count)

        trio.from_thread.run(wait, trio_token=self.trio_token)


@contextmanager
def serve_in_thread(
    *, host: str = "127.0.0.1", port: int = 0, timeout: float = 10.0
) -> Iterator[ThreadedMockServer]:
    """``with serve_in_thread() as server:`` a mock server for sync clients (``httpx.Client``).

    A background thread runs a trio loop with the server; leaving the block
    stops the server and the loop and joins the thread. ``timeout`` bounds
    both the start and the shutdown. If the server failed (an exception from
    the handler), that exception is raised when the block ends normally.
    """
    started: Future[tuple[MockServer, trio.lowlevel.TrioToken, trio.Event]] = Future()
    failures: list[BaseException] = []

    async def host_server() -> None:
        stop = trio.Event()
        with lone_exception():
            async with trio.open_nursery() as nursery:
                server = await MockServer.start(nursery, host=host, port=port)
                started.set_result((server, trio.lowlevel.current_trio_token(), stop))
                await stop.wait()
                nursery.cancel_scope.cancel()

    def run() -> None:
        try:
            trio.run(host_server)
        except BaseException as exc:
            if started.done():
                failures.append(exc)
            else:
                started.set_exception(exc)

    thread = threading.Thread(target=run, name="triostream-mock-server", daemon=True)
    thread.start()
    server, token, stop = started.result(timeout=timeout)
    try:
        yield ThreadedMockServer(server, token)
    finally:
        try:
            trio.from_thread.run_sync(stop.set, trio_token=token)
        except trio.RunFinishedError:
            pass
        thread.join(timeout)
    if thread.is_alive():
        raise RuntimeError(f"the mock server thread did not stop within {timeout} seconds")
    if failures:
        raise failures[0]
