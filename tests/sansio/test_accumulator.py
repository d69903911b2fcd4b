"""MessageAccumulator: differential against the official SDK, event order, errors, laziness."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import msgspec
import pytest

from tests.sansio.sdk_oracle import sdk_final_message
from tests.streams import (
    PING,
    SYNTHETIC,
    TIME,
    UNKNOWN_TYPES,
    WEATHER,
    block_start,
    block_stop,
    chunkings,
    json_delta,
    message_end,
    message_start,
    sse_encode,
    text_delta,
    text_stream,
)
from triostream import (
    APIResponseValidationError,
    MessageAccumulator,
    OverloadedError,
    RateLimitError,
)
from triostream.sse import SSEDecoder
from triostream.types import (
    ContentBlockStopEvent,
    InputJsonEvent,
    Message,
    MessageStopEvent,
    MessageStreamEvent,
    RawContentBlockDeltaEvent,
    TextEvent,
    ToolUseBlock,
    UnknownCitation,
    UnknownContentBlock,
    UnknownDelta,
    UnknownEvent,
    decode_raw_event,
)


def run(chunks: Iterable[bytes]) -> tuple[MessageAccumulator, list[MessageStreamEvent]]:
    """Bytes -> SSEDecoder -> decode_raw_event -> MessageAccumulator, as the streams do."""
    decoder = SSEDecoder()
    acc = MessageAccumulator()
    out: list[MessageStreamEvent] = []
    sses = []
    for chunk in chunks:
        sses += decoder.feed(chunk)
    sses += decoder.close()
    for sse in sses:
        acc.feed_into(decode_raw_event(sse.data), out)
    return acc, out


def feed_dicts(events: Iterable[dict[str, Any]]) -> tuple[MessageAccumulator, list[Any]]:
    acc = MessageAccumulator()
    out: list[Any] = []
    for event in events:
        out += acc.feed(decode_raw_event(json.dumps(event)))
    return acc, out


def without_nulls(value: Any) -> Any:
    """The SDK cannot tell an absent field from a null one; compare modulo that."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def as_data(message: Message) -> Any:
    return without_nulls(msgspec.to_builtins(message))


# --- the official SDK as oracle ---------------------------------------------------------

VALID_RECORDED = [
    "basic_response",
    "incomplete_partial_json_response",
    "message_delta_fields_response",
    "refusal_response",
    "tool_use_response",
]


@pytest.mark.parametrize("name", VALID_RECORDED)
def test_recorded_streams_match_the_official_sdk(name: str) -> None:
    from tests.conftest import RECORDED

    body = (RECORDED / f"{name}.txt").read_bytes()
    expected = without_nulls(sdk_final_message([body]))
    for how, chunks in chunkings(body):
        acc, events = run(chunks)
        assert as_data(acc.final_message()) == expected, how
        assert isinstance(events[-1], MessageStopEvent)
        assert events[-1].message is acc.snapshot


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_synthetic_streams_match_the_official_sdk(name: str, line_end: str) -> None:
    body = sse_encode(SYNTHETIC[name], line_end=line_end)
    expected = without_nulls(sdk_final_message([body]))
    for how, chunks in chunkings(body):
        acc, _ = run(chunks)
        assert as_data(acc.final_message()) == expected, how


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_event_sequence_matches_the_official_sdk(name: str) -> None:
    """Same events in the same order; snapshots equal (tool input: with partial strings)."""
    import jiter
    from anthropic.lib.streaming._messages import accumulate_event, build_events

    snapshot: Any = None
    bufs: dict[int, bytes] = {}
    expected: list[tuple[str, Any]] = []
    for event in SYNTHETIC[name]:
        if event["type"] == "ping":
            continue
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
        for sdk_event in build_events(event=snapshot_event(event), message_snapshot=snapshot):
            snap = getattr(sdk_event, "snapshot", None)
            if sdk_event.type == "input_json":
                # Ours renders the partial string too: jiter's "trailing-strings" mode.
                buf = bufs.get(event["index"], b"")
                snap = jiter.from_json(buf, partial_mode="trailing-strings") if buf else {}
            expected.append((sdk_event.type, snap))
    _, ours = feed_dicts(SYNTHETIC[name])
    got = [(e.type, getattr(e, "snapshot", None)) for e in ours]
    normalised = [(t, msgspec.to_builtins(s) if t == "citation" else s) for t, s in got]
    expected = [(t, [c.to_dict() for c in s] if t == "citation" else s) for t, s in expected]
    assert [t for t, _ in normalised] == [t for t, _ in expected]
    assert normalised == expected


