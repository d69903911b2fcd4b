"""Hostile input for the sans-IO core: only triostream errors come out, memory stays bounded.

Hypothesis drives random and mutated streams through ``SSEDecoder`` ->
``decode_raw_event`` -> ``MessageAccumulator`` (the recorded fixtures and the
synthetic streams of ``tests/streams.py``, with events dropped, duplicated, moved and
swapped, JSON fields replaced by hostile values or deleted, event types changed,
bytes flipped, inserted and deleted, lines broken), random event sequences through
the accumulator, and random text through the partial-JSON parser.  Whatever comes
in, only :class:`~triostream.APIError` subclasses may come out (plus the documented
``RuntimeError`` of ``final_message()`` on an unfinished message), the snapshot stays
readable and encodable, and errors are sticky.  The fast set runs each property on
a fixed (derandomized) set of examples; ``-m slow`` runs twenty times as many, random.

Memory, measured with tracemalloc: a huge line, endless data lines without a blank
line, and endless lines that carry nothing, fed to ``SSEDecoder(max_size=64 KiB)`` in
chunks of several sizes; 100,000 levels of nesting in a tool input and in event data.

atheris: this file is also a coverage-guided fuzzing harness (``python
tests/sansio/test_fuzz.py -max_total_time=60``, with ``atheris`` installed); the slow
test ``test_atheris_finds_nothing`` runs it for a minute when atheris is importable.
It earned its keep: within a second it found ``decode_raw_event`` letting a bare
``msgspec.DecodeError`` out (the typed decoder stops at a wrong field type before it
sees that the JSON is malformed; the untyped retry then raised; fixed since), which
the hypothesis tests below also find, and which
``test_bad_json_after_a_wrong_type_is_a_validation_error`` pins down.
"""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RECORDED_FILES
from tests.streams import (
    SYNTHETIC,
    UNKNOWN_TYPES,
    block_start,
    block_stop,
    json_delta,
    message_end,
    message_start,
    sse_encode,
    text_delta,
)
from triostream import APIError, MessageAccumulator
from triostream._exceptions import APIResponseValidationError
from triostream._partial_json import PartialJSONParser
from triostream.sse import SSEDecoder
from triostream.types import decode_raw_event

ROOT = Path(__file__).resolve().parents[2]
KIB = 1024


def _events_of(body: bytes) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    return [json.loads(sse.data) for sse in decoder.feed(body) + decoder.close()]


STREAMS: dict[str, list[dict[str, Any]]] = {
    **{path.stem: _events_of(path.read_bytes()) for path in RECORDED_FILES},
    **SYNTHETIC,
    "unknown_types": UNKNOWN_TYPES,
}
"""Every recorded and synthetic stream, as its event dicts."""


# --- hypothesis budgets ----------------------------------------------------------------------


