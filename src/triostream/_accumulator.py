"""MessageAccumulator: raw stream events in, the message so far and the events to hand on out.

Sans-IO: no trio, no httpx.  The trio stream and the sync stream both drive it.

Costs are linear in the size of the stream: text and thinking pieces are kept
in lists and joined only when someone reads the text (a derived event's
``snapshot``, ``snapshot`` here, or the end of the block); tool input goes
through an incremental JSON parser and is decoded once, at ``content_block_stop``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, Final, NoReturn, cast

import msgspec

from ._exceptions import APIError, APIResponseValidationError, APIStatusError, make_status_error
from ._partial_json import PartialJSONParser, parse_partial
from .types._base import UnknownContentBlock, UnknownEvent
from .types._content import ContentBlock, ServerToolUseBlock, TextBlock, ThinkingBlock, ToolUseBlock
from .types._events import (
    CitationEvent,
    CitationsDelta,
    ContentBlockStopEvent,
    Delta,
    ErrorEvent,
    InputJSONDelta,
    InputJsonEvent,
    MessageDelta,
    MessageStopEvent,
    MessageStreamEvent,
    PingEvent,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RawMessageStreamEvent,
    SignatureDelta,
    SignatureEvent,
    TextDelta,
    TextEvent,
    ThinkingDelta,
    ThinkingEvent,
)
from .types._message import Message, MessageDeltaUsage

__all__ = ["MessageAccumulator", "status_error_from_event"]

_UNSET: Final = msgspec.UNSET
_decode_json: Final = msgspec.json.Decoder().decode
_DELTA_FIELDS: Final = MessageDelta.__struct_fields__
_USAGE_FIELDS: Final = MessageDeltaUsage.__struct_fields__

Out = list[MessageStreamEvent]

TOOL_INPUT_MAX_DEPTH: Final = 512
"""Deepest nesting the partial-JSON parser follows (for snapshots, and to locate the error
in input that is not valid JSON).  msgspec, like Python, stops at about 1,000 levels and
the message around an input adds a few: snapshots within this stay encodable."""


class _BlockState:
    """What the accumulator keeps for one content block while it streams."""

    __slots__ = ("block", "dirty", "index", "owner", "stopped")

    def __init__(self, owner: MessageAccumulator, index: int, block: ContentBlock) -> None:
        self.owner = owner
        self.index = index
        self.block = block
        self.dirty = False
        self.stopped = False

    def apply(self, delta: Delta, out: Out) -> None:
        """Apply a delta; append the derived event (if any) to ``out``."""

    def flush(self) -> None:
        """Bring ``block`` up to date with every delta received."""

    def finish(self, *, complete: bool) -> None:
        """The block ended (``complete``) or the message ended without its stop event."""
        self.flush()

    def _touch(self) -> None:
        if not self.dirty:
            self.dirty = True
            self.owner._dirty.append(self)


class _Pieces:
    """Append-only text pieces with a cached join: ``text_at(n)`` is the first n pieces.

    The snapshot source of ``TextEvent`` / ``ThinkingEvent``: it references nothing but
    strings, so those events (``gc=False`` Structs) can never be part of a reference cycle.
    """

    __slots__ = ("joined", "joined_n", "pieces")

    def __init__(self, initial: str) -> None:
        self.pieces: list[str] = [initial] if initial else []
        self.joined = initial
        self.joined_n = len(self.pieces)

    def text_at(self, n: int) -> str:
        if n == self.joined_n:
            return self.joined
        if n > self.joined_n:
            text = self.joined + "".join(self.pieces[self.joined_n : n])
            self.joined, self.joined_n = text, n
            return text
        return "".join(self.pieces[:n])

    snapshot_at = text_at


class _TextState(_BlockState):
    __slots__ = ("text",)
    block: TextBlock

    def __init__(self, owner: MessageAccumulator, index: int, block: TextBlock) -> None:
        super().__init__(owner, index, block)
        self.text = _Pieces(block.text)
        if isinstance(block.citations, list):
            block.citations = list(block.citations)

    def apply(self, delta: Delta, out: Out) -> None:
        # A text delta never comes here: MessageAccumulator.feed_all applies it inline.
        if type(delta) is CitationsDelta:
            assert isinstance(delta, CitationsDelta)
            citations = self.block.citations
            if not isinstance(citations, list):
                citations = self.block.citations = []
            citations.append(delta.citation)
            out.append(CitationEvent(delta.citation, list(citations)))

    def flush(self) -> None:
        self.block.text = self.text.text_at(len(self.text.pieces))


class _ThinkingState(_BlockState):
    __slots__ = ("thinking",)
    block: ThinkingBlock

    def __init__(self, owner: MessageAccumulator, index: int, block: ThinkingBlock) -> None:
        super().__init__(owner, index, block)
        self.thinking = _Pieces(block.thinking)

    def apply(self, delta: Delta, out: Out) -> None:
        kind = type(delta)
        if kind is ThinkingDelta:
            assert isinstance(delta, ThinkingDelta)
            thinking = self.thinking
            pieces = thinking.pieces
            pieces.append(delta.thinking)
            if not self.dirty:
                self._touch()
            out.append(ThinkingEvent(delta.thinking, None, thinking, len(pieces)))
        elif kind is SignatureDelta:
            assert isinstance(delta, SignatureDelta)
            self.block.signature = delta.signature
            out.append(SignatureEvent(delta.signature))

    def flush(self) -> None:
        self.block.thinking = self.thinking.text_at(len(self.thinking.pieces))


class _ToolInput:
    """A tool input's JSON text as it streams in, and its best parse at any point so far.

    The snapshot source of ``InputJsonEvent``: it references only the pieces, the
    parser's values and the block's initial input (no accumulator), so those events
    (``gc=False`` Structs) are not part of a reference cycle unless one is built
    into a snapshot by hand.
    """

    __slots__ = ("fed", "initial_input", "length", "parser", "pieces")

    def __init__(self, initial_input: Any) -> None:
        self.pieces: list[str] = []
        self.length = 0
        self.fed = 0
        self.parser = PartialJSONParser(max_depth=TOOL_INPUT_MAX_DEPTH)
        self.initial_input = initial_input

    def caught_up(self) -> PartialJSONParser:
        """The parser, fed every piece received so far."""
        parser = self.parser
        pieces = self.pieces
        for position in range(self.fed, len(pieces)):
            parser.feed(pieces[position])
        self.fed = len(pieces)
        return parser

    def snapshot_at(self, position: int) -> Any:
        """The best parse of the first ``position`` characters (partial strings included)."""
        if position == self.length:
            value = self.caught_up().snapshot(partial_strings=True)
        else:
            value = parse_partial("".join(self.pieces)[:position], partial_strings=True)
        return self.initial_input if value is None else value


class _ToolInputState(_BlockState):
    """A block whose ``input`` streams in as JSON text (tool_use, server_tool_use, ...).

    The pieces are only kept as they arrive.  The incremental parser catches up
    with them when a snapshot is read; at the block's stop the whole text is
    decoded once by msgspec, and the parser looks closer only if that fails.
    """

    __slots__ = ("input",)

    def __init__(self, owner: MessageAccumulator, index: int, block: ContentBlock) -> None:
        super().__init__(owner, index, block)
        self.input = _ToolInput(self._get_input())

    def _get_input(self) -> Any:
        block = self.block
        if isinstance(block, UnknownContentBlock):
            return block.get("input")
        return getattr(block, "input", None)

    def _set_input(self, value: Any) -> None:
        block = self.block
        if isinstance(block, UnknownContentBlock):
            block["input"] = value
        else:
            block.input = value  # type: ignore[union-attr]

    def apply(self, delta: Delta, out: Out) -> None:
        if type(delta) is InputJSONDelta:
            assert isinstance(delta, InputJSONDelta)
            piece = delta.partial_json
            tool_input = self.input
            tool_input.pieces.append(piece)
            tool_input.length += len(piece)
            if not self.dirty:
                self._touch()
            out.append(InputJsonEvent(piece, None, tool_input, tool_input.length))

    def flush(self) -> None:
        tool_input = self.input
        if tool_input.length:
            self._set_input(tool_input.snapshot_at(tool_input.length))

    def finish(self, *, complete: bool) -> None:
        tool_input = self.input
        text = "".join(tool_input.pieces)
        if isinstance(self.block, (ToolUseBlock, ServerToolUseBlock)):
            self.block.__dict__["_input_json"] = text
        if not text.strip():
            self._set_input(tool_input.initial_input)
            return
        if not complete:
            # The message ended without this block's stop (e.g. max_tokens): keep the best
            # parse of what arrived, without a half-received trailing string.
            value = tool_input.caught_up().snapshot(partial_strings=False)
            self._set_input(tool_input.initial_input if value is None else value)
            return
        try:
            value = _decode_json(text)
        except (msgspec.DecodeError, RecursionError):
            value = None
        if isinstance(value, dict):
            self._set_input(value)
            return
        parser = tool_input.caught_up()
        reason = parser.error or (
            f"expected a JSON object, got {type(value).__name__}"
            if parser.complete
            else "the text ends before the JSON does"
        )
        self.owner._deferred_error = APIResponseValidationError(
            f"the input of tool call {self._get_name()!r} (content block {self.index}) never "
            f"became valid JSON: {reason}",
            body=text,
        )
        best = parser.snapshot(partial_strings=False)
        self._set_input(best if isinstance(best, dict) else tool_input.initial_input)

    def _get_name(self) -> str:
        block = self.block
        name = block.get("name") if isinstance(block, UnknownContentBlock) else block.name  # type: ignore[union-attr]
        return name if isinstance(name, str) else "?"


class _OpaqueState(_BlockState):
    """A block that takes no deltas this version understands; deltas pass through unchanged."""

    __slots__ = ()


def _state_for(owner: MessageAccumulator, index: int, block: ContentBlock) -> _BlockState:
    if isinstance(block, TextBlock):
        return _TextState(owner, index, block)
    if isinstance(block, ThinkingBlock):
        return _ThinkingState(owner, index, block)
    if isinstance(block, (ToolUseBlock, ServerToolUseBlock)):
        return _ToolInputState(owner, index, block)
    if isinstance(block, UnknownContentBlock) and "input" in block:
        return _ToolInputState(owner, index, block)
    return _OpaqueState(owner, index, block)


def _copy_block(block: ContentBlock) -> ContentBlock:
    if isinstance(block, dict):  # an UnknownContentBlock, kept (see ContentBlock)
        return cast("ContentBlock", UnknownContentBlock(block))
    return copy.copy(block)


class MessageAccumulator:
    """Builds a :class:`Message` from raw stream events and derives the events to hand on.

    ::

        acc = MessageAccumulator()
        for raw_event in raw_events:
            for event in acc.feed(raw_event):
                ...                      # MessageStreamEvents, in the official SDK's order
        acc.snapshot                     # the Message so far (None before message_start)
        acc.final_message()              # the Message; raises a deferred error (bad tool input)

    For each raw event, ``feed`` returns the events to hand on: the raw event
    itself (``content_block_stop`` and ``message_stop`` enriched with the
    finished block / message), followed by the derived event of a delta
    (``TextEvent``, ``InputJsonEvent``, ``ThinkingEvent``, ``SignatureEvent``,
    ``CitationEvent``).  ``ping`` is consumed; an event of an unknown type is
    passed on as it is.

    Event order is checked: an event before ``message_start``, or for a block
    index that has not started (or has stopped), raises
    :class:`APIResponseValidationError`; ``event: error`` raises the
    :class:`APIStatusError` subclass of its type.  After any error the
    accumulator is in a sticky error state: every later ``feed`` raises the same
    error, and ``snapshot`` still holds everything that arrived before it.
    """

    def __init__(self) -> None:
        self._message: Message | None = None
        self._states: list[_BlockState] = []
        self._dirty: list[_BlockState] = []
        self._error: APIError | None = None
        self._deferred_error: APIResponseValidationError | None = None
        self._done = False
        self._handlers: dict[type[Any], Callable[[Any, Out], None]] = {
            RawContentBlockDeltaEvent: self._on_block_delta,
            RawContentBlockStartEvent: self._on_block_start,
            RawContentBlockStopEvent: self._on_block_stop,
            RawMessageStartEvent: self._on_message_start,
            RawMessageDeltaEvent: self._on_message_delta,
            RawMessageStopEvent: self._on_message_stop,
            PingEvent: _ignore,
            ErrorEvent: self._on_error,
        }

    # --- reading -----------------------------------------------------------------------

    @property
    def snapshot(self) -> Message | None:
        """The message so far (None before ``message_start``); kept after an error.

        Reading it brings the streaming blocks up to date (joining the text that
        arrived since the last read), so it costs O(new text), not O(all text).
        """
        if self._dirty:
            for state in self._dirty:
                if not state.stopped:
                    state.flush()
                state.dirty = False
            self._dirty.clear()
        return self._message

    @property
    def done(self) -> bool:
        """Whether ``message_stop`` has been received."""
        return self._done

    @property
    def error(self) -> APIError | None:
        """The error that stopped the accumulator, if any."""
        return self._error

    @property
    def deferred_error(self) -> APIResponseValidationError | None:
        """An error that does not stop the stream but fails ``final_message()``.

        Set when a tool input never became valid JSON: the block keeps the raw
        text (``block.input_json``) and ``input`` holds the best parse of it.
        """
        return self._deferred_error

    def final_message(self) -> Message:
        """The complete message; raises if the stream failed, has not ended, or had bad input.

        Once ``message_stop`` has arrived the message stands: an error fed after it
        (which ``feed`` raises) does not take it back.
        """
        if self._error is not None and not self._done:
            raise self._error
        if self._deferred_error is not None:
            raise self._deferred_error
        message = self.snapshot
        if not self._done or message is None:
            raise RuntimeError("the message is not complete: message_stop has not been received")
        return message

    # --- feeding -----------------------------------------------------------------------

    def feed(self, event: RawMessageStreamEvent) -> list[MessageStreamEvent]:
        """Apply one raw event; return the events to hand on, in order."""
        out: Out = []
        self.feed_into(event, out)
        return out

    def feed_all(self, events: Iterable[RawMessageStreamEvent], out: Out) -> None:
        """Apply events in order, appending what to hand on to ``out``.

        If an event fails, ``out`` holds everything produced before it when the
        error is raised, so nothing that arrived is lost.
        """
        feed_into = self.feed_into
        append = out.append
        states = self._states
        streaming = self._error is None and not self._done
        for event in events:
            # A delta for an open block (a text delta above all: inline, no call) is applied
            # here, whichever way it came in; everything else, and every error, goes through
            # feed_into.
            if streaming and type(event) is RawContentBlockDeltaEvent:
                index = event.index
                if 0 <= index < len(states):
                    state = states[index]
                    if not state.stopped:
                        append(event)
                        delta = event.delta
                        if type(delta) is TextDelta and type(state) is _TextState:
                            text = state.text
                            pieces = text.pieces
                            pieces.append(delta.text)
                            if not state.dirty:
                                state._touch()
                            append(TextEvent(delta.text, None, text, len(pieces)))
                        else:
                            state.apply(delta, out)
                        continue
            feed_into(event, out)
            streaming = self._error is None and not self._done

    def feed_into(self, event: RawMessageStreamEvent, out: Out) -> None:
        """Apply one raw event, appending what to hand on to ``out``."""
        if self._error is not None:
            raise self._error
        handler = self._handlers.get(type(event))
        if handler is None:
            if isinstance(event, UnknownEvent):  # kept (see MessageStreamEvent)
                out.append(cast("MessageStreamEvent", event))
                return
            self._fail(f"expected a raw stream event, got {type(event).__name__}")
        try:
            handler(event, out)
        except APIError as exc:
            if self._error is None:
                self._error = exc
            raise

    def _fail(self, message: str) -> NoReturn:
        raise APIResponseValidationError(message)

    def _require_message(self, event_type: str) -> Message:
        message = self._message
        if message is None:
            self._fail(f"received {event_type} before message_start")
        if self._done:
            self._fail(f"received {event_type} after message_stop")
        return message

    def _open_state(self, index: int, event_type: str) -> _BlockState:
        self._require_message(event_type)
        states = self._states
        if not 0 <= index < len(states):
            self._fail(
                f"received {event_type} for content block {index}, "
                f"but the message has {len(states)} block(s)"
            )
        state = states[index]
        if state.stopped:
            self._fail(f"received {event_type} for content block {index} after its stop")
        return state

    # --- handlers ----------------------------------------------------------------------

    def _on_block_delta(self, event: RawContentBlockDeltaEvent, out: Out) -> None:
        self._open_state(event.index, "content_block_delta")  # raises unless it is open
        self.feed_all((event,), out)  # a delta for an open block: feed_all's own path

    def _on_block_start(self, event: RawContentBlockStartEvent, out: Out) -> None:
        message = self._require_message("content_block_start")
        index = event.index
        if index != len(self._states):
            self._fail(
                f"received content_block_start for index {index}, "
                f"expected index {len(self._states)}"
            )
        block = _copy_block(event.content_block)
        message.content.append(block)
        self._states.append(_state_for(self, index, block))
        out.append(event)

    def _on_block_stop(self, event: RawContentBlockStopEvent, out: Out) -> None:
        state = self._open_state(event.index, "content_block_stop")
        state.finish(complete=True)
        state.stopped = True
        state.dirty = False
        out.append(ContentBlockStopEvent(index=event.index, content_block=state.block))

    def _on_message_start(self, event: RawMessageStartEvent, out: Out) -> None:
        if self._message is not None:
            self._fail("received a second message_start")
        received = event.message
        message = msgspec.structs.replace(
            received,
            content=[_copy_block(block) for block in received.content],
            usage=copy.copy(received.usage),
        )
        for index, block in enumerate(message.content):
            state = _state_for(self, index, block)
            state.stopped = True
            self._states.append(state)
        self._message = message
        out.append(event)

    def _on_message_delta(self, event: RawMessageDeltaEvent, out: Out) -> None:
        message = self._require_message("message_delta")
        delta = event.delta
        for name in _DELTA_FIELDS:
            value = getattr(delta, name)
            if value is not _UNSET:
                setattr(message, name, value)
        usage = event.usage
        target = message.usage
        for name in _USAGE_FIELDS:
            value = getattr(usage, name)
            if value is not _UNSET and value is not None:
                setattr(target, name, value)
        out.append(event)

    def _on_message_stop(self, event: RawMessageStopEvent, out: Out) -> None:
        message = self._require_message("message_stop")
        for state in self._states:
            if not state.stopped:
                state.finish(complete=False)
                state.stopped = True
                state.dirty = False
        self._dirty.clear()
        self._done = True
        out.append(MessageStopEvent(message=message))

    def _on_error(self, event: ErrorEvent, out: Out) -> None:
        raise status_error_from_event(event)


def status_error_from_event(event: ErrorEvent) -> APIStatusError:
    """The :class:`APIStatusError` subclass for an ``event: error`` (status 200)."""
    error = event.error
    return make_status_error(
        status_code=200,
        body={"type": "error", "error": {"type": error.type, "message": error.message}},
        request_id=event.request_id if isinstance(event.request_id, str) else None,
    )


def _ignore(event: object, out: Out) -> None:
    return None
