"""The command line's arguments: ``triostream {demo,chat,replay} ...``."""

from __future__ import annotations

import argparse

from triostream._version import __version__

__all__ = ["DEFAULT_MODEL", "DEMO_DELAY", "build_parser"]

DEFAULT_MODEL = "claude-sonnet-4-5"
DEMO_DELAY = 0.03


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10 seconds, not {value}")
    return value


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def _chunking(text: str) -> str | int:
    if text == "event":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f'"event" or a chunk size in bytes, not {text!r}'
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``triostream``; each subcommand sets ``command``."""
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--color",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="colour the output (default: on a terminal, unless NO_COLOR is set)",
    )

    parser = argparse.ArgumentParser(
        prog="triostream",
        description="Stream from the Anthropic Messages API with trio.",
        epilog="exit codes: 0 ok, 1 API or stream error, 2 usage error or no API key, "
        "130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"triostream {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        parents=[output],
        help="stream a conversation: from a local server, or the API when ANTHROPIC_API_KEY is set",
        description="Stream a conversation through the real client: thinking, text, a tool "
        "call whose input renders as it arrives, a tool result, usage. Without "
        "ANTHROPIC_API_KEY (or with --local) it comes from the embedded loopback server "
        "with a scripted conversation: no key, no network.",
    )
    demo.add_argument(
        "--local",
        action="store_true",
        help="use the embedded loopback server even when ANTHROPIC_API_KEY is set",
    )
    demo.add_argument(
        "--delay",
        type=_seconds,
        default=DEMO_DELAY,
        metavar="SECONDS",
        help=f"pause between streamed events (default {DEMO_DELAY}; 0 for full speed)",
    )

    chat = commands.add_parser(
        "chat",
        parents=[output],
        help="stream one answer from the API (needs ANTHROPIC_API_KEY)",
        description="Send one prompt and stream the answer to stdout. The API key comes "
        "from ANTHROPIC_API_KEY; the prompt from the argument, or stdin when it is '-' or "
        "absent.",
    )
    chat.add_argument("prompt", nargs="?", help="the prompt ('-' or absent: read stdin)")
    chat.add_argument("-m", "--model", default=DEFAULT_MODEL, help=f"default {DEFAULT_MODEL}")
    chat.add_argument("-s", "--system", help="a system prompt")
    chat.add_argument(
        "--max-tokens", type=_positive_int, default=1024, metavar="N", help="default 1024"
    )
    chat.add_argument("-t", "--temperature", type=_temperature, help="0 to 1")
    chat.add_argument(
        "--base-url", help="the API's base URL (default: ANTHROPIC_BASE_URL or the public API)"
    )

    replay = commands.add_parser(
        "replay",
        parents=[output],
        help="render a recorded SSE body through the streaming pipeline",
        description="Serve a recorded Messages API stream from the loopback server and read "
        "it with the real client: text to stdout (or every event as JSON lines), then a "
        "summary on stderr.",
    )
    replay.add_argument("file", metavar="FILE.sse", help="a recorded SSE response body")
    replay.add_argument("--events", action="store_true", help="print every event as one JSON line")
    replay.add_argument(
        "--chunking",
        type=_chunking,
        default="event",
        metavar="event|N",
        help="how the body is cut into HTTP chunks: one per event (default) or N bytes",
    )
    return parser
