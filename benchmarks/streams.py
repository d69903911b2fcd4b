"""Synthetic Messages API streams for the benchmarks: deterministic, realistic, named by a key.

A :class:`StreamSpec` names one stream and how it is served, and round-trips
through a short string key (``text:10000:event``, ``tool:1048576:16384``,
``mixed:0:event``). The client sends the key as the request's ``model``, and
the server process builds (and caches) the same reply from it, so both sides
agree on every byte without sharing memory.

Kinds:

- ``text``: one text block of ``size`` text deltas of 1-3 words each.
- ``tool``: one ``tool_use`` block whose input is a JSON object of ``size``
  bytes, streamed as ~20-byte ``partial_json`` pieces.
- ``mixed``: thinking (2,000 deltas and a signature), text (2,000 deltas) and
  two tool calls of 16 KB each.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = ["JSON_PIECE", "RAW_EVENT_TYPES", "StreamSpec", "build_events", "content_of"]

Kind = Literal["text", "tool", "mixed"]
#: ``"event"`` (one SSE event per HTTP chunk) or a chunk size in bytes.
Chunking = Literal["event"] | int

#: Bytes of tool-input JSON per ``input_json_delta`` (the API sends ~10-30).
JSON_PIECE = 20
#: The raw event types a consumer of a Messages stream sees once each (ping excluded).
RAW_EVENT_TYPES = frozenset(
    {
        "message_start",
        "message_delta",
        "message_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
    }
)

_WORDS = [
    "the",
    "stream",
    "of",
    "tokens",
    "arrives",
    "one",
    "delta",
    "at",
    "a",
    "time",
    "while",
    "the",
    "client",
    "keeps",
    "a",
    "snapshot",
    "trio",
    "nursery",
    "cancel",
    "scope",
    "channel",
    "memory",
    "buffer",
    "socket",
    "parser",
    "accumulator",
    "event",
    "message",
    "content",
    "block",
    "tool",
    "input",
    "json",
    "thinking",
    "signature",
    "latency",
    "throughput",
    "café",
    "naïve",
    "résumé",
    "—",
    "“quoted”",
    "数据",
    "流",
    "✓",
    "and",
    "or",
    "but",
    "so",
    "then",
    "because",
    "therefore",
    "however",
]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One benchmark stream: what it contains (``kind``, ``size``) and how it is chunked."""

    kind: Kind
    size: int
    chunking: Chunking = "event"

    @property
    def key(self) -> str:
        """The string the client sends as ``model`` and the server decodes."""
        return f"{self.kind}:{self.size}:{self.chunking}"

    @classmethod
    def from_key(cls, key: str) -> StreamSpec:
        """Parse a key made by :attr:`key`; raises ValueError on anything else."""
        try:
            kind, size, chunking = key.split(":")
        except ValueError:
            raise ValueError(f"not a benchmark stream key: {key!r}") from None
        if kind not in ("text", "tool", "mixed"):
            raise ValueError(f"unknown stream kind in {key!r}")
        return cls(kind, int(size), "event" if chunking == "event" else int(chunking))  # type: ignore[arg-type]

    @property
    def label(self) -> str:
        """A short human name: ``text 10k``, ``tool 1 MB``, ``mixed``."""
        if self.kind == "text":
            return f"text {_count(self.size)} deltas"
        if self.kind == "tool":
            return f"tool input {_bytes(self.size)}"
        return "mixed (thinking, text, 2 tools)"

    @property
    def chunking_label(self) -> str:
        """``event/chunk`` or ``16 KB chunks``."""
        return "event/chunk" if self.chunking == "event" else f"{_bytes(int(self.chunking))} chunks"

    def events(self) -> list[dict[str, Any]]:
        """The stream's events, as the API would send them (built anew on each call)."""
        return build_events(self.kind, self.size)

    @property
    def wire_events(self) -> int:
        """How many SSE events the body holds (the ping included): the per-event denominator."""
        return _shape(self.kind, self.size).wire_events

    @property
    def raw_events(self) -> int:
        """How many raw events a Messages consumer sees (the ping excluded)."""
        return _shape(self.kind, self.size).raw_events

    @property
    def content(self) -> tuple[tuple[str, Any], ...]:
        """The final message's content as ``(block type, text or input)`` pairs."""
        return _shape(self.kind, self.size).content

    @property
    def body_bytes(self) -> int:
        """The size of the SSE body."""
        return _shape(self.kind, self.size).body_bytes


@dataclass(frozen=True, slots=True)
class _Shape:
    wire_events: int
    raw_events: int
    body_bytes: int
    content: tuple[tuple[str, Any], ...]


