"""Synthetic Messages API streams (as event dicts) and SSE helpers shared by the tests.

The recorded fixtures are a sample; these cover what they do not: thinking,
redacted thinking, citations, several tool calls, server tools, unknown types,
and multi-byte UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

Event = Mapping[str, Any]


def sse_encode(events: Iterable[Event], *, line_end: str = "\n") -> bytes:
    """The SSE body the API would send for these events."""
    parts = []
    for event in events:
        data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        parts.append(f"event: {event['type']}{line_end}data: {data}{line_end}{line_end}")
    return "".join(parts).encode()


def chunkings(body: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """The ways the tests cut a body: whole, byte by byte, small odd sizes, 16 KB."""
    yield "whole", [body]
    yield "bytes", [body[i : i + 1] for i in range(len(body))]
    for size in (7, 64, 16384):
        yield f"size{size}", [body[i : i + size] for i in range(0, len(body), size)]


def message_start(msg_id: str = "msg_test", **usage: int) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1, **usage},
        },
    }


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, d: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": d}


def text_delta(index: int, text: str) -> dict[str, Any]:
    return delta(index, {"type": "text_delta", "text": text})


def json_delta(index: int, partial_json: str) -> dict[str, Any]:
    return delta(index, {"type": "input_json_delta", "partial_json": partial_json})


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_end(stop_reason: str = "end_turn", output_tokens: int = 42) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


PING = {"type": "ping"}


def text_stream(pieces: Iterable[str]) -> list[dict[str, Any]]:
    """One text block made of these pieces."""
    return [
        message_start(),
        block_start(0, {"type": "text", "text": ""}),
        PING,
        *(text_delta(0, p) for p in pieces),
        block_stop(0),
        *message_end(),
    ]


def split_json(value: object, size: int) -> list[str]:
    text = json.dumps(value)
    return [text[i : i + size] for i in range(0, len(text), size)]


THINKING = [
    message_start("msg_thinking"),
    block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
    delta(0, {"type": "thinking_delta", "thinking": "Let me think"}),
    delta(0, {"type": "thinking_delta", "thinking": " about 2+2."}),
    delta(0, {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}),
    block_stop(0),
    block_start(1, {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}),
    block_stop(1),
    block_start(2, {"type": "text", "text": ""}),
    text_delta(2, "It is "),
    text_delta(2, "4."),
    block_stop(2),
    *message_end(),
]

CITATIONS = [
    message_start("msg_citations"),
    block_start(0, {"type": "text", "text": "", "citations": []}),
    text_delta(0, "The grass is green"),
    delta(
        0,
        {
            "type": "citations_delta",
            "citation": {
                "type": "char_location",
                "cited_text": "The grass is green.",
                "document_index": 0,
                "document_title": "Example",
                "start_char_index": 0,
                "end_char_index": 20,
            },
        },
    ),
    text_delta(0, " and the sky is blue."),
    delta(
        0,
        {
            "type": "citations_delta",
            "citation": {
                "type": "web_search_result_location",
                "cited_text": "the sky is blue",
                "encrypted_index": "Eo8BCioIAhgB",
                "title": "Sky",
                "url": "https://example.com/sky",
            },
        },
    ),
    block_stop(0),
    *message_end(),
]

WEATHER = {"location": "San Francisco, CA", "unit": "fahrenheit", "days": [1, 2, 3]}
TIME = {"timezone": "America/Los_Angeles", "format": "24h", "nested": {"a": [{"b": None}]}}

TOOLS = [
    message_start("msg_tools"),
    block_start(0, {"type": "text", "text": ""}),
    text_delta(0, "Checking both."),
    block_stop(0),
    block_start(1, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
    json_delta(1, ""),
    *(json_delta(1, p) for p in split_json(WEATHER, 9)),
    block_stop(1),
    block_start(2, {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}),
    *(json_delta(2, p) for p in split_json(TIME, 5)),
    block_stop(2),
    block_start(
        3, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}
    ),
    *(json_delta(3, p) for p in split_json({"query": "weather SF"}, 4)),
    block_stop(3),
    block_start(
        4,
        {
            "type": "web_search_tool_result",
            "tool_use_id": "srvtoolu_1",
            "content": [
                {
                    "type": "web_search_result",
                    "url": "https://example.com",
                    "title": "Weather",
                    "encrypted_content": "EqgfCioIARgBIiQ3",
                    "page_age": None,
                }
            ],
        },
    ),
    block_stop(4),
    *message_end("tool_use"),
]

UNICODE = text_stream(["Grüße, ", "世界", "! 🎉🎉", " e\u0301 ", "\u2028line\u0085sep", " ok"])

UNKNOWN_TYPES = [
    message_start("msg_unknown"),
    {"type": "future_event", "payload": {"x": 1}},
    block_start(0, {"type": "text", "text": ""}),
    text_delta(0, "Hi"),
    delta(0, {"type": "future_delta", "value": 3}),
    delta(
        0,
        {"type": "citations_delta", "citation": {"type": "future_location", "cited_text": "c"}},
    ),
    block_stop(0),
    block_start(1, {"type": "future_block", "id": "fb_1", "input": {}, "extra": [1, 2]}),
    json_delta(1, '{"k": '),
    json_delta(1, '"v"}'),
    block_stop(1),
    block_start(2, {"type": "opaque_block", "blob": "zzz"}),
    block_stop(2),
    *message_end(),
]

SYNTHETIC: dict[str, list[dict[str, Any]]] = {
    "thinking": THINKING,
    "citations": CITATIONS,
    "tools": TOOLS,
    "unicode": UNICODE,
}