def fast(examples: int) -> Callable[[Any], Any]:
    """Settings for the fast set: deterministic (derandomized), ``examples`` examples."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def slow(examples: int) -> Callable[[Any], Any]:
    """Settings for ``-m slow``: random, twenty times the fast budget."""
    return settings(
        max_examples=20 * examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


# --- the pipeline under test -------------------------------------------------------------------


def touch(event: object) -> None:
    """Read what a consumer would read of an event (lazy snapshots included)."""
    getattr(event, "snapshot", None)
    for name in ("message", "content_block"):
        value = getattr(event, name, None)
        if value is not None:
            msgspec.json.encode(value)


def run_pipeline(chunks: Iterable[bytes], max_size: int = 1 << 20) -> MessageAccumulator:
    """Bytes -> SSEDecoder -> decode_raw_event -> MessageAccumulator, as the trio layer does.

    Fails the test if anything but the documented triostream errors comes out, if an
    accumulator error is not sticky, or if the snapshot cannot be read or encoded.
    """
    decoder = SSEDecoder(max_size=max_size)
    accumulator = MessageAccumulator()
    failure: APIError | None = None

    def dispatch(sses: Iterable[Any]) -> None:
        nonlocal failure
        for sse in sses:
            if sse.event == "ping":
                continue
            try:
                raw = decode_raw_event(sse.data)
            except APIResponseValidationError:
                continue  # the trio layer would fail the stream here
            if failure is not None:
                with pytest.raises(APIError) as info:
                    accumulator.feed(raw)
                assert info.value is failure  # sticky: the same error every time
                continue
            try:
                out = accumulator.feed(raw)
            except APIError as exc:
                failure = exc
                continue
            for event in out:
                touch(event)

    try:
        for chunk in chunks:
            dispatch(decoder.feed(chunk))
        dispatch(decoder.close())
    except APIResponseValidationError:
        # Sticky too: the decoder refuses everything after its error.
        with pytest.raises(APIResponseValidationError):
            decoder.close()
    msgspec.json.encode(accumulator.snapshot)
    unfinished = not accumulator.done and accumulator.error is None
    if unfinished and accumulator.deferred_error is None:
        with pytest.raises(RuntimeError, match="not complete"):
            accumulator.final_message()
    else:
        try:
            msgspec.json.encode(accumulator.final_message())
        except APIError:
            pass
    return accumulator


def cut(body: bytes, points: list[int]) -> list[bytes]:
    """``body`` cut at ``points`` (any integers; taken modulo the length)."""
    if not body:
        return []
    marks = sorted({p % len(body) for p in points} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(marks)]


# --- strategies -----------------------------------------------------------------------------

SSE_TOKENS = [
    b"data: ",
    b"data:",
    b"event: ",
    b"id: 7",
    b"id: \x00",
    b"retry: 1500",
    b"retry: 99999999999999999999999999",
    b": comment",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xe2\x82",
    b"\xac",
    b'{"type":"ping"}',
    b'{"type":"message_stop"}',
    b'{"type":"error","error":{"type":"overloaded_error","message":"x"}}',
    b"{",
    b"}",
    b'"',
    b"x",
]
sse_soup = st.lists(st.sampled_from(SSE_TOKENS) | st.binary(max_size=8), max_size=60).map(b"".join)

HOSTILE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, 1, 2, 3, 99, 2**31, 2**63, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", "text", "tool_use", "message", "text_delta", "\ud83d", "\u0000"]),
    st.just([]),
    st.just({}),
    st.just({"type": "text", "text": "x"}),
    st.just([[[[[]]]]]),
)
EVENT_TYPES = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "future_event",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists (the root excluded)."""
    found: list[tuple[Any, ...]] = []
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, child in items:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        root = root[key]
    return root


def mutate_events(draw: Callable[..., Any], events: list[dict[str, Any]]) -> list[Any]:
    """Apply 1-4 structural mutations to a copy of ``events``."""
    events = copy.deepcopy(events)
    for _ in range(draw(st.integers(1, 4))):
        if not events:
            break
        op = draw(st.sampled_from(["drop", "duplicate", "swap", "move", "set", "delete", "retype"]))
        i = draw(st.integers(0, len(events) - 1))
        j = draw(st.integers(0, len(events) - 1))
        if op == "drop":
            del events[i]
        elif op == "duplicate":
            events.insert(j, copy.deepcopy(events[i]))
        elif op == "swap":
            events[i], events[j] = events[j], events[i]
        elif op == "move":
            events.insert(j, events.pop(i))
        elif op == "retype" and isinstance(events[i], dict):
            events[i]["type"] = draw(st.sampled_from(EVENT_TYPES))
        else:
            paths = _paths(events[i])
            if not paths:
                continue
            path = draw(st.sampled_from(paths))
            parent = _parent(events[i], path)
            if op == "set":
                # A copy: st.just() hands out the same object every time, and an event
                # must not end up containing itself.
                parent[path[-1]] = copy.deepcopy(draw(HOSTILE_VALUES))
            else:
                del parent[path[-1]]
    return events


