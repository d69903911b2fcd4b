"""Tests for triostream._wire on bytes: the results, and errors, of the text they stand for."""

from __future__ import annotations

import json

import pytest

from tests.streams import message_end, message_start, text_delta
from triostream._exceptions import APIResponseValidationError, IncompleteStreamError
from triostream._wire import decode_message, decode_raw_event, decode_sse_events
from triostream.sse import ServerSentEvent
from triostream.types import RawContentBlockDeltaEvent, RawMessageStreamEvent, UnknownEvent

DELTA = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"%s"}}'


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def outcome(data: str | bytes) -> object:
    """decode_raw_event's result, or its error as (message, body)."""
    try:
        return decode_raw_event(data)
    except APIResponseValidationError as exc:
        return (exc.message, exc.body)


BYTES_CASES = {
    "valid": DELTA % b"h\xc3\xa9llo",
    "invalid UTF-8 in the text": DELTA % b"a\xffb\xc3(",
    "invalid UTF-8 in an ignored field": b'{"type":"message_stop","junk":"\xff"}',
    "invalid UTF-8 in an unknown event": b'{"type":"future","x":"\xe2\x82","y":[1]}',
    "invalid UTF-8 in an unknown delta": (
        b'{"type":"content_block_delta","index":0,"delta":{"type":"future","v":"\xff"}}'
    ),
    "invalid UTF-8 in a field of the wrong type": (
        b'{"type":"content_block_delta","index":"\xff","delta":{"type":"text_delta","text":""}}'
    ),
    "invalid UTF-8 in bad JSON": b'{"type":"content_block_delta","index":0,"x":"\xff" ',
    "invalid UTF-8 outside strings": b'{"type":"ping"}\xff',
    "bad JSON": b'{"type":"ping"',
    "not an event": b'["\xff"]',
    "nested too deeply": b'{"type":"future","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize("data", BYTES_CASES.values(), ids=BYTES_CASES.keys())
def test_bytes_decode_as_their_text_does(data: bytes) -> None:
    assert outcome(data) == outcome(text(data))


def test_invalid_utf8_becomes_the_replacement_character() -> None:
    event = decode_raw_event(DELTA % b"a\xffb")
    assert isinstance(event, RawContentBlockDeltaEvent)
    assert event.delta.text == "a\ufffdb"  # type: ignore[union-attr]
    unknown = decode_raw_event(b'{"type":"future","x":"\xe2\x82"}')
    assert isinstance(unknown, UnknownEvent)
    assert unknown["x"] == "\ufffd"


def test_a_message_body_that_is_not_utf8_is_read_with_replacement_characters() -> None:
    body = json.dumps(message_start()["message"]).replace('"msg_test"', '"msg_\\u00e9"').encode()
    body = body.replace(b"msg_\\u00e9", b"msg_\xff")
    assert decode_message(body).id == "msg_\ufffd"
    with pytest.raises(APIResponseValidationError, match="not valid JSON") as info:
        decode_message(b'{"id":"\xff"')
    assert info.value.body == '{"id":"\ufffd"'


def frame(event: dict[str, object]) -> tuple[bytes, bytes]:
    data = json.dumps(event, separators=(",", ":")).encode()
    return str(event["type"]).encode(), data


def test_decode_sse_events_takes_events_and_raw_frames() -> None:
    delta = text_delta(0, "hi")
    items: list[ServerSentEvent | tuple[bytes, bytes]] = [
        frame(message_start()),
        (b"ping", b"not even JSON"),
        ServerSentEvent("ping", "not even JSON", None, None),
        ServerSentEvent("content_block_delta", json.dumps(delta), None, None),
        (b"content_block_delta", DELTA % b"\xff"),
        *(frame(event) for event in message_end()),
    ]
    out: list[RawMessageStreamEvent] = []
    assert decode_sse_events(items, out) is out
    assert [type(event).__name__ for event in out] == [
        "RawMessageStartEvent",
        "RawContentBlockDeltaEvent",
        "RawContentBlockDeltaEvent",
        "RawMessageDeltaEvent",
        "RawMessageStopEvent",
    ]
    assert out[2] == decode_raw_event(text(DELTA % b"\xff"))


@pytest.mark.parametrize("bad", [(b"message_stop", b'{"type":"message_stop"'), (b"x", b"\xff")])
def test_a_bad_frame_keeps_the_events_before_it(bad: tuple[bytes, bytes]) -> None:
    items = [frame(message_start()), bad, frame(message_end()[1])]
    out: list[RawMessageStreamEvent] = []
    with pytest.raises(APIResponseValidationError, match="not valid JSON") as info:
        decode_sse_events(items, out)
    assert type(info.value) is APIResponseValidationError
    assert info.value.body == text(bad[1])
    assert len(out) == 1
    out = []
    with pytest.raises(IncompleteStreamError, match="ended inside an event"):
        decode_sse_events(items, out, at_end=True)
    assert len(out) == 1
