"""``triostream demo``: a scripted conversation from a loopback server, via the real client."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import trio

from triostream._client import AsyncAnthropic
from triostream._exceptions import APIError
from triostream._stream import open_message_stream
from triostream.testing import MockServer, ScriptedConversation
from triostream.types import Message, MessageParam, ToolParam, ToolUseBlock

from ._args import DEFAULT_MODEL
from ._errors import EXIT_ERROR, EXIT_OK, describe, find, report
from ._render import StreamRenderer, Terminal, is_terminal, wants_color

__all__ = ["FORECAST_TOOL", "PROMPT", "forecast", "run"]

PROMPT = (
    "I'm spending the next three days in Lisbon. What will the weather be like, "
    "and what should I pack?"
)
SYSTEM = "You are a concise travel assistant. Use the tools you have before answering."
FORECAST_TOOL: ToolParam = {
    "name": "get_forecast",
    "description": "The daily weather forecast for a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "The city, e.g. Paris"},
            "days": {"type": "integer", "description": "How many days ahead"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "fields": {
                "type": "array",
                "items": {"type": "string", "enum": ["temperature", "rain", "wind", "uv"]},
            },
        },
        "required": ["city", "days"],
    },
}
_DAILY = (
    {"high": 21, "low": 14, "rain": "10%", "wind": "light"},
    {"high": 23, "low": 15, "rain": "5%", "wind": "light"},
    {"high": 19, "low": 13, "rain": "60%", "wind": "breezy"},
    {"high": 20, "low": 14, "rain": "20%", "wind": "light"},
)


def forecast(arguments: dict[str, Any]) -> dict[str, Any]:
    """The demo's tool, run locally: a made-up forecast (deterministic)."""
    days = arguments.get("days")
    count = days if isinstance(days, int) and 1 <= days <= len(_DAILY) else 3
    daily = _DAILY[:count]
    return {
        "city": arguments.get("city", "?"),
        "highs_c": [day["high"] for day in daily],
        "lows_c": [day["low"] for day in daily],
        "rain": [day["rain"] for day in daily],
        "pack": ["light layers", "sunglasses", "a compact umbrella"],
    }


@dataclass
class _Totals:
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0


async def _turn(
    client: AsyncAnthropic,
    nursery: trio.Nursery,
    renderer: StreamRenderer,
    totals: _Totals,
    messages: list[MessageParam],
) -> Message:
    started = trio.current_time()
    async with open_message_stream(
        nursery,
        client=client,
        model=DEFAULT_MODEL,
        max_tokens=2048,
        system=SYSTEM,
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[FORECAST_TOOL],
        messages=messages,
    ) as stream:
        async for event in stream:
            renderer.feed(event)
        message = await stream.get_final_message()
    renderer.finish()
    totals.turns += 1
    totals.seconds += trio.current_time() - started
    totals.input_tokens += message.usage.input_tokens
    totals.output_tokens += message.usage.output_tokens
    renderer.term.lines(
        f"[usage] input {message.usage.input_tokens}, output {message.usage.output_tokens} "
        f"tokens; stop_reason {message.stop_reason}",
        style="note",
    )
    return message


async def _conversation(
    client: AsyncAnthropic, nursery: trio.Nursery, term: Terminal, totals: _Totals
) -> None:
    renderer = StreamRenderer(term)
    messages: list[MessageParam] = [{"role": "user", "content": PROMPT}]
    term.lines(f"> {PROMPT}", style="user")
    message = await _turn(client, nursery, renderer, totals, messages)
    while message.stop_reason == "tool_use":
        results: list[Any] = []
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                result = json.dumps(forecast(block.input), ensure_ascii=False)
                term.gap()
                term.lines(f"[tool result] {block.name}", style="header")
                term.lines(f"  {result}", style="tool")
                results.append({"type": "tool_result", "tool_use_id": block.id, "content": result})
        messages.append({"role": "assistant", "content": message.content})
        messages.append({"role": "user", "content": results})
        message = await _turn(client, nursery, renderer, totals, messages)


async def _demo(term: Terminal, delay: float, use_api: bool) -> None:
    totals = _Totals()
    async with trio.open_nursery() as nursery:
        if use_api:
            client = AsyncAnthropic()  # ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL) decide
            term.lines(
                f"triostream demo: the conversation with the API at {client.base_url} "
                "(ANTHROPIC_API_KEY is set; --local uses the loopback server instead)",
                style="note",
            )
        else:
            server = await MockServer.start(nursery)
            server.handler = ScriptedConversation(delay=delay)
            client = AsyncAnthropic(api_key="demo-key", base_url=server.base_url)
            term.lines(
                f"triostream demo: a scripted conversation from {server.base_url} "
                "(a loopback server; no API key, no network)",
                style="note",
            )
        term.gap()
        async with client:
            await _conversation(client, nursery, term, totals)
        nursery.cancel_scope.cancel()
    rate = totals.output_tokens / totals.seconds if totals.seconds > 0 else 0.0
    term.gap()
    term.lines(
        f"done: {totals.turns} turns, {totals.output_tokens} output tokens in "
        f"{totals.seconds:.2f} s ({rate:.1f} tokens/s); usage: "
        f"{totals.input_tokens} input + {totals.output_tokens} output tokens",
        style="summary",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo; the exit code.

    With ``ANTHROPIC_API_KEY`` set (and no ``--local``) the same conversation goes to the
    real API; otherwise to the embedded loopback server.
    """
    out = sys.stdout
    term = Terminal(out, color=wants_color(out, args.color), live=is_terminal(out))
    use_api = bool(os.environ.get("ANTHROPIC_API_KEY")) and not args.local
    try:
        trio.run(_demo, term, args.delay, use_api)
    except Exception as exc:  # the demo's own nursery may wrap it in a group
        error = find(exc, APIError)
        if error is None:
            raise
        term.gap()
        report("demo", describe(error))
        return EXIT_ERROR
    return EXIT_OK
