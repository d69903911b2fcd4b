"""Terminal rendering for the command line: colour, live redraw, and a stream's events as text.

Colour only when wanted (``--color``/``--no-color``, ``NO_COLOR``, a TTY);
cursor movement only when stdout is a terminal. Anywhere else the output is
plain text: no escape codes at all.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from typing import Any, Final, TextIO

from triostream.types import (
    ContentBlock,
    ContentBlockStartEvent,
    ContentBlockStopEvent,
    InputJsonEvent,
    MessageStopEvent,
    MessageStreamEvent,
    ServerToolUseBlock,
    TextEvent,
    ThinkingEvent,
    ToolUseBlock,
    UnknownContentBlock,
)

__all__ = ["StreamRenderer", "Terminal", "is_terminal", "pretty_json", "wants_color"]

STYLES: Final = {
    "thinking": "\x1b[2;3m",
    "header": "\x1b[1;36m",
    "tool": "\x1b[36m",
    "user": "\x1b[1;33m",
    "note": "\x1b[2m",
    "summary": "\x1b[1;32m",
    "error": "\x1b[1;31m",
}
_RESET: Final = "\x1b[0m"
_ERASE_DOWN: Final = "\x1b[J"
_TOOL_INDENT: Final = "  "


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal that understands escape codes."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM") != "dumb"


def wants_color(stream: TextIO, flag: bool | None) -> bool:
    """Colour: as ``--color``/``--no-color`` say, else not with ``NO_COLOR`` set, else on a TTY."""
    if flag is not None:
        return flag
    if os.environ.get("NO_COLOR"):
        return False
    return is_terminal(stream)


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON, non-ASCII characters kept."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


class Terminal:
    """A text stream the CLI writes to, with optional colour and one live (redrawn) region.

    ``live`` allows cursor movement: :meth:`redraw` then replaces the lines it
    drew last time. Without it :meth:`redraw` does nothing; the caller prints
    the final version with :meth:`lines` instead.
    """

    def __init__(self, out: TextIO, *, color: bool, live: bool) -> None:
        """Write to ``out``; ``color`` and ``live`` as decided by the caller."""
        self.out = out
        self.color = color
        self.live = live
        self._at_line_start = True
        self._wrote = False
        self._gap = False
        self._live_rows = 0
        self._live_lines: list[str] = []

    def paint(self, text: str, style: str | None) -> str:
        """``text`` in ``style`` (a key of ``STYLES``), or unchanged without colour."""
        if not self.color or style is None or not text:
            return text
        return f"{STYLES[style]}{text}{_RESET}"

    def write(self, text: str, style: str | None = None) -> None:
        """Write text as it streams in (no newline added)."""
        if not text:
            return
        self._before_output()
        self.out.write(self.paint(text, style))
        self.out.flush()
        self._at_line_start = text.endswith("\n")

    def lines(self, *lines: str, style: str | None = None) -> None:
        """Write whole lines, starting on a new line."""
        self.end_line()
        self._before_output()
        self.out.write("".join(self.paint(line, style) + "\n" for line in lines))
        self.out.flush()
        self._at_line_start = True

    def end_line(self) -> None:
        """Finish the current line, if one is started."""
        if not self._at_line_start:
            self.out.write("\n")
            self.out.flush()
            self._at_line_start = True

    def gap(self) -> None:
        """Leave one blank line before whatever is written next (none at the very start)."""
        self.end_line()
        self._gap = self._wrote

    def redraw(self, lines: list[str], style: str | None = None) -> None:
        """Replace the live region with ``lines`` (only when ``live``)."""
        if not self.live or (self._live_rows and lines == self._live_lines):
            return
        self.end_line()
        self._before_output()
        parts = []
        if self._live_rows:
            parts.append(f"\r\x1b[{self._live_rows}F{_ERASE_DOWN}")
        parts.extend(self.paint(line, style) + "\n" for line in lines)
        self.out.write("".join(parts))
        self.out.flush()
        self._live_lines = list(lines)
        columns = max(shutil.get_terminal_size().columns, 1)
        self._live_rows = sum(max(1, math.ceil(len(line) / columns)) for line in lines)

    def commit(self) -> None:
        """Keep the live region as it is; the next :meth:`redraw` starts a new one."""
        self._live_rows = 0
        self._live_lines = []

    def _before_output(self) -> None:
        if self._gap:
            self.out.write("\n")
            self._gap = False
        self._wrote = True


def _tool_name(block: ContentBlock) -> str | None:
    """The tool's name when ``block`` is a tool call whose input streams in, else None."""
    if isinstance(block, (ToolUseBlock, ServerToolUseBlock)):
        return block.name
    if isinstance(block, UnknownContentBlock) and "input" in block:
        return str(block.get("name", block.type))
    return None


def _tool_input(block: ContentBlock | UnknownContentBlock | None) -> Any:
    if isinstance(block, (ToolUseBlock, ServerToolUseBlock)):
        return block.input
    if isinstance(block, UnknownContentBlock):
        return block.get("input")
    return None


class StreamRenderer:
    """Renders a message stream's events: thinking dimmed, text as it comes, tool input live.

    On a live terminal a tool call's input is redrawn from each
    ``InputJsonEvent.snapshot`` as it arrives; elsewhere it is printed once,
    complete, when its block ends.
    """

    def __init__(self, term: Terminal) -> None:
        """Render to ``term``."""
        self.term = term
        self._open_tools: set[int] = set()

    def feed(self, event: MessageStreamEvent) -> None:
        """Render one event."""
        term = self.term
        if isinstance(event, TextEvent):
            term.write(event.text)
        elif isinstance(event, ThinkingEvent):
            term.write(event.thinking, "thinking")
        elif isinstance(event, InputJsonEvent):
            term.redraw(self._tool_lines(event.snapshot), "tool")
        elif isinstance(event, ContentBlockStartEvent):
            self._start(event.index, event.content_block)
        elif isinstance(event, ContentBlockStopEvent):
            if event.index in self._open_tools:
                self._show_input(event.index, _tool_input(event.content_block))
        elif isinstance(event, MessageStopEvent):
            content = event.message.content
            for index in sorted(self._open_tools):
                # A tool call the message ended in the middle of (max_tokens): no block stop.
                self._show_input(
                    index, _tool_input(content[index] if index < len(content) else None)
                )

    def finish(self) -> None:
        """End the output cleanly (after the stream ended or failed)."""
        self._open_tools.clear()
        self.term.commit()
        self.term.end_line()

    def _start(self, index: int, block: ContentBlock) -> None:
        term = self.term
        term.gap()
        name = _tool_name(block)
        if name is not None:
            term.lines(f"[tool call] {name}", style="header")
            self._open_tools.add(index)
        elif block.type == "thinking":
            term.lines("[thinking]", style="header")
        elif block.type == "redacted_thinking":
            term.lines("[redacted thinking]", style="header")
        elif block.type != "text":
            term.lines(f"[{block.type}]", style="header")

    def _show_input(self, index: int, value: Any) -> None:
        self._open_tools.discard(index)
        term = self.term
        lines = self._tool_lines(value if value is not None else {})
        if term.live:
            term.redraw(lines, "tool")
            term.commit()
        else:
            term.lines(*lines, style="tool")

    @staticmethod
    def _tool_lines(value: Any) -> list[str]:
        return [_TOOL_INDENT + line for line in pretty_json(value).splitlines()]