def snapshot_event(event: dict[str, Any]) -> Any:
    from anthropic._models import construct_type
    from anthropic.types import RawMessageStreamEvent

    return construct_type(type_=RawMessageStreamEvent, value=event)


# --- what the stream yields -------------------------------------------------------------


def test_text_events_carry_the_text_so_far_even_when_read_late() -> None:
    pieces = ["a", "bc", "", "def", "🎉"]
    acc, events = feed_dicts(text_stream(pieces))
    text_events = [e for e in events if isinstance(e, TextEvent)]
    assert [e.text for e in text_events] == pieces
    assert [e.snapshot for e in text_events] == ["a", "abc", "abc", "abcdef", "abcdef🎉"]
    # Reading in reverse order (a late reader) gives the same answers.
    fresh = [e for e in feed_dicts(text_stream(pieces))[1] if isinstance(e, TextEvent)]
    assert [e.snapshot for e in reversed(fresh)] == ["abcdef🎉", "abcdef", "abc", "abc", "a"]
    assert acc.final_message().content[0].text == "abcdef🎉"  # type: ignore[union-attr]


def test_input_json_snapshots_are_each_prefix_with_partial_strings() -> None:
    stream = [
        message_start(),
        block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
        json_delta(0, ""),
        json_delta(0, '{"city": "Par'),
        json_delta(0, 'is", "n": [1, '),
        json_delta(0, "2]}"),
        block_stop(0),
        *message_end("tool_use"),
    ]
    acc, events = feed_dicts(stream)
    snaps = [e.snapshot for e in events if isinstance(e, InputJsonEvent)]
    assert snaps == [
        {},
        {"city": "Par"},
        {"city": "Paris", "n": [1]},
        {"city": "Paris", "n": [1, 2]},
    ]
    block = acc.final_message().content[0]
    assert isinstance(block, ToolUseBlock)
    assert block.input == {"city": "Paris", "n": [1, 2]}
    assert block.input_json == '{"city": "Paris", "n": [1, 2]}'


def test_snapshots_handed_out_never_change_afterwards() -> None:
    stream = [
        message_start(),
        block_start(0, {"type": "tool_use", "id": "t", "name": "f", "input": {}}),
        json_delta(0, '{"a": [1'),
        json_delta(0, ', 2], "b": {"c": "x'),
        json_delta(0, 'yz"}}'),
        block_stop(0),
        *message_end("tool_use"),
    ]
    acc = MessageAccumulator()
    taken = []
    for event in stream:
        for out in acc.feed(decode_raw_event(json.dumps(event))):
            if isinstance(out, InputJsonEvent):
                taken.append((out.snapshot, json.dumps(out.snapshot)))
    for value, frozen in taken:
        assert json.dumps(value) == frozen


def test_message_start_event_keeps_the_message_as_received() -> None:
    acc, events = feed_dicts(text_stream(["hello"]))
    start = events[0]
    assert start.type == "message_start"
    assert start.message.content == []
    assert start.message.usage.output_tokens == 1
    assert acc.final_message().usage.output_tokens == 42


def test_content_block_stop_carries_the_finished_block() -> None:
    _, events = feed_dicts(SYNTHETIC["tools"])
    stops = [e for e in events if isinstance(e, ContentBlockStopEvent)]
    assert [s.index for s in stops] == [0, 1, 2, 3, 4]
    assert stops[1].content_block.input == WEATHER  # type: ignore[union-attr]
    assert stops[2].content_block.input == TIME  # type: ignore[union-attr]


def test_current_snapshot_while_streaming() -> None:
    acc = MessageAccumulator()
    assert acc.snapshot is None
    seen = []
    for event in text_stream(["Hel", "lo", " world"]):
        acc.feed(decode_raw_event(json.dumps(event)))
        snap = acc.snapshot
        if snap is not None and snap.content:
            seen.append(snap.content[0].text)  # type: ignore[union-attr]
    # block start, ping, three deltas, block stop, message delta, message stop
    assert seen == ["", "", "Hel", "Hello", *["Hello world"] * 4]


def test_ping_is_consumed() -> None:
    _, events = feed_dicts(text_stream(["x"]))
    assert "ping" not in [e.type for e in events]


# --- message_delta ------------------------------------------------------------------------


def test_message_delta_applies_every_present_field_and_keeps_absent_counts() -> None:
    from tests.conftest import RECORDED

    acc, _ = run([(RECORDED / "message_delta_fields_response.txt").read_bytes()])
    message = acc.final_message()
    assert message.stop_reason == "end_turn"
    assert message.container is not msgspec.UNSET
    assert message.container is not None
    assert message.container.id == "container_01AbCdEfGh"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (40, 8)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (12, 7)
    assert usage.server_tool_use is not None
    assert usage.server_tool_use is not msgspec.UNSET
    assert usage.server_tool_use.web_search_requests == 1
    # Sent in message_start only: kept.
    assert usage.service_tier == "standard"
    assert usage.cache_creation is not None
    assert usage.cache_creation is not msgspec.UNSET
    assert usage.cache_creation.ephemeral_5m_input_tokens == 10