@lru_cache(maxsize=64)
def _shape(kind: Kind, size: int) -> _Shape:
    events = build_events(kind, size)
    blocks: dict[int, list[Any]] = {}
    for event in events:
        if event["type"] == "content_block_start":
            blocks[event["index"]] = [event["content_block"]["type"], []]
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            piece = delta.get("text", delta.get("thinking", delta.get("partial_json")))
            if piece is not None:
                blocks[event["index"]][1].append(piece)
    content = tuple(
        (kind_, json.loads("".join(parts)) if kind_ == "tool_use" else "".join(parts))
        for kind_, parts in blocks.values()
    )
    body = sum(
        len(json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode()) for e in events
    )
    return _Shape(
        wire_events=len(events),
        raw_events=sum(1 for e in events if e["type"] in RAW_EVENT_TYPES),
        body_bytes=body + sum(len(e["type"]) + 16 for e in events),
        content=content,
    )


def content_of(message: Any) -> tuple[tuple[str, Any], ...]:
    """A final message (triostream's or the SDK's) as ``(block type, text or input)`` pairs."""
    out: list[tuple[str, Any]] = []
    for block in message.content:
        kind = block.type
        if kind == "text":
            out.append((kind, block.text))
        elif kind == "thinking":
            out.append((kind, block.thinking))
        elif kind == "tool_use":
            out.append((kind, block.input))
        else:
            out.append((kind, None))
    return tuple(out)


def _count(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def _bytes(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MB"
    if n >= 1 << 10:
        return f"{n / 1024:g} KB"
    return f"{n} B"


# --- building the events ---------------------------------------------------------------------


def build_events(kind: Kind, size: int) -> list[dict[str, Any]]:
    """The events of one stream; deterministic for a given ``(kind, size)``."""
    rng = random.Random(f"{kind}:{size}")
    if kind == "text":
        blocks = [_text_block(0, size, rng)]
    elif kind == "tool":
        blocks = [_tool_block(0, "toolu_bench_0", size, rng)]
    elif kind == "mixed":
        blocks = [
            _thinking_block(0, 2000, rng),
            _text_block(1, 2000, rng),
            _tool_block(2, "toolu_bench_a", 16 << 10, rng),
            _tool_block(3, "toolu_bench_b", 16 << 10, rng),
        ]
    else:
        raise ValueError(f"unknown stream kind {kind!r}")
    stop_reason = "tool_use" if kind != "text" else "end_turn"
    events: list[dict[str, Any]] = [_message_start(f"msg_bench_{kind}_{size}")]
    for block in blocks:
        events.extend(block)
    events.insert(2, {"type": "ping"})  # the API pings once the first block has started
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": len(events)},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _message_start(msg_id: str) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5-20250929",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 1200,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        },
    }


def _text_pieces(count: int, rng: random.Random) -> list[str]:
    words = _WORDS
    return [
        " " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 3))) for _ in range(count)
    ]


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _text_block(index: int, deltas: int, rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        },
        *(_delta(index, {"type": "text_delta", "text": p}) for p in _text_pieces(deltas, rng)),
        {"type": "content_block_stop", "index": index},
    ]


def _thinking_block(index: int, deltas: int, rng: random.Random) -> list[dict[str, Any]]:
    start = {"type": "thinking", "thinking": "", "signature": ""}
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *(
            _delta(index, {"type": "thinking_delta", "thinking": p})
            for p in _text_pieces(deltas, rng)
        ),
        _delta(index, {"type": "signature_delta", "signature": "EqQBCgIYAhIM" + "x" * 300}),
        {"type": "content_block_stop", "index": index},
    ]


def tool_input_json(size: int, rng: random.Random) -> str:
    """A JSON object of about ``size`` bytes: records with strings, numbers, lists, escapes."""
    records: list[dict[str, Any]] = []
    out = {"path": "/srv/data/records.json", "overwrite": True, "records": records}
    length = len(json.dumps(out))
    i = 0
    while length < size:
        record = {
            "id": i,
            "name": " ".join(rng.choice(_WORDS) for _ in range(3)),
            "score": round(rng.random() * 100, 3),
            "tags": [rng.choice(_WORDS) for _ in range(2)],
            "note": 'line "one"\nline two\t✓',
            "ok": i % 3 == 0,
        }
        records.append(record)
        length += len(json.dumps(record)) + 2
        i += 1
    return json.dumps(out)


def _tool_block(index: int, tool_id: str, size: int, rng: random.Random) -> list[dict[str, Any]]:
    text = tool_input_json(size, rng)
    pieces = [text[i : i + JSON_PIECE] for i in range(0, len(text), JSON_PIECE)]
    start = {"type": "tool_use", "id": tool_id, "name": "write_records", "input": {}}
    return [
        {"type": "content_block_start", "index": index, "content_block": start},
        *(_delta(index, {"type": "input_json_delta", "partial_json": p}) for p in pieces),
        {"type": "content_block_stop", "index": index},
    ]
