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
more than ``max_size`` plus one chunk of an event's data.  The work done is
linear in the input, however it is chunked.

This module imports neither trio nor httpx.
"""

from __future__ import annotations

import msgspec

from triostream._exceptions import APIResponseValidationError

__all__ = ["SSEDecoder", "ServerSentEvent"]

_BOM = b"\xef\xbb\xbf"


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
        "_skip_lf",
        "_special",
        "_spill",
        "_start_buf",
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
        # Bytes of the current, unfinished line (no line end in them); max_size minus their length.
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
        if self._special:
            chunk = self._prepare(chunk)
        if 13 in chunk:  # b"\r"
            if chunk[-1] == 13:
                self._skip_lf = self._special = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        size = len(chunk)
        if not size:
            return []
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
        if len(last) > self._max_size:
            self._fail(self._line_message())
        if last:
            lines.insert(0, last.decode("utf-8", "replace"))
        return self._run(lines)

    # -- internals ---------------------------------------------------------------

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
