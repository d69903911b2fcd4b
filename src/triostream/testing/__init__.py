"""A real, scriptable Messages API server on loopback, for tests, benchmarks and demos.

::

    from triostream.testing import MockServer, Reply

    async with trio.open_nursery() as nursery:
        server = await MockServer.start(nursery)         # 127.0.0.1, a free port
        server.enqueue(Reply.sse(recorded_body), Reply.error(529))
        ...                                              # point a client at server.base_url
        assert server.requests[0].json["stream"] is True
        await server.wait_idle()
        assert server.connections[0].closed_by == "client"

Replies replay recorded SSE bodies or event dicts with chosen chunking,
delays, stalls (optionally with pings), mid-body disconnects and error
statuses; :func:`serve_in_thread` runs the same server for synchronous code.
"""

from ._records import ClosedBy, ConnectionRecord, RecordedRequest
from ._replies import Chunking, HeadersArg, Reply
from ._script import ScriptedConversation
from ._server import Handler, MockServer, open_mock_server
from ._sse import PING_EVENT, SSEItem, split_sse_events, sse_body, sse_event
from ._thread import ThreadedMockServer, serve_in_thread

__all__ = [
    "PING_EVENT",
    "Chunking",
    "ClosedBy",
    "ConnectionRecord",
    "Handler",
    "HeadersArg",
    "MockServer",
    "RecordedRequest",
    "Reply",
    "SSEItem",
    "ScriptedConversation",
    "ThreadedMockServer",
    "open_mock_server",
    "serve_in_thread",
    "split_sse_events",
    "sse_body",
    "sse_event",
]
