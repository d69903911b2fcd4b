"""What the mock server remembers: each request, and each connection's life."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ClosedBy", "ConnectionRecord", "RecordedRequest"]

#: Which side closed a connection first.
ClosedBy = Literal["client", "server"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request as the server received it, recorded before the reply is chosen.

    ``headers`` keeps every header in order with its name lowercased and its
    value as sent; :meth:`header` looks one up. ``json`` is the body decoded
    as JSON, or None when the body is empty or not JSON. ``request_id`` is the
    ``request-id`` the server sends back (unless the reply sets its own).
    """

    index: int
    """Position in :attr:`MockServer.requests`."""
    connection: int
    """Index of the :class:`ConnectionRecord` it arrived on."""
    method: str
    path: str
    """The path of the request target, without the query."""
    query: str
    """The query string without the ``?`` (``""`` when there is none)."""
    headers: list[tuple[str, str]]
    body: bytes
    json: Any
    received_at: float
    """``trio.current_time()`` when the whole request had arrived."""
    request_id: str

    def header(self, name: str) -> str | None:
        """The first value of the header ``name`` (any case), or None when absent."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True, kw_only=True)
class ConnectionRecord:
    """One TCP connection the server accepted; the server updates it as things happen.

    Times are ``trio.current_time()``. ``closed_by`` is ``"client"`` when the
    client went away first (end of stream or a reset, noticed while idle,
    reading, sending or stalled) and ``"server"`` when the server closed it
    (a reply's ``disconnect_after`` or ``close_connection``, a request with
    ``connection: close``, a malformed request, or the server stopping).
    """

    index: int
    """Position in :attr:`MockServer.connections`."""
    opened_at: float
    closed_at: float | None = None
    closed_by: ClosedBy | None = None
    """None while the connection is open."""
    requests: int = 0
    """How many complete requests arrived on it."""

    @property
    def is_open(self) -> bool:
        """Whether the connection is still open."""
        return self.closed_by is None