def encode_events(events: list[Any]) -> bytes:
    """The SSE body of (possibly broken) events: ``event:`` from ``type`` when it is a str."""
    parts = []
    for event in events:
        name = event.get("type") if isinstance(event, dict) else None
        data = json.dumps(event, ensure_ascii=False)
        head = f"event: {name}\n" if isinstance(name, str) and "\n" not in name else ""
        parts.append(f"{head}data: {data}\n\n".encode("utf-8", "surrogatepass"))
    return b"".join(parts)


def mutate_bytes(draw: Callable[..., Any], body: bytes) -> bytes:
    """Apply 0-3 byte-level mutations to ``body``."""
    data = bytearray(body)
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "break"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(SSE_TOKENS) | st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        else:
            data[at:at] = draw(st.sampled_from([b"\n", b"\r", b"\n\n", b"\r\n\r\n"]))
    return bytes(data)


# --- SSEDecoder -------------------------------------------------------------------------------


DECODER_INPUT = {
    "body": sse_soup | st.binary(max_size=300),
    "points": st.lists(st.integers(0, 1000), max_size=20),
    "max_size": st.sampled_from([1, 2, 7, 64, 1 << 20]),
}


@fast(300)
@given(**DECODER_INPUT)
def test_the_decoder_takes_any_bytes(body: bytes, points: list[int], max_size: int) -> None:
    check_decoder(body, points, max_size)


@pytest.mark.slow
@slow(300)
@given(**DECODER_INPUT)
def test_the_decoder_takes_any_bytes_long(body: bytes, points: list[int], max_size: int) -> None:
    check_decoder(body, points, max_size)


def check_decoder(body: bytes, points: list[int], max_size: int) -> None:
    """Only APIResponseValidationError, no event over the limit, and the error is sticky."""
    decoder = SSEDecoder(max_size=max_size)
    try:
        for chunk in cut(body, points):
            for sse in decoder.feed(chunk):
                assert len(sse.data.encode()) <= max_size
        decoder.close()
    except APIResponseValidationError:
        with pytest.raises(APIResponseValidationError):
            decoder.feed(b"data: more\n\n")


# --- the pipeline on mutated streams --------------------------------------------------------


MUTATED = {
    "name": st.sampled_from(sorted(STREAMS)),
    "data": st.data(),
    "points": st.lists(st.integers(0, 10**6), max_size=12),
}


def check_mutated(name: str, data: st.DataObject, points: list[int]) -> None:
    """Events mutated, then bytes, through the pipeline."""
    events = mutate_events(data.draw, STREAMS[name])
    body = mutate_bytes(data.draw, encode_events(events))
    run_pipeline(cut(body, points))


def check_byte_mutated(name: str, data: st.DataObject, points: list[int]) -> None:
    """Bytes mutated, through the pipeline, with a small or a large limit."""
    body = mutate_bytes(data.draw, sse_encode(STREAMS[name]))
    run_pipeline(cut(body, points), max_size=data.draw(st.sampled_from([64, 1 << 20])))


@fast(300)
@given(**MUTATED)
def test_mutated_streams_raise_only_triostream_errors(
    name: str, data: st.DataObject, points: list[int]
) -> None:
    check_mutated(name, data, points)


@pytest.mark.slow
@slow(300)
@given(**MUTATED)
def test_mutated_streams_long(name: str, data: st.DataObject, points: list[int]) -> None:
    check_mutated(name, data, points)


@fast(150)
@given(**MUTATED)
def test_byte_mutated_streams_raise_only_triostream_errors(
    name: str, data: st.DataObject, points: list[int]
) -> None:
    check_byte_mutated(name, data, points)


@pytest.mark.slow
@slow(150)
@given(**MUTATED)
def test_byte_mutated_streams_long(name: str, data: st.DataObject, points: list[int]) -> None:
    check_byte_mutated(name, data, points)