def test_message_delta_without_input_tokens_keeps_the_start_value() -> None:
    acc, _ = feed_dicts(text_stream(["x"]))
    assert acc.final_message().usage.input_tokens == 10


# --- bad tool input --------------------------------------------------------------------------


def test_tool_input_that_never_becomes_json_fails_only_the_final_message() -> None:
    from tests.conftest import RECORDED

    acc, events = run([(RECORDED / "tool_use_invalid_json_response.txt").read_bytes()])
    assert isinstance(events[-1], MessageStopEvent)  # the stream itself completed
    assert acc.done
    with pytest.raises(
        APIResponseValidationError, match=r"get_weather.*never became valid JSON"
    ) as info:
        acc.final_message()
    assert info.value.body == '{"location": "Paris", "unit": celsius}'
    snapshot = acc.snapshot
    assert snapshot is not None
    block = snapshot.content[1]
    assert isinstance(block, ToolUseBlock)
    assert block.input_json == '{"location": "Paris", "unit": celsius}'
    assert block.input == {"location": "Paris"}
    assert snapshot.content[0].text == "I'll check the current weather in Paris for you."  # type: ignore[union-attr]


def test_truncated_tool_input_keeps_the_best_parse() -> None:
    from tests.conftest import RECORDED

    acc, _ = run([(RECORDED / "incomplete_partial_json_response.txt").read_bytes()])
    block = acc.final_message().content[1]
    assert isinstance(block, ToolUseBlock)
    assert block.input == {
        "filename": "taxes.txt",
        "lines_of_text": [
            "# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s",
            "",
            "## INTRODUCTION",
            "",
        ],
    }


# --- order and errors ------------------------------------------------------------------------

BAD_ORDERS = {
    "delta before message_start": [text_delta(0, "x")],
    "block start before message_start": [block_start(0, {"type": "text", "text": ""})],
    "stop before message_start": [{"type": "message_stop"}],
    "delta for a block that never started": [message_start(), text_delta(0, "x")],
    "delta for a negative index": [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(-1, "x"),
    ],
    "delta after the block stopped": [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        block_stop(0),
        text_delta(0, "x"),
    ],
    "block stopped twice": [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        block_stop(0),
        block_stop(0),
    ],
    "block start skips an index": [message_start(), block_start(1, {"type": "text", "text": ""})],
    "second message_start": [message_start(), message_start()],
    "event after message_stop": [*text_stream(["x"]), text_delta(0, "y")],
}


@pytest.mark.parametrize("name", sorted(BAD_ORDERS))
def test_events_out_of_order_raise_and_stay_raised(name: str) -> None:
    acc = MessageAccumulator()
    events = [decode_raw_event(json.dumps(e)) for e in BAD_ORDERS[name]]
    with pytest.raises(APIResponseValidationError) as info:
        acc.feed_all(events, [])
    assert acc.error is info.value
    # Sticky: the same error again, whatever comes next.
    with pytest.raises(APIResponseValidationError) as again:
        acc.feed(decode_raw_event(json.dumps(PING)))
    assert again.value is info.value
    if acc.done:  # the message was complete before the bad event: it stands
        assert acc.final_message() is acc.snapshot
    else:
        with pytest.raises(APIResponseValidationError):
            acc.final_message()


def test_error_event_raises_the_class_of_its_type_and_keeps_the_snapshot() -> None:
    acc = MessageAccumulator()
    out: list[Any] = []
    events = [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        text_delta(0, "partial"),
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ]
    with pytest.raises(OverloadedError) as info:
        acc.feed_all((decode_raw_event(json.dumps(e)) for e in events), out)
    err = info.value
    assert (err.status_code, err.type, err.message) == (200, "overloaded_error", "Overloaded")
    assert [e.type for e in out] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "text",
    ]
    snapshot = acc.snapshot
    assert snapshot is not None
    assert snapshot.content[0].text == "partial"  # type: ignore[union-attr]
    with pytest.raises(OverloadedError):
        acc.feed(decode_raw_event(json.dumps(message_end()[1])))


def test_error_event_type_picks_the_class() -> None:
    acc = MessageAccumulator()
    event = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    with pytest.raises(RateLimitError, match="slow down"):
        acc.feed(decode_raw_event(json.dumps(event)))


