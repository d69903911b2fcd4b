"""``triostream replay FILE.sse``: a recorded stream, served locally and read by the real client."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgspec
import trio

from triostream._client import AsyncAnthropic
from triostream._exceptions import APIError
from triostream._stream import open_message_stream
from triostream.testing import Chunking, MockServer, Reply
from triostream.types import Message, MessageStreamEvent

from ._errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, describe, report
from ._render import StreamRenderer, Terminal, is_terminal, wants_color

__all__ = ["event_json", "run"]

_encoder = msgspec.json.Encoder()


def event_json(event: MessageStreamEvent) -> str:
    """One event as a line of JSON (derived events through ``to_dict()``, snapshot included)."""
    data: Any = event.to_dict() if hasattr(event, "to_dict") else event
    return _encoder.encode(msgspec.to_builtins(data)).decode()


async def _read(
    client: AsyncAnthropic, nursery: trio.Nursery, term: Terminal, events: bool
) -> Message:
    renderer = StreamRenderer(term)
    try:
        async with open_message_stream(
            nursery,
            client=client,
            model="claude-replay",
            max_tokens=1,
            messages=[{"role": "user", "content": "replay"}],
        ) as stream:
            async for event in stream:
                if events:
                    term.lines(event_json(event))
                else:
                    renderer.feed(event)
            return await stream.get_final_message()
    finally:
        renderer.finish()


async def _replay(
    body: bytes, chunking: Chunking, term: Terminal, events: bool
) -> Message | APIError:
    async with trio.open_nursery() as nursery:
        server = await MockServer.start(nursery)
        server.enqueue(Reply.sse(body, chunking=chunking))
        try:
            async with AsyncAnthropic(
                api_key="replay", base_url=server.base_url, max_retries=0
            ) as client:
                return await _read(client, nursery, term, events)
        except APIError as exc:
            return exc
        finally:
            nursery.cancel_scope.cancel()


def run(args: argparse.Namespace) -> int:
    """Run ``replay``; the exit code."""
    try:
        with open(args.file, "rb") as file:
            body = file.read()
    except OSError as exc:
        report("replay", f"cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_USAGE
    out = sys.stdout
    color = wants_color(out, args.color) and not args.events
    term = Terminal(out, color=color, live=is_terminal(out) and not args.events)
    outcome = trio.run(_replay, body, args.chunking, term, args.events)
    if isinstance(outcome, APIError):
        report("replay", describe(outcome))
        return EXIT_ERROR
    usage = outcome.usage
    report(
        "replay",
        f"{outcome.id} ({outcome.model}): stop_reason {outcome.stop_reason}; "
        f"usage: {usage.input_tokens} input, {usage.output_tokens} output tokens",
    )
    return EXIT_OK
