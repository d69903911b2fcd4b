"""Tests for triostream.sse: the WHATWG event-stream rules, close(), limits, fixtures."""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import pytest

import triostream
from tests.conftest import RECORDED_FILES
from tests.sansio.test_sse_properties import reference
from tests.streams import PING, sse_encode, text_stream
from triostream._exceptions import APIResponseValidationError
from triostream._wire import decode_sse_events
from triostream.sse import ServerSentEvent, SSEDecoder

FIXTURES = Path("/work/shared/fixtures")
FIXTURE_FILES = [
    "basic_response.txt",
    "incomplete_partial_json_response.txt",
    "message_delta_fields_response.txt",
    "refusal_response.txt",
    "tool_use_invalid_json_response.txt",
    "tool_use_response.txt",
]


def E(
    data: str, event: str | None = None, id: str | None = None, retry: int | None = None
) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=id, retry=retry)


def decode(chunks: Iterable[bytes], **kwargs: int) -> list[ServerSentEvent]:
    decoder = SSEDecoder(**kwargs)
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def check(data: bytes, expected: list[ServerSentEvent], *, complete: bool = True) -> None:
    """Feed ``data`` whole, one byte at a time, and followed by more input.

    ``complete`` means every expected event has its closing blank line in
    ``data``, so feed() alone (without close()) must return them all.
    """
    assert decode([data]) == expected
    assert decode(one_byte_at_a_time(data)) == expected
    decoder = SSEDecoder()
    if complete:
        assert decoder.feed(data) == expected
        extra = decoder.feed(b": trailing comment\r\ndata: extra\r\n\r\n")
        assert extra == [E("extra", id=decoder.last_event_id)]
        assert decoder.close() == []
    else:
        assert decoder.feed(data) + decoder.close() == expected


# -- line ends ------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_each_line_end(eol: bytes) -> None:
    data = b"event: a" + eol + b"data: 1" + eol + eol + b"data: 2" + eol + b"data: 3" + eol + eol
    check(data, [E("1", "a"), E("2\n3")])


def test_mixed_line_ends() -> None:
    data = b"event: a\rdata: 1\r\ndata: 2\n\r\nevent: b\r\rdata: 3\n\r"
    # "event: b" is reset by the blank line right after it.
    check(data, [E("1\n2", "a"), E("3")])


def test_cr_lf_is_one_line_end_but_lf_cr_is_two() -> None:
    check(b"data: x\r\n\r\n", [E("x")])
    # LF then CR: the CR is a blank line that dispatches.
    check(b"data: x\n\rdata: y\n\n", [E("x"), E("y")])


def test_crlf_split_across_feeds_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The LF only completes the CRLF: no blank line, so no dispatch yet.
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\ndata: c\r\n\r") == [E("a\nb\nc")]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: d\r\n\r\n") == [E("d")]


def test_cr_at_end_of_feed_dispatches_immediately() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    # This CR ends an empty line: the event must come out now, not wait for a possible LF.
    assert decoder.feed(b"\r") == [E("a")]
    assert decoder.feed(b"\ndata: b\n\n") == [E("b")]


def test_empty_feeds_do_not_break_a_split_crlf() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\r\n") == [E("a")]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e"])
def test_only_cr_and_lf_end_lines(separator: str) -> None:
    data = f"data: a{separator}b\nevent: x{separator}y\n\n".encode()
    check(data, [E(f"a{separator}b", f"x{separator}y")])


# -- BOM ------------------------------------------------------------------------


def test_bom_is_stripped_at_start() -> None:
    check(b"\xef\xbb\xbfdata: x\n\n", [E("x")])
    # Without the strip, the first field would be "\ufeffdata" and be ignored.
    check(b"\xef\xbb\xbfevent: e\ndata: x\n\n", [E("x", "e")])


@pytest.mark.parametrize(
    "chunks",
    [
        [b"\xef", b"\xbb", b"\xbfdata: x\n\n"],
        [b"\xef\xbb", b"\xbf", b"data: x\n\n"],
        [b"\xef", b"", b"\xbb\xbf", b"data: x\n\n"],
    ],
)
def test_split_bom_is_stripped(chunks: list[bytes]) -> None:
    assert decode(chunks) == [E("x")]


