"""Server-Sent Event bodies for the mock server: encode events, cut a body into events."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

__all__ = ["PING_EVENT", "SSEItem", "encode_item", "split_sse_events", "sse_body", "sse_event"]

#: One item of :meth:`Reply.stream <triostream.testing.Reply.stream>` and :func:`sse_body`:
#: an event dict, or bytes (or text) sent exactly as given.
SSEItem = Mapping[str, Any] | bytes | str

#: The keep-alive event the Messages API sends, byte for byte.
PING_EVENT = b'event: ping\ndata: {"type": "ping"}\n\n'

# A lone CR only when no LF follows, so a CRLF is never taken for two line ends.
_BLANK_LINE_RUN = re.compile(rb"(?:\r\n|\r(?!\n)|\n){2,}")
_LINE_BREAK = re.compile(r"[\r\n]")

_encoder = msgspec.json.Encoder()


def sse_event(obj: Mapping[str, Any], *, event: str | None = None) -> bytes:
    """One SSE event as the Messages API writes it: ``event: <type>\\ndata: <json>\\n\\n``.

    ``obj`` is encoded as compact JSON (no spaces, UTF-8). The event name is
    ``obj["type"]`` unless ``event`` is given. Raises :class:`ValueError` when
    there is no string ``type`` and no ``event``, or the name contains a line
    break, and :class:`TypeError` when ``obj`` cannot be encoded as JSON.
    """
    if event is None:
        event = obj.get("type") if isinstance(obj, Mapping) else None
        if not isinstance(event, str):
            raise ValueError(
                f"sse_event: {obj!r:.80} has no string 'type'; pass event=... to name the event"
            )
    if _LINE_BREAK.search(event):
        raise ValueError(f"sse_event: the event name {event!r} contains a line break")
    try:
        data = _encoder.encode(obj)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"sse_event: cannot encode {obj!r:.80} as JSON: {exc}") from None
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


def encode_item(item: SSEItem) -> bytes:
    """The bytes of one stream item: an event dict through :func:`sse_event`, bytes as is."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, Mapping):
        return sse_event(item)
    raise TypeError(
        f"a stream item must be an event mapping, bytes or str, not {type(item).__name__}"
    )


def sse_body(events: Iterable[SSEItem]) -> bytes:
    """The SSE body of these events: each dict through :func:`sse_event`, bytes as given."""
    return b"".join(encode_item(item) for item in events)


def split_sse_events(body: bytes) -> list[bytes]:
    """Cut an SSE body after each blank line: one piece per event, nothing lost.

    Any line-end style is understood (LF, CRLF, lone CR). A run of several
    blank lines stays with the event before it; whatever follows the last
    blank line (a recording often ends without one) is the last piece.
    ``b"".join(split_sse_events(body)) == body`` always holds.
    """
    pieces: list[bytes] = []
    start = 0
    for match in _BLANK_LINE_RUN.finditer(body):
        pieces.append(body[start : match.end()])
        start = match.end()
    if start < len(body):
        pieces.append(body[start:])
    return pieces