def event_strategy() -> st.SearchStrategy[dict[str, Any]]:
    """Events of every type with small random indices and block/delta types."""
    index = st.integers(-1, 3)
    block = st.sampled_from(
        [
            {"type": "text", "text": ""},
            {"type": "tool_use", "id": "t", "name": "n", "input": {}},
            {"type": "thinking", "thinking": "", "signature": ""},
            {"type": "redacted_thinking", "data": "x"},
            {"type": "future_block"},
        ]
    )
    delta = st.sampled_from(
        [
            {"type": "text_delta", "text": "hi"},
            {"type": "input_json_delta", "partial_json": '{"a": [1, '},
            {"type": "input_json_delta", "partial_json": "}"},
            {"type": "thinking_delta", "thinking": "hm"},
            {"type": "signature_delta", "signature": "s"},
            {"type": "citations_delta", "citation": {"type": "future_location"}},
            {"type": "future_delta", "v": 1},
        ]
    )
    return st.one_of(
        st.just(message_start()),
        st.builds(block_start, index, block),
        st.builds(
            lambda i, d: {"type": "content_block_delta", "index": i, "delta": d}, index, delta
        ),
        st.builds(block_stop, index),
        st.just(message_end()[0]),
        st.just(message_end()[1]),
        st.just({"type": "ping"}),
        st.just({"type": "error", "error": {"type": "overloaded_error", "message": "x"}}),
        st.just({"type": "future_event", "x": [1]}),
    )


@fast(300)
@given(events=st.lists(event_strategy(), max_size=30))
def test_random_event_sequences_raise_only_triostream_errors(events: list[dict[str, Any]]) -> None:
    run_pipeline([sse_encode(events)])


@pytest.mark.slow
@slow(300)
@given(events=st.lists(event_strategy(), max_size=60))
def test_random_event_sequences_long(events: list[dict[str, Any]]) -> None:
    run_pipeline([sse_encode(events)])


# --- the partial-JSON parser ----------------------------------------------------------------

JSON_TOKENS = [
    *'{}[],:"\\ 0123456789.-+eE',
    "true",
    "false",
    "null",
    "tru",
    "nul",
    "NaN",
    "Infinity",
    "\\u",
    "\\ud83d",
    "\\ude00",
    "d83d",
    "\\n",
    "\\x",
    "\n",
    "\t",
    "é",
    "😀",
    "\u2028",
    "\x00",
    '"a"',
    '"k":',
]
json_soup = st.lists(st.sampled_from(JSON_TOKENS), max_size=80).map("".join)
json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)
json_values: st.SearchStrategy[Any] = st.deferred(
    lambda: (
        json_scalars
        | st.lists(json_values, max_size=4)
        | st.dictionaries(st.text(max_size=4), json_values, max_size=4)
    )
)


def strict_json(text: str) -> tuple[bool, Any]:
    """(whether ``text`` is one standard JSON value, the value): the oracle.

    :mod:`json` plus what the parser documents it refuses: ``NaN``/``Infinity`` and
    strings that are not Unicode text (lone surrogates, escaped or raw).
    """

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        value = json.loads(text, parse_constant=refuse)
        msgspec.json.encode(value)  # refuses a str holding a lone surrogate
    except (ValueError, RecursionError, UnicodeEncodeError, msgspec.EncodeError):
        return False, None
    return True, value


def check_partial_json(text: str, points: list[int]) -> None:
    parser = PartialJSONParser()
    marks = sorted({p % (len(text) + 1) for p in points} | {0, len(text)})
    for a, b in itertools.pairwise(marks):
        parser.feed(text[a:b])
        parser.snapshot()
        parser.snapshot(partial_strings=False)
    valid, value = strict_json(text)
    try:
        result = parser.finish()
    except APIResponseValidationError:
        assert not valid, f"the parser refused valid JSON {text!r}"
        return
    assert valid, f"the parser accepted {text!r}"
    assert result == value


JSON_SOUP = {"text": json_soup, "points": st.lists(st.integers(0, 1000), max_size=10)}
MUTATED_JSON = {
    "value": json_values,
    "data": st.data(),
    "points": st.lists(st.integers(0, 1000), max_size=10),
}


@fast(400)
@given(**JSON_SOUP)
def test_partial_json_takes_any_text(text: str, points: list[int]) -> None:
    check_partial_json(text, points)


