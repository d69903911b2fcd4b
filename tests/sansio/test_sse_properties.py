"""Property tests for triostream.sse: chunking never matters, and a slow reference agrees."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from triostream._exceptions import APIError, APIResponseValidationError
from triostream._wire import decode_sse_events
from triostream.sse import ServerSentEvent, SSEDecoder
from triostream.types import RawMessageStreamEvent

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


def reference(
    stream: bytes, max_size: int = 1 << 30, *, close: bool = True
) -> tuple[list[ServerSentEvent], bool]:
    """A direct, whole-input transcription of the rules; returns (events, raised).

    With ``close=False``: what the complete lines of ``stream`` dispatch, as if
    more input were still to come.
    """
    if stream.startswith(_BOM):
        stream = stream[3:]
    lines = _LINE_END.split(stream)
    last = lines.pop()
    if close:
        if last:
            lines.append(last)
        lines.append(b"")  # close() dispatches an event that lacks its blank line
    events: list[ServerSentEvent] = []
    event: str | None = None
    data: list[str] = []
    retry: int | None = None
    last_id: str | None = None
    for raw in lines:
        if len(raw) > max_size:
            return events, True
        line = raw.decode("utf-8", "replace")
        if not line:
            if data:
                events.append(ServerSentEvent(event, "\n".join(data), last_id, retry))
            event, data, retry = None, [], None
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
            if len("\n".join(data).encode()) > max_size:
                return events, True
        elif field == "event":
            event = value
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events, False


def run(chunks: Sequence[bytes], max_size: int = 1 << 30) -> tuple[list[ServerSentEvent], bool]:
    """Feed the chunks then close; return (events, raised), stopping at the first error."""
    decoder = SSEDecoder(max_size=max_size)
    events: list[ServerSentEvent] = []
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except APIResponseValidationError:
        return events, True
    return events, False


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(stream) + 1) for p in points), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


_TOKENS = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\n\n",
    b":",
    b" ",
    b"data",
    b"data: ",
    b"event",
    b"id",
    b"retry",
    b"x",
    b"42",
    _BOM,
    b"\xef",
    b"\xbb",
    b"\xc3",
    b"\xa9",
    b"\xe2\x80\xa8",  # U+2028
    b"\xc2\x85",  # NEL
    b"\x00",
    b"\xff",
]

streams = st.one_of(
    st.lists(st.sampled_from(_TOKENS), max_size=60).map(b"".join),
    st.binary(max_size=120),
)
cut_points = st.lists(st.integers(min_value=0, max_value=10_000), max_size=12)


@settings(max_examples=200, deadline=None)
@given(stream=streams, points=cut_points)
def test_arbitrary_bytes_do_not_depend_on_chunking(stream: bytes, points: list[int]) -> None:
    whole = run([stream])
    assert not whole[1]
    assert whole == reference(stream)
    assert run(cut(stream, points)) == whole
    assert run([stream[i : i + 1] for i in range(len(stream))]) == whole


@settings(max_examples=200, deadline=None)
@given(stream=streams, points=cut_points, max_size=st.integers(min_value=1, max_value=24))
def test_limits_do_not_depend_on_chunking(stream: bytes, points: list[int], max_size: int) -> None:
    whole = run([stream], max_size)
    assert whole == reference(stream, max_size)
    assert run(cut(stream, points), max_size) == whole
    assert run([stream[i : i + 1] for i in range(len(stream))], max_size) == whole


_special = st.sampled_from(["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\ufeff", ":", " ", "\x00"])
_value = st.lists(
    st.one_of(
        _special,
        st.text(
            alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
            max_size=8,
        ),
    ),
    max_size=4,
).map("".join)
_name = st.one_of(st.sampled_from(["content_block_delta", "message_stop", "ping"]), _value)


@st.composite
def realistic(draw: st.DrawFn) -> tuple[bytes, list[ServerSentEvent]]:
    """An event stream built from events, with random line ends; and the events it holds."""
    eol = st.sampled_from(["\n", "\r", "\r\n"])
    # A blank line "\n" right after a line ended by "\r" would make one CRLF line end.
    blank_after_cr = st.sampled_from(["\r", "\r\n"])
    out: list[str] = []
    expected: list[ServerSentEvent] = []
    last_id: str | None = None
    count = draw(st.integers(min_value=0, max_value=6))
    for index in range(count):
        block: list[str] = []
        if draw(st.booleans()):
            block.append(": " + draw(_value))
        name = draw(st.none() | _name)
        if name is not None:
            block.append("event: " + name)
        event_id = draw(st.none() | _value.filter(lambda v: "\0" not in v))
        if event_id is not None:
            block.append("id: " + event_id)
            last_id = event_id
        retry = draw(st.none() | st.integers(min_value=0, max_value=10**12))
        if retry is not None:
            block.append(f"retry: {retry}")
        draw(st.randoms()).shuffle(block)
        data = draw(st.lists(_value, max_size=3))
        at = draw(st.integers(min_value=0, max_value=len(block)))
        block[at:at] = ["data: " + value for value in data]
        text = "".join(line + draw(eol) for line in block)
        if index == count - 1 and text and draw(st.booleans()):
            if draw(st.booleans()):
                text = text.rstrip("\r\n")  # not even a line end after the last line
        elif text.endswith("\r") or (not text and out and out[-1].endswith("\r")):
            text += draw(blank_after_cr)
        else:
            text += draw(eol)
        out.append(text)
        if data:
            expected.append(ServerSentEvent(name, "\n".join(data), last_id, retry))
    prefix = _BOM.decode() if draw(st.booleans()) else ""
    return (prefix + "".join(out)).encode(), expected


@settings(max_examples=200, deadline=None)
@given(case=realistic(), points=cut_points)
def test_realistic_streams(case: tuple[bytes, list[ServerSentEvent]], points: list[int]) -> None:
    stream, expected = case
    assert run([stream]) == (expected, False)
    assert reference(stream) == (expected, False)
    assert run(cut(stream, points)) == (expected, False)


def check_incremental(stream: bytes, points: list[int]) -> None:
    """After every feed, exactly the events that the bytes so far complete are out."""
    decoder = SSEDecoder()
    fed = b""
    seen: list[ServerSentEvent] = []
    for chunk in cut(stream, points):
        seen += decoder.feed(chunk)
        fed += chunk
        assert seen == reference(fed, close=False)[0]
    assert seen + decoder.close() == reference(stream)[0]


@settings(max_examples=100, deadline=None)
@given(case=realistic(), points=cut_points)
def test_realistic_events_come_out_as_soon_as_complete(
    case: tuple[bytes, list[ServerSentEvent]], points: list[int]
) -> None:
    check_incremental(case[0], points)


@settings(max_examples=100, deadline=None)
@given(stream=streams, points=cut_points)
def test_arbitrary_events_come_out_as_soon_as_complete(stream: bytes, points: list[int]) -> None:
    check_incremental(stream, points)


# -- the fast path: feed_frames() and feed() agree ------------------------------------------

_TEXT = st.lists(
    st.sampled_from(
        [
            b"a",
            b" ",
            b"\\n",
            b"\xc3\xa9",
            b"\xe2\x80\xa8",
            b"\xff",
            b"\xc3",
            b"\xe2\x82",
            b"\xff" * 40,
        ]
    ),
    max_size=5,
).map(b"".join)
"""Bytes for a JSON string: UTF-8, escapes, and bytes that are not UTF-8 (each of which
counts 3 bytes towards max_size once it is U+FFFD)."""

_ODD_LINES = [
    b": comment",
    b"id: 1",
    b"id: 2",
    b"retry: 5",
    b"event: other",
    b"foo: bar",
    b"xxevent: a",
    b"data:{}",
    b"",
]
"""Lines the fast path does not take (some make the event's data invalid JSON)."""


@st.composite
def api_streams(draw: st.DrawFn) -> tuple[bytes, int]:
    """Events framed as the API frames them, with now and then something else; a max_size."""
    eols = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n"])
    out = [_BOM] if draw(st.integers(0, 9)) == 0 else []
    for _ in range(draw(st.integers(min_value=0, max_value=8))):
        kind = draw(st.sampled_from(["delta", "delta", "delta", "ping", "future", "split", "bad"]))
        text = draw(_TEXT)
        if kind == "delta":
            data = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
            data += text + b'"}}'
        elif kind == "ping":
            data = b'{"type":"ping"}'
        elif kind == "future":
            data = b'{"type":"future","x":"' + text + b'"}'
        elif kind == "split":  # two data lines, joined with "\n": still JSON
            data = b'{"type":"future",\ndata: "x":"' + text + b'"}'
            kind = "future"
        else:
            data = b'{"type":"content_block_delta","index":' + text
        eol = draw(eols)
        lines = [
            b"event: " + (b"content_block_delta" if kind in ("delta", "bad") else kind.encode())
        ]
        lines += [b"data: " + data, b""]
        if draw(st.integers(0, 4)) == 0:
            lines.insert(draw(st.integers(0, 2)), draw(st.sampled_from(_ODD_LINES)))
        elif draw(st.integers(0, 9)) == 0:
            lines[0] = b"x" + lines[0]  # the field "xevent": no event line
        out.append(b"".join(line.replace(b"\n", eol) + eol for line in lines))
    unfinished = draw(st.booleans())
    if out and unfinished:
        out[-1] = out[-1].rstrip(b"\r\n")  # the body stops before the end of the last event
    max_size = draw(st.sampled_from([1 << 20, 1 << 20, 300, 60]))
    return b"".join(out), max_size


def decode_calls(
    chunks: Sequence[bytes], max_size: int, frames: bool
) -> tuple[list[object], list[tuple[str | None, str, int | None]]]:
    """Feed, then close, decoding each call's items as the streams do, until an SSE error.

    Returns what each call decoded (its raw events, and the error that stopped it if
    any), and all the SSE items as (event, data, retry), raw bytes decoded as feed() would.
    """
    decoder = SSEDecoder(max_size=max_size)
    decoded: list[object] = []
    items: list[tuple[str | None, str, int | None]] = []
    for chunk in [*chunks, None]:
        try:
            if chunk is None:
                got: list[ServerSentEvent | tuple[bytes, bytes]] = list(decoder.close())
            else:
                got = decoder.feed_frames(chunk) if frames else list(decoder.feed(chunk))
        except APIResponseValidationError as exc:
            decoded.append(("SSE error", str(exc)))
            break
        items += [
            (i[0].decode("utf-8", "replace"), i[1].decode("utf-8", "replace"), None)
            if isinstance(i, tuple)
            else (i.event, i.data, i.retry)
            for i in got
        ]
        out: list[RawMessageStreamEvent] = []
        try:
            decode_sse_events(got, out, at_end=chunk is None)
        except APIError as exc:
            decoded.append((out, type(exc), str(exc), getattr(exc, "body", None)))
        else:
            decoded.append(out)
    return decoded, items


@settings(max_examples=300, deadline=None)
@given(case=api_streams(), points=cut_points)
def test_feed_frames_decodes_as_feed_does(case: tuple[bytes, int], points: list[int]) -> None:
    stream, max_size = case
    for chunks in (cut(stream, points), [stream], [stream[i : i + 1] for i in range(len(stream))]):
        by_feed = decode_calls(chunks, max_size, frames=False)
        assert decode_calls(chunks, max_size, frames=True) == by_feed
    events, raised = run(cut(stream, points), max_size)
    assert (events, raised) == reference(stream, max_size)
    assert by_feed[1] == [(e.event, e.data, e.retry) for e in events]
