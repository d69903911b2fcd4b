"""``triostream chat "prompt"``: stream one answer from the API to stdout."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import trio

from triostream._client import AsyncAnthropic
from triostream._exceptions import APIError, MissingCredentialsError
from triostream.types import Message

from ._errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, describe, find, report
from ._render import Terminal, is_terminal, wants_color

__all__ = ["read_prompt", "run"]


def read_prompt(args: argparse.Namespace) -> str | None:
    """The prompt: the argument, or stdin when it is ``-`` or absent and stdin is not a TTY."""
    if args.prompt is not None and args.prompt != "-":
        text: str = args.prompt
    elif args.prompt == "-" or not is_terminal(sys.stdin):
        text = sys.stdin.read()
    else:
        return None
    return text.strip() or None


async def _chat(client: AsyncAnthropic, params: dict[str, Any], term: Terminal) -> Message:
    async with client, client.messages.stream(**params) as stream:
        async for text in stream.text_stream:
            term.write(text)
        message = await stream.get_final_message()
    term.end_line()
    return message


def run(args: argparse.Namespace) -> int:
    """Run ``chat``; the exit code."""
    prompt = read_prompt(args)
    if prompt is None:
        report("chat", "no prompt: give one as an argument, or on stdin with '-'")
        return EXIT_USAGE
    try:
        client = AsyncAnthropic(base_url=args.base_url)
    except MissingCredentialsError:
        report("chat", "no API key: set the ANTHROPIC_API_KEY environment variable")
        return EXIT_USAGE
    params: dict[str, Any] = {
        "model": args.model,
        "max_tokens": args.max_tokens,
        "messages": [{"role": "user", "content": prompt}],
    }
    if args.system:
        params["system"] = args.system
    if args.temperature is not None:
        params["temperature"] = args.temperature
    term = Terminal(sys.stdout, color=wants_color(sys.stdout, args.color), live=False)
    try:
        message = trio.run(_chat, client, params, term)
    except APIError as exc:
        term.end_line()
        report("chat", describe(exc))
        return EXIT_ERROR
    except BaseException as exc:
        if find(exc, KeyboardInterrupt) is not None:
            term.end_line()
            report("chat", "interrupted")
            return EXIT_INTERRUPTED
        raise
    if is_terminal(sys.stderr):
        usage = message.usage
        note = (
            f"[{message.model}: {usage.input_tokens} input, {usage.output_tokens} output "
            f"tokens; {message.stop_reason}]"
        )
        err = Terminal(sys.stderr, color=wants_color(sys.stderr, args.color), live=False)
        err.lines(note, style="note")
    return EXIT_OK