def test_second_bom_is_not_stripped() -> None:
    data = b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n"
    # The second BOM becomes part of the field name "\ufeffdata", an unknown field.
    check(data, [E("y")])
    check(b"\xef\xbb\xbfdata: x\n\n\xef\xbb\xbfdata: y\n\n", [E("x")])
    check(b"data: \xef\xbb\xbfx\n\n", [E("\ufeffx")])


def test_bom_only_at_the_very_start() -> None:
    check(b"\n\xef\xbb\xbfdata: x\n\n", [])


def test_partial_bom_then_other_bytes() -> None:
    assert decode([b"\xef", b"\xbbdata: x\n\n"]) == []  # "\ufffd..." field, ignored
    assert decode([b"\xef\xbb", b"\n", b"data: x\n\n"]) == [E("x")]
    assert decode([b"\xef"]) == []
    assert decode([b"\xef\xbb"]) == []


# -- fields ---------------------------------------------------------------------


def test_comments_are_ignored() -> None:
    check(b": hello\n:\ndata: x\n: data: y\n\n", [E("x")])


def test_only_a_comment_line_between_events() -> None:
    check(b"data: a\n\n: keep-alive\n\ndata: b\n\n", [E("a"), E("b")])


def test_one_leading_space_is_removed() -> None:
    check(
        b"data:x\n\ndata: x\n\ndata:  x\n\ndata:\tx\n\nevent:  e\ndata: y \n\n",
        [E("x"), E("x"), E(" x"), E("\tx"), E("y ", " e")],
    )


def test_colon_splits_at_the_first_colon() -> None:
    check(b"data: a: b:c\n\n", [E("a: b:c")])


def test_field_without_colon_has_empty_value() -> None:
    check(b"data\n\n", [E("")])
    check(b"data\ndata\n\n", [E("\n")])
    check(b"event\ndata: x\n\n", [E("x", "")])


def test_multi_line_data_joined_with_lf() -> None:
    check(b"data: a\ndata:\ndata: c\n\n", [E("a\n\nc")])


def test_empty_data_is_dispatched() -> None:
    check(b"data:\n\n", [E("")])
    check(b"data: \n\n", [E("")])
    check(b"event: e\ndata\n\n", [E("", "e")])


def test_events_without_data_are_not_dispatched_but_reset_the_type() -> None:
    check(b"event: a\n\ndata: x\n\n", [E("x")])
    check(b"event: a\nid: 1\nretry: 5\n\n\n\n", [])
    check(b"\n\n\n", [])


def test_last_event_type_wins() -> None:
    check(b"event: a\nevent: b\ndata: x\n\n", [E("x", "b")])


def test_field_names_are_case_sensitive_and_exact() -> None:
    check(b"Data: x\nDATA: y\ndata : z\n data: w\nevent : e\n\n", [])


def test_unknown_fields_are_ignored() -> None:
    check(b"foo: bar\nevent: e\nbaz\ndata: x\nqux: 1\n\n", [E("x", "e")])


def test_id_persists_across_events() -> None:
    data = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\nid\ndata: d\n\n"
    # "id: 2" in a block without data still sets the id; "id" alone sets it to "".
    check(data, [E("a", id="1"), E("b", id="1"), E("c", id="2"), E("d", id="")])
    decoder = SSEDecoder()
    assert decoder.last_event_id is None
    decoder.feed(data)
    assert decoder.last_event_id == ""


