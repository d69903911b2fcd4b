"""A sans-IO decoder for Server-Sent Events (``text/event-stream``).

:class:`SSEDecoder` turns the bytes of an event stream, cut into chunks in any
way, into :class:`ServerSentEvent` values, following the WHATWG "event stream
interpretation" rules:

* lines end with CR, LF or CRLF (a CRLF split across two chunks is one line
  end); no other character ends a line;
* one UTF-8 byte order mark at the very start of the stream is dropped;
* a line starting with ``:`` is a comment; ``field: value`` loses exactly one
  space after the colon; a line without a colon is a field with an empty value;
* ``event`` sets the event type, ``data`` adds a line of data, ``id`` sets the
  last event id (ignored if it contains NUL), ``retry`` is kept only when it is
  all ASCII digits (and not too long for :class:`int`); other fields are
  ignored;
* an empty line dispatches the event when it has data (possibly an empty
  ``data`` line), else it only resets the event type;
* bytes that are not UTF-8 become U+FFFD.

Events are returned by the :meth:`SSEDecoder.feed` call that receives their
closing empty line.  :meth:`SSEDecoder.close` ends the input and differs from
WHATWG on purpose: a last line without a line end is still processed, and an
event that lacks only its closing empty line is still dispatched (recorded
bodies often end that way).

A line longer than ``max_size`` bytes, or an event whose data is longer than
``max_size`` bytes, raises :class:`~triostream.APIResponseValidationError`;
the decoder never holds more than ``max_size`` bytes of an unfinished line, nor
more than ``max_size`` plus one chunk of the rest of an unfinished event.  The
work done is linear in the input, however it is chunked.

Fast path: the Messages API writes every event as exactly ``event: NAME``,
``data: DATA``, blank line.  When a run of complete events is written that way
(checked, never assumed), they are cut out with one regular expression instead
of going line by line; anything else takes the general path.  Both give the
same events.  :meth:`SSEDecoder.feed_frames` hands such events over as raw
bytes, for decoders that read UTF-8 bytes themselves.

This module imports neither trio nor httpx.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any

import msgspec

from triostream._exceptions import APIResponseValidationError

__all__ = ["SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"

# One event as the Messages API writes it: 16 bytes besides the two values.  The
# matches in a region do not overlap, so the region is a run of them (each starting
# where the one before ends, so at a line start) iff their lengths add up to its own.
# (Unanchored, the search skips to each "event: " quickly.)
_FRAME = re.compile(rb"event: ([^\n]*)\ndata: ([^\n]*)\n\n")

# A line that changes what the decoder shows (last_event_id, retry): it is never
# kept raw, so those are up to date after each feed.
_STATEFUL = re.compile(rb"^(?:id|retry)[:\n]", re.MULTILINE)

# At most this many bytes of complete lines are kept raw, without a blank line,
# waiting for the rest of their event (decoding many short lines at once costs
# ~20 times their size, for a moment).
_RAW_LIMIT = 4096

# After a region that is not a run of frames, this many regions at most go the
# general way before the fast path is tried again (the wait doubles each time).
_BACKOFF_MAX = 64

# Event names seen in fast-path events, decoded once (few and short in practice;
# bounded whatever the stream sends).
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 64
_NAME_MAX_LEN = 64


class ServerSentEvent(msgspec.Struct, frozen=True, gc=False):
    """One dispatched event.

    ``event`` is the value of the block's last ``event`` field (``None`` when
    the block had none; ``""`` for an empty one).  ``data`` is the block's
    ``data`` values joined with ``"\\n"``.  ``id`` is the stream's last event id
    when the event was dispatched: it persists across events until an ``id``
    field changes it (``None`` if no id was ever set).  ``retry`` is the last
    valid ``retry`` value given in this event's block, else ``None``.
    """

    event: str | None
    data: str
    id: str | None
    retry: int | None


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class SSEDecoder:
    """Incremental decoder of an event stream: feed bytes, get events.

    ``max_size`` bounds a single line (its raw bytes, without the line end)
    and the data of a single event (the UTF-8 length of the dispatched
    ``data``, after invalid bytes became U+FFFD).  Exceeding it raises
    :class:`~triostream.APIResponseValidationError` and leaves the decoder in
    a sticky error state: every later :meth:`feed` or :meth:`close` raises
    again.  If events were completed in the same :meth:`feed` call before the
    offending line, that call returns them and the error is raised by the next
    call, so no event that arrived before the error is lost and the events
    seen never depend on the chunking.

    ``last_event_id`` is the last event id set by the stream (the value to
    send as ``Last-Event-ID`` when reconnecting), ``retry`` the last valid
    ``retry`` value the stream gave (milliseconds), each ``None`` until set.
    """

    __slots__ = (
        "_at_start",
        "_backoff",
        "_block_retry",
        "_closed",
        "_counted",
        "_counted_list",
        "_counted_size",
        "_data",
        "_error",
        "_event",
        "_max_size",
        "_pending",
        "_quarter",
        "_room",
        "_skip",
        "_skip_lf",
        "_special",
        "_spill",
        "_start_buf",
        "_third",
        "last_event_id",
        "retry",
    )

    def __init__(self, *, max_size: int = 16 * 1024 * 1024) -> None:
        """Create a decoder at the start of a stream; ``max_size`` must be positive."""
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0:
            raise ValueError(f"max_size must be a positive int, not {max_size!r}")
        self._max_size = max_size
        # A data string of at most this many characters is at most max_size UTF-8 bytes.
        self._quarter = max_size // 4
        # Raw bytes of at most this size hold no line and no data over max_size, even
        # once each invalid byte becomes U+FFFD (3 bytes).
        self._third = max_size // 3
        self.last_event_id: str | None = None
        self.retry: int | None = None
        # The event being built.
        self._event: str | None = None
        self._data: list[str] = []
        self._block_retry: int | None = None
        # Which data list was checked against max_size, how many of its lines, their size.
        self._counted = 0
        self._counted_size = 0
        self._counted_list: list[str] | None = None
        # Data lines of an event that spans feeds, moved out of the list (compactly).
        self._spill: bytearray | None = None
        # Bytes not interpreted yet, starting at a line start: the unfinished line or, when
        # no event is in progress, possibly complete lines before it (no blank line, at
        # most max_size // 3 bytes of them); max_size minus the unfinished line's length.
        self._pending = bytearray()
        self._room = self._max_size
        # The first bytes of the stream while they may still be a split BOM.
        self._at_start = True
        self._start_buf = b""
        # The last chunk ended with CR: an LF starting the next one ends no line.
        self._skip_lf = False
        self._closed = False
        self._error: str | None = None
        # True while any of _at_start, _skip_lf, _closed, _error needs looking at.
        self._special = True
        # Regions to take the general way before trying the fast path again; the next wait.
        self._skip = 0
        self._backoff = 1

    @property
    def max_size(self) -> int:
        """The limit, in bytes, on one line and on one event's data."""
        return self._max_size

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode the next bytes of the stream; return the events they complete.

        Raises :class:`~triostream.APIResponseValidationError` when a line or
        an event's data goes over ``max_size`` (or an earlier call did), and
        :class:`RuntimeError` when called after :meth:`close`.
        """
        return self._feed(chunk, False)

    def feed_frames(self, chunk: bytes) -> list[ServerSentEvent | tuple[bytes, bytes]]:
        """Like :meth:`feed`, for decoders that take UTF-8 bytes, such as msgspec's.

        The same events, in the same order and from the same call, except that
        an event written exactly as the Messages API writes them (an
        ``event: NAME`` line, a ``data: DATA`` line, a blank line) may come as
        the tuple ``(NAME, DATA)`` of its raw bytes, not decoded: they may hold
        invalid UTF-8, which :meth:`feed` would have turned into U+FFFD.  Such an
        event has no ``retry``; the tuple does not carry the stream's last event
        id (use :meth:`feed` where ids matter).
        """
        return self._feed(chunk, True)

    def close(self) -> list[ServerSentEvent]:
        """End the input; return the events it completes.

        A last line without a line end is processed as a line, then an event
        that lacks only its closing empty line is dispatched.  Calling
        :meth:`close` again returns ``[]``; calling :meth:`feed` afterwards
        raises :class:`RuntimeError`.  Raises
        :class:`~triostream.APIResponseValidationError` if the decoder is in
        the error state.
        """
        if self._error is not None:
            self._raise()
        if self._closed:
            return []
        self._closed = self._special = True
        lines: list[str] = [""]
        last = self._start_buf if self._at_start else bytes(self._pending)
        self._at_start = False
        self._start_buf = b""
        self._pending = bytearray()
        self._room = self._max_size
        if len(last) - 1 - last.rfind(b"\n") > self._max_size:
            self._fail(self._line_message())
        if last:
            # Complete lines kept raw, then the unfinished line (if any).
            lines[:0] = last.decode("utf-8", "replace").split("\n")
            if last[-1] == 10:  # b"\n": the "" after it is no line
                del lines[-2]
        return self._run(lines)

    # -- internals ---------------------------------------------------------------

    def _feed(self, chunk: bytes, frames: bool) -> list[Any]:
        """feed() or, with ``frames``, feed_frames()."""
        if self._special:
            chunk = self._prepare(chunk)
        if 13 in chunk:  # b"\r"
            return self._feed_cr(chunk, frames)
        if not chunk:
            return []
        if (
            self._event is not None
            or self._data
            or self._spill is not None
            or self._block_retry is not None
        ):
            return self._feed_in_event(chunk, frames)
        # No event in progress: _pending holds complete lines, kept raw, then maybe
        # the start of a line; no blank line.
        pending = self._pending
        cut = chunk.rfind(b"\n\n")
        if pending:
            if cut >= 0:
                cut += len(pending)
            elif pending[-1] == 10 and chunk[0] == 10:  # a blank line across the feeds
                cut = len(pending) - 1
        size = len(pending) + len(chunk)
        if cut < 0:
            return self._keep(chunk, size)
        if size > self._third:
            return self._flush_then_lines(chunk)
        buf = pending + chunk if pending else chunk
        end = cut + 2
        # buf[:end]: complete events, from a clean state to a clean state.
        events: list[Any]
        if self._skip:
            self._skip -= 1
            found = None
        else:
            found = _FRAME.findall(buf, 0, end)
            if (
                len(found[0][0]) + len(found[0][1]) + 16
                if len(found) == 1
                else sum(map(len, chain.from_iterable(found))) + 16 * len(found)
            ) == end:
                self._backoff = 1
            else:
                found = None
                self._skip = self._backoff
                self._backoff = min(2 * self._backoff, _BACKOFF_MAX)
        if found is not None:
            if frames:
                events = found
            else:
                events = []
                append = events.append
                last_id = self.last_event_id
                names = _NAMES
                for raw_name, data in found:
                    name = names.get(raw_name)
                    if name is None:
                        name = self._name(raw_name)
                    append(ServerSentEvent(name, data.decode("utf-8", "replace"), last_id, None))
        else:
            lines = buf[:end].decode("utf-8", "replace").split("\n")
            lines.pop()  # the empty string after the last line end
            events = self._run(lines)
        if end < size:
            tail = bytearray(buf[end:])  # an unfinished event, kept raw
            self._pending = tail
            last = tail.rfind(b"\n")
            self._room = self._max_size - (len(tail) - 1 - last)
            if last >= 0 and _STATEFUL.search(tail, 0, last + 1):
                self._flush()
        elif pending:
            self._pending = bytearray()
            self._room = self._max_size
        return events

    def _feed_cr(self, chunk: bytes, frames: bool) -> list[Any]:
        """Decode a chunk with CR line ends as the same chunk with LF ones."""
        events = self._feed(chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), frames)
        if chunk[-1] == 13:  # an LF starting the next chunk ends no line
            self._skip_lf = self._special = True
        return events

    def _feed_in_event(self, chunk: bytes, frames: bool) -> list[Any]:
        """Decode a chunk (LF only) when an event is in progress.

        _pending is then one unfinished line.  The lines up to the first blank line go
        the general way; the rest, if any, starts with no event in progress.
        """
        if not self._pending and chunk[0] == 10:  # b"\n"
            blank = 0
        else:
            blank = chunk.find(b"\n\n") + 1
            if not blank:
                return self._feed_lines(chunk)
        events: list[Any] = self._feed_lines(chunk[: blank + 1])
        if blank + 1 == len(chunk) or self._error is not None:
            return events
        if not events:
            return self._feed(chunk[blank + 1 :], frames)
        try:
            events += self._feed(chunk[blank + 1 :], frames)
        except APIResponseValidationError:
            pass  # sticky: the next call raises it, once these events are out
        return events

    def _keep(self, chunk: bytes, size: int) -> list[ServerSentEvent]:
        """No event in progress, and none completes: keep the bytes raw if that is cheap.

        ``size``: the bytes pending with ``chunk``.
        """
        end = chunk.rfind(b"\n")
        if end < 0:  # the unfinished line grows
            if len(chunk) > self._room:
                self._fail(self._line_message())
            self._pending += chunk
            self._room -= len(chunk)
            return []
        if size <= _RAW_LIMIT and size <= self._third:
            pending = self._pending
            start = pending.rfind(b"\n") + 1  # where the new complete lines start
            pending += chunk
            self._room = self._max_size - (len(chunk) - 1 - end)
            if _STATEFUL.search(pending, start, size - len(chunk) + end + 1):
                self._flush()
            return []
        return self._flush_then_lines(chunk)

    @staticmethod
    def _name(raw: bytes) -> str:
        """Decode a fast-path event name, remembering it if there is room."""
        name = raw.decode("utf-8", "replace")
        if len(_NAMES) < _NAMES_MAX and len(raw) <= _NAME_MAX_LEN:
            _NAMES[raw] = name
        return name

    def _flush(self) -> None:
        """Interpret the complete lines kept raw; _pending keeps the unfinished line."""
        pending = self._pending
        last = pending.rfind(b"\n")
        if last >= 0:
            # No blank line after a line, at most max_size // 3 bytes: no event, no error.
            lines = pending[:last].decode("utf-8", "replace").split("\n")
            del pending[: last + 1]
            self._run(lines)

    def _flush_then_lines(self, chunk: bytes) -> list[ServerSentEvent]:
        """Interpret the complete lines kept raw, then take ``chunk`` the general way."""
        self._flush()
        return self._feed_lines(chunk)

    def _feed_lines(self, chunk: bytes) -> list[ServerSentEvent]:
        """The general path for a chunk (without CR), line by line; _pending has no line end."""
        size = len(chunk)
        end = size - 1 if chunk[-1] == 10 else chunk.rfind(b"\n")  # 10: b"\n"
        if end < 0:
            if size > self._room:
                self._fail(self._line_message())
            self._pending += chunk
            self._room -= size
            return []
        if size > self._room:
            return self._feed_checked(chunk)
        if self._pending or end != size - 1:
            chunk = self._take_lines(chunk, end)
        lines = chunk.decode("utf-8", "replace").split("\n")
        lines.pop()  # the empty string after the last line end
        return self._run(lines)

    def _prepare(self, chunk: bytes) -> bytes:
        """Handle the rare states before a chunk is decoded: errors, BOM, split CRLF."""
        if self._error is not None:
            self._raise()
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")
        if self._at_start:
            buf = self._start_buf + chunk
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                self._start_buf = buf
                return b""
            self._at_start = False
            self._start_buf = b""
            chunk = buf[len(_BOM) :] if buf.startswith(_BOM) else buf
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 10:  # b"\n"
                chunk = chunk[1:]
        self._special = self._skip_lf
        return chunk

    def _take_lines(self, chunk: bytes, end: int) -> bytes:
        """Return the complete lines (pending bytes first), keeping the rest pending."""
        self._pending += chunk[: end + 1]
        region = bytes(self._pending)
        if end == len(chunk) - 1:
            self._pending = bytearray()
            self._room = self._max_size
        else:
            self._pending = bytearray(chunk[end + 1 :])
            self._room = self._max_size - (len(chunk) - end - 1)
        return region

    def _run(self, lines: list[str]) -> list[ServerSentEvent]:
        """Interpret complete lines (without line ends); return the events dispatched."""
        events: list[ServerSentEvent] = []
        append = events.append
        event = self._event
        data = self._data
        spill = self._spill
        block_retry = self._block_retry
        last_id = self.last_event_id
        for line in lines:
            if not line:
                if data or spill is not None:
                    if spill is None:
                        text = "\n".join(data)
                    else:
                        spilled = spill.decode("utf-8", "surrogatepass")
                        text = spilled + "\n".join(data) if data else spilled[:-1]
                        spill = self._spill = None
                    if len(text) > self._quarter and _utf8_len(text) > self._max_size:
                        self._error = self._data_message()
                        self._special = True
                        break
                    append(ServerSentEvent(event, text, last_id, block_retry))
                    data = []
                event = None
                block_retry = None
            elif line[:6] == "data: ":
                data.append(line[6:])
            elif line[:7] == "event: ":
                event = line[7:]
            elif line[0] == ":":
                continue
            else:
                field, _, value = line.partition(":")
                if value.startswith(" "):
                    value = value[1:]
                if field == "data":
                    data.append(value)
                elif field == "event":
                    event = value
                elif field == "id":
                    if "\0" not in value:
                        last_id = value
                elif field == "retry" and value.isascii() and value.isdigit():
                    try:
                        block_retry = self.retry = int(value)
                    except ValueError:  # more digits than int() accepts: ignore it
                        pass
        self._event = event
        self._block_retry = block_retry
        self.last_event_id = last_id
        self._data = data
        if data and self._error is None:
            self._check_pending_data()
        if self._error is not None:
            self._drop_buffers()
            if not events:
                self._raise()
        return events

    def _check_pending_data(self) -> None:
        """Check the data of the unfinished event against max_size, counting new lines only."""
        if self._counted_list is not self._data:
            self._counted_list = self._data
            self._counted = self._counted_size = 0
        size = self._counted_size
        for value in self._data[self._counted :]:
            size += _utf8_len(value) + 1
        self._counted_size = size
        if size - 1 > self._max_size:
            self._error = self._data_message()
            self._special = True
            return
        # Many small lines would cost many times their size as str objects in a list:
        # move them into one buffer, so memory stays close to the data itself.
        if self._spill is None:
            self._spill = bytearray()
        self._spill += "\n".join(self._data).encode("utf-8", "surrogatepass")
        self._spill += b"\n"
        self._data.clear()
        self._counted = 0

    def _feed_checked(self, chunk: bytes) -> list[ServerSentEvent]:
        """Like feed's main path, for chunks long enough to hold an oversized line."""
        self._pending += chunk
        region = bytes(self._pending)
        self._pending = bytearray()
        self._room = self._max_size
        raws = region.split(b"\n")
        tail = raws.pop()
        for index, raw in enumerate(raws):
            if len(raw) > self._max_size:
                del raws[index:]
                self._error = self._line_message()
                self._special = True
                break
        else:
            if len(tail) > self._max_size:
                self._error = self._line_message()
                self._special = True
            elif tail:
                self._pending += tail
                self._room = self._max_size - len(tail)
        return self._run([raw.decode("utf-8", "replace") for raw in raws])

    def _line_message(self) -> str:
        return f"an SSE line is longer than the limit of {self._max_size} bytes (max_size)"

    def _data_message(self) -> str:
        return f"an SSE event's data is longer than the limit of {self._max_size} bytes (max_size)"

    def _fail(self, message: str) -> None:
        self._error = message
        self._special = True
        self._drop_buffers()
        self._raise()

    def _drop_buffers(self) -> None:
        self._pending = bytearray()
        self._room = self._max_size
        self._data = []
        self._counted_list = None
        self._spill = None

    def _raise(self) -> None:
        raise APIResponseValidationError(str(self._error))