def test_final_message_before_the_end_is_an_error() -> None:
    acc, _ = feed_dicts(text_stream(["x"])[:3])
    with pytest.raises(RuntimeError, match="message_stop"):
        acc.final_message()


# --- forward compatibility ---------------------------------------------------------------------


def test_unknown_types_are_kept_and_passed_on() -> None:
    acc, events = feed_dicts(UNKNOWN_TYPES)
    unknown_events = [e for e in events if isinstance(e, UnknownEvent)]
    assert unknown_events == [UnknownEvent({"type": "future_event", "payload": {"x": 1}})]
    assert unknown_events[0].type == "future_event"
    deltas = [e for e in events if isinstance(e, RawContentBlockDeltaEvent)]
    assert isinstance(deltas[1].delta, UnknownDelta)
    assert deltas[1].delta.value == 3
    message = acc.final_message()
    text = message.content[0]
    assert text.text == "Hi"  # type: ignore[union-attr]
    assert text.citations == [UnknownCitation({"type": "future_location", "cited_text": "c"})]  # type: ignore[union-attr]
    future = message.content[1]
    assert isinstance(future, UnknownContentBlock)
    assert future == {"type": "future_block", "id": "fb_1", "input": {"k": "v"}, "extra": [1, 2]}
    assert message.content[2] == UnknownContentBlock({"type": "opaque_block", "blob": "zzz"})
    encoded = json.loads(msgspec.json.encode(message))
    assert encoded["content"][1] == dict(future)
    assert encoded["content"][2] == {"type": "opaque_block", "blob": "zzz"}


# --- costs ---------------------------------------------------------------------------------------


def test_text_accumulation_is_linear() -> None:
    """100,000 deltas cost about ten times 10,000 (the SDK's `text +=` would be ~100x)."""
    import gc
    import time

    def cost(n: int) -> float:
        raw = [decode_raw_event(json.dumps(e)) for e in text_stream(["tok "] * n)]
        best = float("inf")
        for _ in range(5):
            acc = MessageAccumulator()
            out: list[Any] = []
            gc.collect()
            gc.disable()  # the collector's pauses depend on the whole test session's heap
            try:
                start = time.perf_counter()
                acc.feed_all(raw, out)
                acc.final_message()
                best = min(best, time.perf_counter() - start)
            finally:
                gc.enable()
        return best

    ratio = cost(100_000) / cost(10_000)
    assert ratio < 30, ratio  # linear: ~10; quadratic: ~100


def test_an_error_after_message_stop_does_not_take_the_message_back() -> None:
    acc, _ = feed_dicts(text_stream(["done"]))
    event = {"type": "error", "error": {"type": "overloaded_error", "message": "late"}}
    with pytest.raises(OverloadedError):
        acc.feed(decode_raw_event(json.dumps(event)))
    assert acc.final_message().content[0].text == "done"  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["text", "tool"])
def test_a_failed_stream_and_its_error_are_collected(kind: str) -> None:
    """Derived events are untracked by the GC: no reference cycle may pass through them.

    The error's traceback holds the frame whose ``out`` holds the derived events, whose
    snapshot source must not lead back to the accumulator (the error is stored on it):
    if it did, the cycle would go through an untracked object and never be collected.
    """
    import gc
    import weakref

    if kind == "text":
        deltas = [text_delta(0, f"piece {i} ") for i in range(50)]
        start = block_start(0, {"type": "text", "text": ""})
    else:
        deltas = [json_delta(0, piece) for piece in ['{"city": ', '"Par', 'is", "n": [1, ', "2"]]
        start = block_start(0, {"type": "tool_use", "id": "t1", "name": "w", "input": {}})
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    raws = [
        decode_raw_event(msgspec.json.encode(e))
        for e in [message_start(), start, *deltas, overloaded]
    ]

    def fail() -> tuple[weakref.ref[MessageAccumulator], list[MessageStreamEvent]]:
        acc = MessageAccumulator()
        out: list[MessageStreamEvent] = []
        with pytest.raises(OverloadedError) as info:
            acc.feed_all(raws, out)
        assert acc.error is info.value  # the accumulator -> error -> traceback -> frame cycle
        derived = [e for e in out if isinstance(e, (TextEvent, InputJsonEvent))]
        assert len(derived) == len(deltas)
        return weakref.ref(acc), derived

    gc.collect()
    ref, derived = fail()
    gc.collect()  # the events are alive (and their snapshots not read yet)
    assert ref() is None
    snapshots = [event.snapshot for event in derived]  # built from the source alone
    assert snapshots[-1] in (
        "".join(f"piece {i} " for i in range(50)),
        {"city": "Paris", "n": [1, 2]},
    )