@pytest.mark.slow
@slow(400)
@given(**JSON_SOUP)
def test_partial_json_takes_any_text_long(text: str, points: list[int]) -> None:
    check_partial_json(text, points)


@fast(250)
@given(**MUTATED_JSON)
def test_partial_json_takes_mutated_json(
    value: Any, data: st.DataObject, points: list[int]
) -> None:
    check_mutated_json(value, data, points)


@pytest.mark.slow
@slow(250)
@given(**MUTATED_JSON)
def test_partial_json_takes_mutated_json_long(
    value: Any, data: st.DataObject, points: list[int]
) -> None:
    check_mutated_json(value, data, points)


def check_mutated_json(value: Any, data: st.DataObject, points: list[int]) -> None:
    """A valid JSON text with characters deleted and tokens inserted."""
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()) and at < len(text):
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + data.draw(st.sampled_from(JSON_TOKENS)) + text[at:]
    check_partial_json(text, points)


# --- decode_raw_event: whatever the data, an APIResponseValidationError ------------------------

DEEP = 100_000


@pytest.mark.parametrize(
    "data",
    [
        '{"type":"future","x":5 x',
        '{"type":"message_start","message":5, bad',
        '{"type":"content_block_delta","index":"x" ',
        '{"type":"content_block_start","index":0,"content_block":{"type":1}',
    ],
)
def test_bad_json_after_a_wrong_type_is_a_validation_error(data: str) -> None:
    """The typed decoder stops at the wrong type; the bad JSON after it must not escape."""
    with pytest.raises(APIResponseValidationError):
        decode_raw_event(data)


NESTED = {
    "in an ignored field of a delta": (
        '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x",'
        '"junk":' + "[" * DEEP + "]" * DEEP + "}}"
    ),
    "in an unknown event": '{"type":"future","x":' + "[" * DEEP + "]" * DEEP + "}",
    "in a tool block's input": (
        '{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t",'
        '"name":"n","input":{"a":' + "[" * DEEP + "]" * DEEP + "}}}"
    ),
    "at the top": "[" * DEEP + "]" * DEEP,
    "unclosed": '{"type":"ping","x":' + "[" * DEEP,
}