def test_id_with_nul_is_ignored() -> None:
    check(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", [E("a", id="1"), E("b", id="1")])
    check(b"id: \x00\ndata: a\n\n", [E("a")])


def test_id_set_after_data_in_same_block_applies_to_that_event() -> None:
    check(b"data: a\nid: 7\n\n", [E("a", id="7")])


def test_retry_only_ascii_digits() -> None:
    data = (
        b"retry: 1000\ndata: a\n\n"
        b"data: b\n\n"
        b"retry: 10x\ndata: c\n\n"
        b"retry: -5\ndata: d\n\n"
        b"retry:\ndata: e\n\n"
        b"retry:  7\ndata: f\n\n"
        b"retry: \xd9\xa3\ndata: g\n\n"  # ARABIC-INDIC DIGIT THREE: a digit, not ASCII
        b"retry: 0042\nretry: x\ndata: h\n\n"
        b"retry: 1.5\ndata: i\n\n"
    )
    expected = [
        E("a", retry=1000),
        E("b"),
        E("c"),
        E("d"),
        E("e"),
        E("f"),
        E("g"),
        E("h", retry=42),
        E("i"),
    ]
    check(data, expected)
    decoder = SSEDecoder()
    assert decoder.retry is None
    decoder.feed(data)
    assert decoder.retry == 42


def test_retry_in_a_block_without_data_updates_decoder_only() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 300\n\ndata: x\n\n") == [E("x")]
    assert decoder.retry == 300


def test_retry_with_too_many_digits_is_ignored() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: " + b"9" * 5000 + b"\ndata: x\n\n") == [E("x")]
    assert decoder.retry is None


# -- UTF-8 ----------------------------------------------------------------------


def test_invalid_utf8_is_replaced() -> None:
    check(b"data: a\xffb\xc3\n\n", [E("a\ufffdb\ufffd")])
    check(b"event: \xe2\x82\ndata: x\n\n", [E("x", "\ufffd")])
    check(b"\xffdata: x\n\ndata: y\n\n", [E("y")])


def test_multi_byte_utf8_split_across_feeds() -> None:
    text = "data: h\u00e9llo \u20ac \U0001f600 \u2028 end\n\n"
    data = text.encode()
    expected = [E("h\u00e9llo \u20ac \U0001f600 \u2028 end")]
    for cut in range(len(data) + 1):
        assert decode([data[:cut], data[cut:]]) == expected
    check(data, expected)


def test_invalid_utf8_at_line_end_does_not_swallow_the_line_end() -> None:
    check(b"data: \xe2\x82\ndata: x\n\n", [E("\ufffd\nx")])


# -- dispatch timing and close() ------------------------------------------------


def test_events_come_from_the_feed_that_completes_them() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n") == []
    assert decoder.feed(b"\nevent: b\ndata: 2\n\ndata: 3") == [E("1", "a"), E("2", "b")]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [E("3")]
    assert decoder.close() == []


def test_close_dispatches_an_event_without_its_blank_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n') == []
    assert decoder.close() == [E('{"type":"message_stop"}', "message_stop")]


def test_close_processes_a_last_line_without_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'event: message_stop\ndata: {"type":"message_stop"}') == []
    assert decoder.close() == [E('{"type":"message_stop"}', "message_stop")]


def test_close_processes_a_last_non_data_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\nid: 9") == []
    assert decoder.close() == [E("x", id="9")]
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n: comment") == []
    assert decoder.close() == [E("x")]


def test_close_after_a_cr_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.close() == [E("x")]


def test_close_with_nothing_pending() -> None:
    assert SSEDecoder().close() == []
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\n") == [E("x")]
    assert decoder.close() == []
    decoder = SSEDecoder()
    assert decoder.feed(b"event: e\nid: 1\nretry: 5\n") == []
    assert decoder.close() == []
    assert decoder.last_event_id == "1"
    assert decoder.retry == 5


def test_close_is_idempotent_and_feed_after_close_raises() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: x")
    assert decoder.close() == [E("x")]
    assert decoder.close() == []
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"data: y\n\n")
    with pytest.raises(RuntimeError, match="after close"):
        decoder.feed(b"")


# -- size limit -----------------------------------------------------------------


def test_max_size_must_be_positive() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_size"):
            SSEDecoder(max_size=bad)
    assert SSEDecoder(max_size=5).max_size == 5
    assert SSEDecoder().max_size == 16 * 1024 * 1024


def feed_until_error(
    chunks: Iterable[bytes], max_size: int
) -> tuple[list[ServerSentEvent], str | None]:
    decoder = SSEDecoder(max_size=max_size)
    events: list[ServerSentEvent] = []
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except APIResponseValidationError as exc:
        return events, str(exc)
    return events, None


