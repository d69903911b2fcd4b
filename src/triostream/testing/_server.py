"""MockServer: a real Messages API server on loopback, scripted and inspected by tests."""

from __future__ import annotations

import errno
import inspect
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import NoReturn

import msgspec
import trio

from ._groups import lone_exception
from ._http import (
    CHUNKED_END,
    CONTINUE,
    HEAD_END,
    MAX_BODY,
    MAX_HEAD,
    BadRequest,
    RequestHead,
    body_length,
    chunk_header,
    parse_chunk_size,
    parse_request_head,
)
from ._records import ClosedBy, ConnectionRecord, RecordedRequest
from ._replies import Reply
from ._sse import PING_EVENT

__all__ = ["Handler", "MockServer", "open_mock_server"]

#: Chooses the reply for a request when the queue is empty; may be async.
Handler = Callable[[RecordedRequest], Reply | Awaitable[Reply]]

_MESSAGES_PATH = "/v1/messages"
_RECEIVE_SIZE = 65536
_MAX_BUFFER = MAX_HEAD + MAX_BODY + _RECEIVE_SIZE
_MAX_TRAILER_LINES = 100
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY = 0.1
# After a 400 the server stops writing and reads what the client still sends for
# this long, so closing does not reset the connection before the client reads the 400.
_LINGER = 1.0
_PING_FRAME = chunk_header(len(PING_EVENT)) + PING_EVENT + b"\r\n"
_NO_SCRIPT = Reply.error(
    500,
    type="api_error",
    message="triostream.testing: no scripted reply (the queue is empty and there is no handler)",
)


class _ClientGone(Exception):
    """The client closed or reset the connection."""


class _Hangup(Exception):
    """The server closes the connection (disconnect_after, or a client that floods it)."""