@pytest.mark.parametrize("data", NESTED.values(), ids=NESTED.keys())
def test_deeply_nested_event_data_is_a_validation_error(data: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(APIResponseValidationError):
            decode_raw_event(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(data) + 256 * KIB


# --- memory within the limits ----------------------------------------------------------------

LIMIT = 64 * KIB


def feed_until_refused(decoder: SSEDecoder, chunks: Iterable[bytes]) -> tuple[bool, int]:
    """Feed ``chunks`` until the decoder refuses; (whether it did, tracemalloc's peak)."""
    tracemalloc.start()
    refused = False
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except APIResponseValidationError:
        refused = True
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return refused, peak


def repeated(unit: bytes, chunk: int, total: int, first: bytes = b"") -> Iterable[bytes]:
    """``first``, then ``total`` bytes of ``unit`` repeated, in chunks of ``chunk`` bytes."""
    if first:
        yield first
    block = unit * (chunk // len(unit) + 2)
    offset = 0
    for _ in range(0, total, chunk):
        start = offset % len(unit)
        yield block[start : start + chunk]
        offset += chunk


TRANSIENT = 24
"""Decoding one chunk splits it into line strings: while it is processed, short lines
cost up to ~20 times the chunk.  That is per call, not kept."""


def memory_bound(chunk: int) -> int:
    """What a decoder refusing at LIMIT may hold at most: twice the limit, plus one
    chunk being processed."""
    return 2 * LIMIT + TRANSIENT * chunk + 64 * KIB


@pytest.mark.parametrize("chunk", [1, 2, 7, 4096, 65536])
def test_a_huge_line_is_refused_with_bounded_memory(chunk: int) -> None:
    decoder = SSEDecoder(max_size=LIMIT)
    refused, peak = feed_until_refused(decoder, repeated(b"x", chunk, 8 * LIMIT, b"data: "))
    assert refused
    assert peak < memory_bound(chunk), f"peak {peak / LIMIT:.1f}x the limit"


@pytest.mark.parametrize("chunk", [11, 4096, 65536])
@pytest.mark.parametrize("line", [b"data: abcd\n", b"data: \xe2\x82\xac\xe2\x82\xac\n"])
def test_endless_data_without_a_blank_line_is_refused_with_bounded_memory(
    chunk: int, line: bytes
) -> None:
    decoder = SSEDecoder(max_size=LIMIT)
    refused, peak = feed_until_refused(decoder, repeated(line, chunk, 8 * LIMIT))
    assert refused
    assert peak < memory_bound(chunk), f"peak {peak / LIMIT:.1f}x the limit"


@pytest.mark.parametrize("chunk", [7, 65536])
@pytest.mark.parametrize("line", [b"event: x\n", b": keep-alive\n", b"foo: bar\n", b"id: 1\n"])
def test_endless_lines_that_carry_nothing_hold_nothing(chunk: int, line: bytes) -> None:
    decoder = SSEDecoder(max_size=LIMIT)
    refused, peak = feed_until_refused(decoder, repeated(line, chunk, 4 * LIMIT))
    assert not refused
    assert peak < TRANSIENT * chunk + 64 * KIB


def tool_stream(pieces: list[str]) -> list[dict[str, Any]]:
    return [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "Calling."),
        block_stop(0),
        block_start(1, {"type": "tool_use", "id": "toolu_1", "name": "deep", "input": {}}),
        *(json_delta(1, piece) for piece in pieces),
        block_stop(1),
        *message_end("tool_use"),
    ]


DEEP_INPUTS = {
    "[ x 100k in one delta": ["[" * DEEP],
    "[ x 100k in 1000 deltas": ["[" * 100] * (DEEP // 100),
    '{"a": x 100k in one delta': ['{"a":' * DEEP],
    '{"a": x 100k in 1000 deltas': ['{"a":' * 100] * (DEEP // 100),
}


@pytest.mark.parametrize("pieces", DEEP_INPUTS.values(), ids=DEEP_INPUTS.keys())
def test_deeply_nested_tool_input_completes_with_bounded_memory(pieces: list[str]) -> None:
    """The stream completes; the bad input is raised at final_message(); memory is bounded.

    The snapshot (the best parse of what arrived) must stay usable: readable and
    encodable, as an application logging or re-sending it would do.
    """
    events = [decode_raw_event(json.dumps(event)) for event in tool_stream(pieces)]
    size = sum(map(len, pieces))
    accumulator = MessageAccumulator()
    tracemalloc.start()
    try:
        for event in events:
            for out in accumulator.feed(event):
                touch(out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert accumulator.done
    assert peak < 16 * size + MiB
    with pytest.raises(APIResponseValidationError, match="never became valid JSON"):
        accumulator.final_message()
    snapshot = accumulator.snapshot
    assert snapshot is not None
    msgspec.json.encode(snapshot)


MiB = 1024 * KIB


# --- atheris ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_atheris_finds_nothing(tmp_path: Path) -> None:
    """A minute of coverage-guided fuzzing of the pipeline and the partial-JSON parser."""
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in RECORDED_FILES:
        (corpus / path.name).write_bytes(path.read_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "-max_total_time=60",
            "-rss_limit_mb=2048",
            "-max_len=8192",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]


def fuzz_one_input(data: bytes) -> None:
    """atheris's entry point: the pipeline, then the partial-JSON parser, on ``data``."""
    atheris: Any = importlib.import_module("atheris")
    provider = atheris.FuzzedDataProvider(data)
    size = provider.ConsumeIntInRange(1, 64)
    max_size = provider.ConsumeIntInRange(1, 4096)
    body = provider.ConsumeBytes(provider.remaining_bytes())
    run_pipeline([body[i : i + size] for i in range(0, len(body), size)], max_size)
    text = body.decode("utf-8", "replace")
    check_partial_json(text, list(range(0, len(text), size)))


if __name__ == "__main__":
    atheris: Any = importlib.import_module("atheris")
    atheris.instrument_all()
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()