def test_line_at_the_limit_is_accepted() -> None:
    line = b"data: " + b"x" * 10  # 16 bytes
    assert decode([line + b"\n\n"], max_size=16) == [E("x" * 10)]
    assert decode(one_byte_at_a_time(line + b"\r\n\r\n"), max_size=16) == [E("x" * 10)]
    assert decode([line], max_size=16) == [E("x" * 10)]


@pytest.mark.parametrize("line", [b"data: " + b"x" * 11, b":" + b"c" * 16, b"y" * 17])
def test_line_over_the_limit_raises(line: bytes) -> None:
    data = b"data: a\n\n" + line + b"\ndata: b\n\n"
    for chunks in ([data], one_byte_at_a_time(data), [data[:5], data[5:]]):
        events, error = feed_until_error(chunks, max_size=16)
        assert events == [E("a")]
        assert error is not None
        assert "16 bytes" in error
        assert "line" in error


def test_unterminated_line_over_the_limit_raises_without_buffering_past_it() -> None:
    decoder = SSEDecoder(max_size=100)
    decoder.feed(b"data: ")
    for _ in range(94):
        assert decoder.feed(b"x") == []
    with pytest.raises(APIResponseValidationError, match="100 bytes"):
        decoder.feed(b"x")  # byte 101 of the line


def test_big_chunk_without_line_end_raises_at_once() -> None:
    decoder = SSEDecoder(max_size=1000)
    with pytest.raises(APIResponseValidationError, match="1000 bytes"):
        decoder.feed(b"data: " + b"x" * 2000)


def test_event_data_over_the_limit_raises() -> None:
    data = b"data: a\n\n" + b"data: 12345678\n" * 3 + b"\ndata: b\n\n"
    # 3 lines of 8 joined with LF: 26 bytes > 20, while each line is within the limit.
    for chunks in ([data], one_byte_at_a_time(data)):
        events, error = feed_until_error(chunks, max_size=20)
        assert events == [E("a")]
        assert error is not None
        assert "20 bytes" in error
        assert "data" in error


def test_event_data_at_the_limit_is_accepted() -> None:
    data = b"data: 1234567\n" * 2 + b"data: 1234\n\n"  # 7 + 1 + 7 + 1 + 4 = 20
    assert decode([data], max_size=20) == [E("1234567\n1234567\n1234")]
    assert decode(one_byte_at_a_time(data), max_size=20) == [E("1234567\n1234567\n1234")]


def test_event_data_limit_counts_utf8_bytes() -> None:
    data = ("data: " + "\u00e9" * 4 + "\n") * 2 + "\n"  # 8 + 1 + 8 = 17 bytes, 9 characters
    expected = [E("\u00e9" * 4 + "\n" + "\u00e9" * 4)]
    assert decode([data.encode()], max_size=17) == expected
    for chunks in ([data.encode()], one_byte_at_a_time(data.encode())):
        events, error = feed_until_error(chunks, max_size=16)
        assert events == []
        assert error is not None
        assert "16 bytes" in error


def test_event_data_over_the_limit_without_blank_line_raises() -> None:
    decoder = SSEDecoder(max_size=20)
    decoder.feed(b"data: 1234567890\n")
    with pytest.raises(APIResponseValidationError, match="20 bytes"):
        decoder.feed(b"data: 1234567890\n")  # 21 bytes of data, still no blank line


def test_error_is_sticky() -> None:
    decoder = SSEDecoder(max_size=8)
    with pytest.raises(APIResponseValidationError):
        decoder.feed(b"data: 12345\n")
    with pytest.raises(APIResponseValidationError, match="8 bytes"):
        decoder.feed(b"data: x\n\n")
    with pytest.raises(APIResponseValidationError, match="8 bytes"):
        decoder.feed(b"")
    with pytest.raises(APIResponseValidationError, match="8 bytes"):
        decoder.close()
    with pytest.raises(APIResponseValidationError):
        decoder.close()


