"""Scripted replies: what the mock server sends back for one request, and how."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import msgspec

from ._http import chunk_header, reason_phrase, status_line
from ._sse import SSEItem, encode_item, split_sse_events

__all__ = ["Chunking", "HeadersArg", "Reply"]

#: How a streaming body is cut into HTTP chunks: ``"event"``, a chunk size, or the chunks.
Chunking = Literal["event"] | int | Sequence[bytes]
#: Extra response headers: a mapping or ``(name, value)`` pairs (repeats allowed).
HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-z]+")
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_SSE = "text/event-stream"
_JSON = "application/json"

# The error types the Messages API documents for these statuses.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")

_OPTIONS = frozenset(
    {
        "headers",
        "head_delay",
        "delay",
        "stall_after",
        "pings_while_stalled",
        "disconnect_after",
        "end_delay",
        "close_connection",
    }
)

_json_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Reply:
    """One scripted response; immutable, so one reply can serve any number of requests.

    Build replies with the class methods :meth:`sse`, :meth:`stream`,
    :meth:`json`, :meth:`error` and :meth:`error_text`. The body is written
    as ``chunks``: with ``Transfer-Encoding: chunked`` each is one HTTP chunk
    (and one write), otherwise the body has a Content-Length. Every response
    carries ``request-id: req_<n>`` (``n`` = the request's index) unless
    ``headers`` sets its own; ``content-length``, ``transfer-encoding`` and
    ``connection`` are the server's to set (use ``close_connection``).

    The chunked terminator goes out in the same write as the last chunk
    unless ``end_delay`` (or a stall) holds it back.

    Timing options wait with trio's clock (so ``trio.testing.MockClock``
    drives them) and watch the socket while they wait, so a client that goes
    away is noticed at once:

    - ``head_delay``: seconds before the status line (``math.inf``: never
      answer, until the client gives up).
    - ``delay``: seconds between chunks.
    - ``stall_after=n``: after ``n`` chunks send nothing more (not even the
      terminator) until the client goes away; ``n`` may be ``len(chunks)``.
    - ``pings_while_stalled=s``: while stalled, send an ``event: ping`` chunk
      every ``s`` seconds, like a server that only pings.
    - ``disconnect_after=k``: close the TCP connection (FIN, no chunked
      terminator) once ``k`` body bytes have gone out, counting SSE bytes
      (pings included) and not the chunk framing; ``k`` may fall inside a chunk.
    - ``end_delay``: seconds before the final ``0\\r\\n\\r\\n``.
    - ``close_connection``: send ``connection: close`` and close after the reply.
    """

    status: int = 200
    content_type: str = _SSE
    chunks: tuple[bytes, ...] = ()
    chunked: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    head_delay: float = 0.0
    delay: float = 0.0
    stall_after: int | None = None
    pings_while_stalled: float | None = None
    disconnect_after: int | None = None
    end_delay: float = 0.0
    close_connection: bool = False
    _frames: tuple[bytes, ...] = field(init=False, compare=False)
    _head_start: bytes = field(init=False, compare=False)
    _head_end: bytes = field(init=False, compare=False)
    _sets_request_id: bool = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise TypeError(f"Reply status must be an int, not {self.status!r}")
        if not 200 <= self.status <= 599:
            raise ValueError(f"Reply status must be 200-599, not {self.status}")
        for chunk in self.chunks:
            if not isinstance(chunk, bytes):
                raise TypeError(f"Reply chunks must be bytes, not {type(chunk).__name__}")
            if not chunk and self.chunked:
                raise ValueError("Reply chunks must not be empty (an empty chunk ends the body)")
        _check_headers(self.headers)
        _check_header_value("content-type", self.content_type)
        for name in ("head_delay", "delay", "end_delay"):
            seconds = getattr(self, name)
            if not seconds >= 0:
                raise ValueError(f"Reply {name} must be >= 0 seconds, not {seconds!r}")
        self._check_stream_options()

        if self.chunked:
            frames = tuple(chunk_header(len(chunk)) + chunk + b"\r\n" for chunk in self.chunks)
            framing = b"transfer-encoding: chunked\r\n"
        else:
            frames = self.chunks
            framing = b"content-length: %d\r\n" % sum(map(len, self.chunks))
        extra = b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in self.headers)
        if self.close_connection:
            extra += b"connection: close\r\n"
        content_type = f"content-type: {self.content_type}\r\n".encode("latin-1")
        start = status_line(self.status) + content_type
        object.__setattr__(self, "_frames", frames)
        object.__setattr__(self, "_head_start", start + framing)
        object.__setattr__(self, "_head_end", extra)
        object.__setattr__(
            self, "_sets_request_id", any(name == "request-id" for name, _ in self.headers)
        )

    def _check_stream_options(self) -> None:
        streaming = (self.stall_after, self.pings_while_stalled)
        if not self.chunked and any(option is not None for option in streaming):
            raise ValueError("stall_after and pings_while_stalled need a chunked (streaming) reply")
        if self.stall_after is not None and not 0 <= self.stall_after <= len(self.chunks):
            raise ValueError(
                f"stall_after must be 0..{len(self.chunks)} (the number of chunks), "
                f"not {self.stall_after}"
            )
        if self.pings_while_stalled is not None:
            if self.stall_after is None:
                raise ValueError("pings_while_stalled needs stall_after")
            if not 0 < self.pings_while_stalled < math.inf:
                raise ValueError(
                    f"pings_while_stalled must be > 0 seconds, not {self.pings_while_stalled!r}"
                )
        if self.disconnect_after is not None:
            if self.disconnect_after < 0:
                raise ValueError(f"disconnect_after must be >= 0, not {self.disconnect_after}")
            if self.pings_while_stalled is None:
                sent = self.chunks if self.stall_after is None else self.chunks[: self.stall_after]
                reachable = sum(map(len, sent))
                if self.disconnect_after > reachable:
                    raise ValueError(
                        f"disconnect_after={self.disconnect_after} is never reached: only "
                        f"{reachable} body bytes are sent"
                    )

    @property
    def body(self) -> bytes:
        """The whole body, without HTTP framing."""
        return b"".join(self.chunks)

    def __repr__(self) -> str:
        options = [
            f"{option.name}={getattr(self, option.name)!r}"
            for option in fields(self)
            if option.name in _OPTIONS and getattr(self, option.name) != option.default
        ]
        framing = f"{len(self.chunks)} chunks" if self.chunked else "content-length"
        return (
            f"Reply(status={self.status}, content_type={self.content_type!r}, {framing}, "
            f"{sum(map(len, self.chunks))} bytes{''.join(', ' + o for o in options)})"
        )

    def _response_head(self, request_id: str, close: bool) -> bytes:
        """The status line and headers for one response."""
        parts = [self._head_start]
        if not self._sets_request_id:
            parts.append(f"request-id: {request_id}\r\n".encode("latin-1"))
        parts.append(self._head_end)
        if close and not self.close_connection:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    @classmethod
    def sse(
        cls,
        body: bytes | str,
        *,
        chunking: Chunking = "event",
        status: int = 200,
        headers: HeadersArg = None,
        head_delay: float = 0.0,
        delay: float = 0.0,
        stall_after: int | None = None,
        pings_while_stalled: float | None = None,
        disconnect_after: int | None = None,
        end_delay: float = 0.0,
        close_connection: bool = False,
    ) -> Reply:
        """A recorded SSE body (e.g. a fixture file) streamed with ``text/event-stream``.

        ``chunking`` cuts it into HTTP chunks: ``"event"`` gives one chunk per
        SSE event (cut after each blank line, any line-end style; see
        :func:`split_sse_events`), an int gives chunks of that many bytes (the
        last may be shorter), and a sequence of bytes gives the chunks
        themselves, which must join to ``body``. The options are described on
        :class:`Reply`.
        """
        raw = body.encode() if isinstance(body, str) else body
        if not isinstance(raw, bytes):
            raise TypeError(f"Reply.sse body must be bytes or str, not {type(body).__name__}")
        return cls(
            status=status,
            content_type=_SSE,
            chunks=_cut(raw, chunking),
            chunked=True,
            headers=_normalize_headers(headers),
            head_delay=head_delay,
            delay=delay,
            stall_after=stall_after,
            pings_while_stalled=pings_while_stalled,
            disconnect_after=disconnect_after,
            end_delay=end_delay,
            close_connection=close_connection,
        )

    @classmethod
    def stream(
        cls,
        events: Iterable[SSEItem],
        *,
        chunking: Chunking = "event",
        status: int = 200,
        headers: HeadersArg = None,
        head_delay: float = 0.0,
        delay: float = 0.0,
        stall_after: int | None = None,
        pings_while_stalled: float | None = None,
        disconnect_after: int | None = None,
        end_delay: float = 0.0,
        close_connection: bool = False,
    ) -> Reply:
        """A stream built from event dicts, each written by :func:`sse_event`.

        A bytes (or str) item is sent exactly as given, for odd cases: a
        comment, a malformed event, half an event. With ``chunking="event"``
        each item is one HTTP chunk (so a bytes item can cut an event
        anywhere); an int or explicit chunks cut the joined body as in
        :meth:`sse`. The options are described on :class:`Reply`.
        """
        pieces = [encode_item(item) for item in events]
        if isinstance(chunking, str) and chunking == "event":
            if not all(pieces):
                raise ValueError("Reply.stream: an empty item cannot be an HTTP chunk")
            chunking = tuple(pieces)  # one HTTP chunk per item, exactly as given
        return cls.sse(
            b"".join(pieces),
            chunking=chunking,
            status=status,
            headers=headers,
            head_delay=head_delay,
            delay=delay,
            stall_after=stall_after,
            pings_while_stalled=pings_while_stalled,
            disconnect_after=disconnect_after,
            end_delay=end_delay,
            close_connection=close_connection,
        )

    @classmethod
    def json(
        cls,
        obj: Any,
        *,
        status: int = 200,
        headers: HeadersArg = None,
        head_delay: float = 0.0,
        close_connection: bool = False,
    ) -> Reply:
        """A JSON body with a Content-Length (e.g. a non-streaming ``Message``).

        ``obj`` is encoded as compact JSON; bytes are taken as already encoded.
        """
        if isinstance(obj, bytes):
            body = obj
        else:
            try:
                body = _json_encoder.encode(obj)
            except (TypeError, msgspec.EncodeError) as exc:
                raise TypeError(f"Reply.json: cannot encode {obj!r:.80} as JSON: {exc}") from None
        return cls(
            status=status,
            content_type=_JSON,
            chunks=(body,),
            chunked=False,
            headers=_normalize_headers(headers),
            head_delay=head_delay,
            close_connection=close_connection,
        )

    @classmethod
    def error(
        cls,
        status: int,
        *,
        type: str | None = None,
        message: str | None = None,
        headers: HeadersArg = None,
        head_delay: float = 0.0,
        close_connection: bool = False,
    ) -> Reply:
        """An API error: ``{"type": "error", "error": {"type": ..., "message": ...}}``.

        ``type`` defaults to the type the API documents for the status (400
        ``invalid_request_error``, 429 ``rate_limit_error``, 500 ``api_error``,
        529 ``overloaded_error``, ...); a status without one gets a type
        named after it (409 ``conflict_error``) that no client takes for
        another status's. ``message`` defaults to the status's reason phrase.
        Add ``retry-after``, ``retry-after-ms`` or ``x-should-retry`` through
        ``headers``.
        """
        phrase = reason_phrase(status)
        if type is None:
            named = _NOT_ALPHANUMERIC.sub("_", phrase.lower()).strip("_")
            type = _ERROR_TYPES.get(status, f"{named}_error" if named else f"http_{status}_error")
        if message is None:
            message = phrase or f"HTTP status {status}"
        return cls.json(
            {"type": "error", "error": {"type": type, "message": message}},
            status=status,
            headers=headers,
            head_delay=head_delay,
            close_connection=close_connection,
        )

    @classmethod
    def error_text(
        cls,
        status: int,
        text: str | bytes,
        *,
        content_type: str = "text/html; charset=utf-8",
        headers: HeadersArg = None,
        head_delay: float = 0.0,
        close_connection: bool = False,
    ) -> Reply:
        """A non-JSON body, such as the HTML page a proxy sends with a 502."""
        body = text.encode() if isinstance(text, str) else text
        return cls(
            status=status,
            content_type=content_type,
            chunks=(body,),
            chunked=False,
            headers=_normalize_headers(headers),
            head_delay=head_delay,
            close_connection=close_connection,
        )


def _cut(body: bytes, chunking: Chunking) -> tuple[bytes, ...]:
    """Cut ``body`` into HTTP chunks as ``chunking`` says."""
    if isinstance(chunking, str):
        if chunking != "event":
            raise ValueError(f'chunking must be "event", a size or the chunks, not {chunking!r}')
        return tuple(split_sse_events(body))
    if isinstance(chunking, int) and not isinstance(chunking, bool):
        if chunking < 1:
            raise ValueError(f"a chunk size must be >= 1, not {chunking}")
        return tuple(body[i : i + chunking] for i in range(0, len(body), chunking))
    if isinstance(chunking, Sequence) and not isinstance(chunking, bytes):
        chunks: list[bytes] = []
        for chunk in chunking:
            if not isinstance(chunk, bytes):
                raise TypeError(f"explicit chunks must be bytes, not {type(chunk).__name__}")
            chunks.append(chunk)
        if b"".join(chunks) != body:
            raise ValueError("the explicit chunks do not join to the body")
        return tuple(chunks)
    raise TypeError(f'chunking must be "event", an int or a sequence of bytes, not {chunking!r}')


def _normalize_headers(headers: HeadersArg) -> tuple[tuple[str, str], ...]:
    """Extra headers as ``(lowercase name, value)`` pairs, in order."""
    if headers is None:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name).lower(), str(value)) for name, value in pairs)


def _check_headers(headers: tuple[tuple[str, str], ...]) -> None:
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a lowercase header name")
        if name in _FRAMING_HEADERS:
            raise ValueError(
                f"the server sets {name} itself (use close_connection=True for connection: close)"
            )
        _check_header_value(name, value)


def _check_header_value(name: str, value: str) -> None:
    if _BAD_VALUE_CHAR.search(value):
        raise ValueError(f"the {name} header value {value!r} contains a control character")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"the {name} header value {value!r} is not latin-1") from None