class MockServer:
    """A Messages API server on loopback that serves scripted replies and records everything.

    Start one in a nursery with :meth:`start` (or let :func:`open_mock_server`
    own the nursery). ``POST /v1/messages`` requests get the replies given to
    :meth:`enqueue`, first in first out; when the queue is empty,
    :attr:`handler` chooses; with neither, the answer is a 500 whose JSON
    error says there was no scripted reply. Any other method or path gets a
    404 ``not_found_error`` and uses no scripted reply.

    Every request is recorded in :attr:`requests` before its reply is chosen,
    and every connection in :attr:`connections`, with who closed it and when.
    Connections are HTTP/1.1 with keep-alive; each is served in its own task.
    Nothing a client does (a malformed request, a reset, vanishing during a
    stall) raises into the nursery: the connection is closed and recorded.
    An exception from :attr:`handler` is a bug in the test and does
    propagate: the server stops, and the exception leaves the nursery before
    any client sees its connection close.

    All of it runs in the trio thread that started the server, except
    :meth:`enqueue`, which any thread may call.
    """

    def __init__(self) -> None:
        """An unstarted server; use :meth:`start` or :func:`open_mock_server` instead."""
        self.requests: list[RecordedRequest] = []
        """Every complete request, in arrival order."""
        self.connections: list[ConnectionRecord] = []
        """Every accepted connection, in order; the records update live."""
        self.handler: Handler | None = None
        """``handler(request) -> Reply`` (or an awaitable of one) for when the queue is empty."""
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._address: tuple[str, int] | None = None
        self._live: dict[trio.SocketStream, ConnectionRecord] = {}
        self._changed = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    @classmethod
    async def start(
        cls, nursery: trio.Nursery, *, host: str = "127.0.0.1", port: int = 0
    ) -> MockServer:
        """Listen on ``host:port`` (port 0: any free port) and serve in ``nursery``.

        Returns once the server accepts connections. It stops when the
        nursery is cancelled or :meth:`aclose` is called.
        """
        server = cls()
        await nursery.start(server._run, host, port)
        return server

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._bound()[0]

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._bound()[1]

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: give it to the client as its base URL."""
        host, port = self._bound()
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def open_connections(self) -> int:
        """How many connections are open now."""
        return len(self._live)

    @property
    def queued(self) -> int:
        """How many enqueued replies no request has used yet."""
        return len(self._queue)

    def enqueue(self, *replies: Reply) -> None:
        """Add replies for the next ``POST /v1/messages`` requests, in order; thread-safe."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"enqueue() takes Reply objects, not {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)

    async def wait_idle(self) -> None:
        """Return once no connection is open (at once if none is).

        Wakes on each connection event; wrap it in ``trio.fail_after``.
        """
        while self._live:
            await self._changed.wait()

    async def wait_for_requests(self, count: int) -> None:
        """Return once at least ``count`` requests have been recorded."""
        while len(self.requests) < count:
            await self._changed.wait()

    async def aclose(self) -> None:
        """Stop: close the listener and every connection (``closed_by="server"``), then return.

        Safe to call more than once, and after the nursery was cancelled.
        """
        if self._scope is None:
            return
        self._scope.cancel()
        await self._stopped.wait()

    def _bound(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the MockServer is not started: use MockServer.start(nursery)")
        return self._address

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _run(
        self, host: str, port: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # Sockets are closed synchronously here, not in the tasks, when the server stops
        # or a handler fails: the exception reaches the caller's nursery (which cancels
        # the clients) before any client can see its connection close.
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
            try:
                if len(listeners) != 1:
                    raise ValueError(f"host must be one IP address, not {host!r}")
                self._address = (host, listeners[0].socket.getsockname()[1])
                with lone_exception():
                    async with trio.open_nursery() as nursery:
                        self._scope = nursery.cancel_scope
                        nursery.start_soon(self._accept, listeners[0], nursery)
                        task_status.started()
            finally:
                for listener in listeners:
                    listener.socket.close()
                for stream, record in list(self._live.items()):
                    self._close(stream, record, "server")
        finally:
            self._stopped.set()

    async def _accept(self, listener: trio.SocketListener, nursery: trio.Nursery) -> NoReturn:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                await trio.sleep(_ACCEPT_RETRY)  # out of file descriptors: let some close
                continue
            record = ConnectionRecord(index=len(self.connections), opened_at=trio.current_time())
            self.connections.append(record)
            self._live[stream] = record
            self._notify()
            nursery.start_soon(self._serve_connection, stream, record)

    async def _serve_connection(self, stream: trio.SocketStream, record: ConnectionRecord) -> None:
        closed_by: ClosedBy = "server"
        try:
            await _Connection(self, stream, record).serve()
        except _ClientGone:
            closed_by = "client"
        except _Hangup:
            pass
        # On Cancelled or a handler's exception the socket stays open until _run closes it.
        self._close(stream, record, closed_by)

    def _close(self, stream: trio.SocketStream, record: ConnectionRecord, by: ClosedBy) -> None:
        if self._live.pop(stream, None) is None:
            return
        stream.socket.close()
        record.closed_at = trio.current_time()
        record.closed_by = by
        self._notify()

    def _record(
        self, connection: ConnectionRecord, head: RequestHead, body: bytes
    ) -> RecordedRequest:
        index = len(self.requests)
        try:
            decoded = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            decoded = None
        request = RecordedRequest(
            index=index,
            connection=connection.index,
            method=head.method,
            path=head.path,
            query=head.query,
            headers=head.headers,
            body=body,
            json=decoded,
            received_at=trio.current_time(),
            request_id=f"req_{index}",
        )
        self.requests.append(request)
        connection.requests += 1
        self._notify()
        return request

    async def _choose(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != _MESSAGES_PATH:
            return Reply.error(
                404,
                type="not_found_error",
                message=f"triostream.testing serves POST {_MESSAGES_PATH}, "
                f"not {request.method} {request.path}",
            )
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        handler = self.handler
        if handler is None:
            return _NO_SCRIPT
        result: object = handler(request)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Reply):
            raise TypeError(f"MockServer.handler returned {type(result).__name__}, not a Reply")
        return result


class _Connection:
    """One client connection: read requests, write replies, notice the client leaving."""

    __slots__ = ("_budget", "_buffer", "_record", "_server", "_stream")

    def __init__(self, server: MockServer, stream: trio.SocketStream, record: ConnectionRecord):
        self._server = server
        self._stream = stream
        self._record = record
        self._buffer = bytearray()
        self._budget: int | None = None

    async def serve(self) -> None:
        """Serve requests until one side closes; raises _ClientGone or _Hangup."""
        while True:
            try:
                head, body = await self._read_request()
            except BadRequest as bad:
                await self._reject(bad)
                return
            request = self._server._record(self._record, head, body)
            reply = await self._server._choose(request)
            close = reply.close_connection or head.wants_close
            await self._respond(reply, request.request_id, close, head_only=head.method == "HEAD")
            if close:
                return

    # -- reading ---------------------------------------------------------------

    async def _receive(self) -> None:
        try:
            data = await self._stream.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _ClientGone from None
        if not data:
            raise _ClientGone
        if len(self._buffer) + len(data) > _MAX_BUFFER:
            raise _Hangup
        self._buffer += data

    async def _read_request(self) -> tuple[RequestHead, bytes]:
        buffer = self._buffer
        while True:
            # Blank lines before a request line are allowed (RFC 9112, section 2.2).
            while buffer.startswith((b"\r", b"\n")):
                del buffer[:1]
            match = HEAD_END.search(buffer, 0, MAX_HEAD)
            if match:
                break
            if len(buffer) >= MAX_HEAD:
                raise BadRequest(431, f"the request head is over {MAX_HEAD} bytes")
            await self._receive()
        head = parse_request_head(bytes(buffer[: match.end()]))
        del buffer[: match.end()]
        length = body_length(head)
        if head.expects_continue and length != 0 and not buffer:
            await self._send(CONTINUE)
        body = await self._read_chunked() if length is None else await self._read_exact(length)
        return head, body

    async def _read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            await self._receive()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\n", 0, MAX_HEAD)) < 0:
            if len(self._buffer) >= MAX_HEAD:
                raise BadRequest(400, "a line of the chunked body is too long")
            await self._receive()
        line = bytes(self._buffer[:end]).removesuffix(b"\r")
        del self._buffer[: end + 1]
        return line

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while size := parse_chunk_size(await self._read_line()):
            if len(body) + size > MAX_BODY:
                raise BadRequest(413, f"the body is over {MAX_BODY} bytes")
            body += await self._read_exact(size)
            if await self._read_line():
                raise BadRequest(400, "chunk data is not followed by CRLF")
        for _ in range(_MAX_TRAILER_LINES):
            if not await self._read_line():
                return bytes(body)
        raise BadRequest(400, "too many trailer lines")

    # -- writing ---------------------------------------------------------------

    async def _send(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _ClientGone from None

    async def _wait(self, seconds: float) -> None:
        """Let ``seconds`` pass on trio's clock, noticing the client leaving meanwhile."""
        if seconds > 0:
            with trio.move_on_after(seconds):
                await self._until_client_leaves()

    async def _until_client_leaves(self) -> NoReturn:
        while True:
            await self._receive()

    async def _respond(self, reply: Reply, request_id: str, close: bool, head_only: bool) -> None:
        await self._wait(reply.head_delay)
        await self._send(reply._response_head(request_id, close))
        if head_only:
            return
        chunks, frames = reply.chunks, reply._frames
        last = len(chunks) - 1
        end_with_last = reply.chunked and bool(chunks) and not reply.end_delay
        end_with_last = end_with_last and reply.stall_after is None
        self._budget = reply.disconnect_after
        for i, chunk in enumerate(chunks):
            if i == reply.stall_after:
                await self._stall(reply)
            if i and reply.delay:
                await self._wait(reply.delay)
            ending = CHUNKED_END if end_with_last and i == last else b""
            await self._send_chunk(chunk, frames[i], reply.chunked, ending)
        if reply.stall_after == len(chunks):
            await self._stall(reply)
        if self._budget == 0:
            raise _Hangup
        await self._wait(reply.end_delay)
        if reply.chunked and not end_with_last:
            await self._send(CHUNKED_END)

    async def _send_chunk(self, chunk: bytes, frame: bytes, chunked: bool, ending: bytes) -> None:
        """Send one framed chunk, or the part of it within ``disconnect_after`` and hang up."""
        budget = self._budget
        if budget is not None:
            if len(chunk) >= budget:
                if budget:
                    framing = chunk_header(len(chunk)) if chunked else b""
                    await self._send(framing + chunk[:budget])
                raise _Hangup
            self._budget = budget - len(chunk)
        await self._send(frame + ending if ending else frame)

    async def _stall(self, reply: Reply) -> NoReturn:
        interval = reply.pings_while_stalled
        if interval is None:
            await self._until_client_leaves()
        while True:
            await self._wait(interval)
            await self._send_chunk(PING_EVENT, _PING_FRAME, True, b"")

    async def _reject(self, bad: BadRequest) -> None:
        """Answer a malformed request with its error status, then close gracefully."""
        reply = Reply.error(bad.status, message=bad.reason, close_connection=True)
        try:
            await self._send(reply._response_head("req_rejected", True) + reply.body)
            await self._stream.send_eof()
            with trio.move_on_after(_LINGER):
                while await self._stream.receive_some(_RECEIVE_SIZE):
                    pass
        except (_ClientGone, trio.BrokenResourceError, trio.ClosedResourceError):
            pass


@asynccontextmanager
async def open_mock_server(*, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[MockServer]:
    """``async with open_mock_server() as server:`` a :class:`MockServer` in a nursery of its own.

    Leaving the block stops the server (connections still open are recorded
    as closed by the server). An exception from the block, or from the
    server's handler, comes out as itself, not wrapped in an exception group.
    """
    with lone_exception():
        async with trio.open_nursery() as nursery:
            server = await MockServer.start(nursery, host=host, port=port)
            yield server
            nursery.cancel_scope.cancel()