def test_events_before_the_error_in_the_same_feed_are_returned_then_it_raises() -> None:
    decoder = SSEDecoder(max_size=8)
    assert decoder.feed(b"data: a\n\ndata: b\n\ndata: 123456789\n\ndata: c\n\n") == [
        E("a"),
        E("b"),
    ]
    with pytest.raises(APIResponseValidationError):
        decoder.feed(b"data: d\n\n")
    decoder = SSEDecoder(max_size=8)
    assert decoder.feed(b"data: a\n\n" + b"x" * 20) == [E("a")]
    with pytest.raises(APIResponseValidationError):
        decoder.close()


# -- linear time ----------------------------------------------------------------


def _best_time(data: bytes, chunk_size: int, runs: int = 5) -> float:
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        gc.disable()  # collector pauses depend on the whole session's heap, not on us
        try:
            start = time.perf_counter()
            events = decode(chunks)
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
        assert len(events) == 1
    return best


# Sizes 7-8x apart: linear costs about that much more, quadratic about 50-64x.  The bounds
# leave room for a busy machine (timings are shared-machine noisy) but not for a square.


def test_big_event_in_small_chunks_is_linear() -> None:
    def body(kilobytes: int) -> bytes:
        return b"event: big\ndata: " + b"a" * (kilobytes * 1024) + b"\n\n"

    # Both larger than the CPU caches, so a linear decoder's cost per byte is the same.
    small, large = _best_time(body(2048), 100), _best_time(body(14336), 100)
    assert large / small < 21, (small, large)


def test_many_data_lines_in_small_chunks_is_linear() -> None:
    def body(lines: int) -> bytes:
        return b"event: big\r\n" + b"data: abc\r\n" * lines + b"\r\n"

    small, large = _best_time(body(10_000), 7), _best_time(body(80_000), 7)
    assert large / small < 24, (small, large)


# -- fixtures -------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURE_FILES)
@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_fixtures(name: str, eol: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    expected_names = re.findall(rb"^event: (.*)$", raw, re.MULTILINE)
    data = raw.replace(b"\n", eol.encode())
    for chunks in (
        [data],
        one_byte_at_a_time(data),
        [data[i : i + 17] for i in range(0, 9999, 17)],
    ):
        events = decode(chunks)
        assert [e.event.encode() for e in events if e.event is not None] == expected_names
        assert len(events) == len(expected_names)
        assert events[0].event == "message_start"
        assert events[-1].event == "message_stop"
        for event in events:
            payload = json.loads(event.data)
            assert payload["type"] == event.event
            assert event.id is None
            assert event.retry is None


def test_basic_fixture_contents() -> None:
    events = decode([(FIXTURES / "basic_response.txt").read_bytes()])
    deltas = [
        json.loads(e.data)["delta"]["text"] for e in events if e.event == "content_block_delta"
    ]
    assert deltas == ["Hello", " there", "!"]
    assert events[-1] == E('{"type":"message_stop"}', "message_stop")


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixtures_match_the_official_sdk(name: str) -> None:
    streaming = pytest.importorskip("anthropic._streaming")
    raw = (FIXTURES / name).read_bytes()
    # The official decoder drops an event that lacks its closing blank line: add it.
    theirs = list(streaming.SSEDecoder().iter_bytes(iter([raw + b"\n\n"])))
    ours = decode([raw])
    assert [(e.event, e.data, e.id, e.retry) for e in ours] == [
        (e.event, e.data, e.id, e.retry) for e in theirs
    ]


# -- sans-IO ----------------------------------------------------------------------


def test_import_does_not_pull_in_trio_or_httpx() -> None:
    src = str(Path(triostream.__path__[0]).parent)
    code = (
        "import sys, triostream.sse\n"
        "bad = sorted(m for m in ('trio', 'httpx', 'httpcore', 'anyio') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": src}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# -- the fast path for the API's framing ----------------------------------------------------


def frames_as_events(
    items: list[ServerSentEvent | tuple[bytes, bytes]],
) -> list[tuple[str | None, str, int | None]]:
    """What feed_frames() returned, as (event, data, retry), raw bytes decoded as feed() would."""
    return [
        (item[0].decode("utf-8", "replace"), item[1].decode("utf-8", "replace"), None)
        if isinstance(item, tuple)
        else (item.event, item.data, item.retry)
        for item in items
    ]


def api_body(count: int) -> tuple[bytes, int]:
    """An API-framed body with ``count`` text deltas (and a ping); and its number of events."""
    events = text_stream([f"token {i} " for i in range(count)])
    assert events[2] == PING
    return sse_encode(events), len(events)


@pytest.mark.parametrize("path", RECORDED_FILES, ids=[p.stem for p in RECORDED_FILES])
@pytest.mark.parametrize("size", [1, 7, 64, 16384, None])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_fast_path_matches_the_rules_on_recorded_streams(
    path: Path, size: int | None, eol: bytes
) -> None:
    raw = path.read_bytes().replace(b"\n", eol)
    chunks = [raw] if size is None else [raw[i : i + size] for i in range(0, len(raw), size)]
    expected = reference(raw)[0]
    assert len(expected) > 3
    by_feed, by_frames = SSEDecoder(), SSEDecoder()
    events: list[ServerSentEvent] = []
    frames: list[ServerSentEvent | tuple[bytes, bytes]] = []
    for chunk in chunks:
        new = by_feed.feed(chunk)
        new_frames = by_frames.feed_frames(chunk)
        assert frames_as_events(new_frames) == [(e.event, e.data, e.retry) for e in new]
        events += new
        frames += new_frames
    tail = by_feed.close()
    assert by_frames.close() == tail
    assert events + tail == expected
    assert decode_sse_events(frames, []) + decode_sse_events(tail, [], at_end=True) == (
        decode_sse_events(events, []) + decode_sse_events(tail, [], at_end=True)
    )


@pytest.mark.parametrize("size", [1, 7, 100, 1000, 16384, None])
def test_feed_frames_takes_the_fast_path_for_an_api_stream(size: int | None) -> None:
    body, count = api_body(2000)
    chunks = [body] if size is None else [body[i : i + size] for i in range(0, len(body), size)]
    decoder = SSEDecoder()
    items = [item for chunk in chunks for item in decoder.feed_frames(chunk)]
    assert decoder.close() == []
    assert len(items) == count > 2000
    assert all(type(item) is tuple for item in items)
    assert items[2] == (b"ping", b'{"type":"ping"}')


def test_events_kept_raw_between_feeds_come_out_of_the_call_that_completes_them() -> None:
    decoder = SSEDecoder()
    assert decoder.feed_frames(b"event: a\ndata: 1\n\nevent: b\ndata: 2\n") == [(b"a", b"1")]
    assert decoder.feed_frames(b"\n") == [(b"b", b"2")]
    assert decoder.feed_frames(b"event: c\nda") == []
    assert decoder.feed_frames(b"ta: 3\n\nevent: d\ndata: 4\n\nevent") == [
        (b"c", b"3"),
        (b"d", b"4"),
    ]
    assert decoder.feed(b": x\n\n") == []  # "event" then ": x": no data, nothing to dispatch
    assert decoder.feed(b"event: e\ndata: 5\n\n") == [E("5", "e")]


def test_ids_and_retry_are_up_to_date_after_each_feed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n\nid: 7\nevent: b\n") == [E("1", "a")]
    assert decoder.last_event_id == "7"
    assert decoder.feed(b"retry: 300\ndata: 2\n") == []
    assert decoder.retry == 300
    assert decoder.feed(b"\n") == [E("2", "b", id="7", retry=300)]
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 1\n") == []
    assert decoder.last_event_id == "1"
    assert decoder.feed(b"event: a\ndata: 1\n\nid: 2\n") == [E("1", "a", id="1")]
    assert decoder.last_event_id == "2"


def test_close_dispatches_an_event_kept_raw() -> None:
    for rest in (b'data: {"type":"message_stop"}', b'data: {"type":"message_stop"}\n'):
        decoder = SSEDecoder()
        body = b'event: a\ndata: {"x":1}\n\nevent: message_stop\n' + rest
        assert decoder.feed_frames(body) == [(b"a", b'{"x":1}')]
        assert decoder.close() == [E('{"type":"message_stop"}', "message_stop")]
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n\n: c\nevent: b\n") == [E("1", "a")]
    assert decoder.close() == []


def test_an_error_after_a_blank_line_still_lets_the_events_before_it_out() -> None:
    decoder = SSEDecoder(max_size=16)
    assert decoder.feed(b"data: a\n") == []  # an event in progress
    assert decoder.feed(b"\nevent: b\ndata: " + b"y" * 20 + b"\n\n") == [E("a")]
    with pytest.raises(APIResponseValidationError, match="16 bytes"):
        decoder.feed(b"data: c\n\n")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"xevent: a\ndata: 1\n\n", [E("1")]),  # the field "xevent", not "event"
        (b"event: a\ndata: 1\n\nxevent: b\ndata: 2\n\n", [E("1", "a"), E("2")]),
        (b"event: a\ndata: 1\n\n\n", [E("1", "a")]),
        (b"event: a\ndata:1\n\n", [E("1", "a")]),
        (b"event: a\ndata: 1\ndata: 2\n\n", [E("1\n2", "a")]),
        (b"event: a\n: c\ndata: 1\n\n", [E("1", "a")]),
        (b"event: a\ndata: 1\nid: 5\n\n", [E("1", "a", id="5")]),
    ],
)
def test_only_exactly_api_framed_events_take_the_fast_path(
    body: bytes, expected: list[ServerSentEvent]
) -> None:
    assert SSEDecoder().feed(body) == expected
    items = SSEDecoder().feed_frames(body)
    assert all(type(item) is ServerSentEvent for item in items)
    assert items == expected


@pytest.mark.parametrize("odd", [1, 1000])
def test_the_fast_path_comes_back_after_other_events(odd: int) -> None:
    decoder = SSEDecoder()
    for _ in range(odd):  # the fast path is tried less and less often
        assert decoder.feed_frames(b"id: 1\nevent: a\ndata: 1\n\n") == [E("1", "a", id="1")]
    items = [decoder.feed_frames(b"event: b\ndata: 2\n\n")[0] for _ in range(200)]
    assert items[0] == E("2", "b", id="1")
    assert items[-100:] == [(b"b", b"2")] * 100


def test_data_limit_counts_replacement_characters_on_the_fast_path() -> None:
    # 25 bytes on the wire, 75 once each is U+FFFD: over the limit of 60.
    body = b"event: a\ndata: " + b"\xff" * 25 + b"\n\n"
    for method in ("feed", "feed_frames"):
        with pytest.raises(APIResponseValidationError, match="data is longer than the limit of 60"):
            getattr(SSEDecoder(max_size=60), method)(body)
    assert SSEDecoder(max_size=75).feed(body) == [E("\ufffd" * 25, "a")]


def test_invalid_utf8_in_fast_path_frames() -> None:
    body = b'event: e\xffz\ndata: {"t":"\xc3("}\n\n'
    assert SSEDecoder().feed(body) == [E('{"t":"\ufffd("}', "e\ufffdz")]
    assert SSEDecoder().feed_frames(body) == [(b"e\xffz", b'{"t":"\xc3("}')]


@pytest.mark.parametrize(
    "unit",
    [b"data: abcd\n", b"data: \xe2\x82\xac\xe2\x82\xac\n", b"x" * 4096],
    ids=["data lines", "data lines (UTF-8)", "one huge line"],
)
@pytest.mark.parametrize("first", [b"", b"event: a\ndata: {}\n\n" * 50 + b"event: b\n"])
def test_a_long_stream_without_blank_lines_in_16k_chunks_is_refused_with_bounded_memory(
    unit: bytes, first: bytes
) -> None:
    limit, size = 64 * 1024, 16384
    body = first + unit * (8 * limit // len(unit))
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    expected = "line" if b"\n" not in unit else "data"
    tracemalloc.start()
    try:
        with pytest.raises(APIResponseValidationError, match=expected):
            decode(chunks, max_size=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # What the decoder holds (twice the limit at most), and one chunk being decoded.
    assert peak < 2 * limit + 24 * size + 64 * 1024, f"peak {peak / limit:.1f}x the limit"
