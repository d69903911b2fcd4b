"""Stream events: the deltas, the raw events on the wire, and the events a stream yields."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, Self, TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from ._base import WireStruct
from ._content import Citation, ContentBlock
from ._message import Container, Message, MessageDeltaUsage

__all__ = [
    "CitationEvent",
    "CitationsDelta",
    "ContentBlockDeltaEvent",
    "ContentBlockStartEvent",
    "ContentBlockStopEvent",
    "Delta",
    "ErrorDetail",
    "ErrorEvent",
    "InputJSONDelta",
    "InputJsonEvent",
    "KnownDelta",
    "MessageDelta",
    "MessageDeltaEvent",
    "MessageStartEvent",
    "MessageStopEvent",
    "MessageStreamEvent",
    "PingEvent",
    "RawContentBlockDeltaEvent",
    "RawContentBlockStartEvent",
    "RawContentBlockStopEvent",
    "RawMessageDeltaEvent",
    "RawMessageStartEvent",
    "RawMessageStopEvent",
    "RawMessageStreamEvent",
    "SignatureDelta",
    "SignatureEvent",
    "SnapshotSource",
    "TextDelta",
    "TextEvent",
    "ThinkingDelta",
    "ThinkingEvent",
]


# --- deltas ----------------------------------------------------------------------------


class TextDelta(WireStruct, tag="text_delta", kw_only=True, gc=False):
    """More text for a text block."""

    type: ClassVar[Literal["text_delta"]] = "text_delta"
    text: str


class InputJSONDelta(WireStruct, tag="input_json_delta", kw_only=True, gc=False):
    """A piece of a tool block's ``input`` JSON text (not valid JSON on its own)."""

    type: ClassVar[Literal["input_json_delta"]] = "input_json_delta"
    partial_json: str


class ThinkingDelta(WireStruct, tag="thinking_delta", kw_only=True, gc=False):
    """More thinking for a thinking block."""

    type: ClassVar[Literal["thinking_delta"]] = "thinking_delta"
    thinking: str


class SignatureDelta(WireStruct, tag="signature_delta", kw_only=True, gc=False):
    """The signature of a thinking block."""

    type: ClassVar[Literal["signature_delta"]] = "signature_delta"
    signature: str


class CitationsDelta(WireStruct, tag="citations_delta", kw_only=True, gc=False):
    """A citation added to a text block."""

    type: ClassVar[Literal["citations_delta"]] = "citations_delta"
    citation: Citation


KnownDelta: TypeAlias = TextDelta | InputJSONDelta | ThinkingDelta | SignatureDelta | CitationsDelta

Delta: TypeAlias = KnownDelta
"""A delta; one of an unknown type arrives as an :class:`UnknownDelta` at run time."""


# --- raw events (the wire) -------------------------------------------------------------


class RawMessageStartEvent(WireStruct, tag="message_start", kw_only=True):
    """The stream's first event: the message with no content yet."""

    type: ClassVar[Literal["message_start"]] = "message_start"
    message: Message


class MessageDelta(msgspec.Struct, kw_only=True, repr_omit_defaults=True, gc=False):
    """The top-level message fields a ``message_delta`` sets (only those present)."""

    stop_reason: str | UnsetType | None = UNSET
    stop_sequence: str | UnsetType | None = UNSET
    stop_details: dict[str, Any] | UnsetType | None = UNSET
    container: Container | UnsetType | None = UNSET


class RawMessageDeltaEvent(WireStruct, tag="message_delta", kw_only=True, gc=False):
    """Top-level changes to the message (stop reason, cumulative usage)."""

    type: ClassVar[Literal["message_delta"]] = "message_delta"
    delta: MessageDelta
    usage: MessageDeltaUsage


class RawMessageStopEvent(WireStruct, tag="message_stop", kw_only=True, gc=False):
    """The end of the message."""

    type: ClassVar[Literal["message_stop"]] = "message_stop"


class RawContentBlockStartEvent(WireStruct, tag="content_block_start", kw_only=True):
    """A new content block begins at ``index``."""

    type: ClassVar[Literal["content_block_start"]] = "content_block_start"
    index: int
    content_block: ContentBlock


class RawContentBlockDeltaEvent(WireStruct, tag="content_block_delta", kw_only=True, gc=False):
    """A piece of the content block at ``index``."""

    type: ClassVar[Literal["content_block_delta"]] = "content_block_delta"
    index: int
    delta: Delta


class RawContentBlockStopEvent(WireStruct, tag="content_block_stop", kw_only=True, gc=False):
    """The content block at ``index`` is complete."""

    type: ClassVar[Literal["content_block_stop"]] = "content_block_stop"
    index: int


class PingEvent(WireStruct, tag="ping", kw_only=True, gc=False):
    """A keep-alive; streams consume it."""

    type: ClassVar[Literal["ping"]] = "ping"


class ErrorDetail(msgspec.Struct, kw_only=True, repr_omit_defaults=True, gc=False):
    """The ``error`` object of an error body or ``event: error``."""

    type: str = "api_error"
    message: str = ""


class ErrorEvent(WireStruct, tag="error", kw_only=True, gc=False):
    """``event: error``: the API failed mid-stream (e.g. ``overloaded_error``)."""

    type: ClassVar[Literal["error"]] = "error"
    error: ErrorDetail
    request_id: str | UnsetType | None = UNSET


KnownRawEvent: TypeAlias = (
    RawMessageStartEvent
    | RawMessageDeltaEvent
    | RawMessageStopEvent
    | RawContentBlockStartEvent
    | RawContentBlockDeltaEvent
    | RawContentBlockStopEvent
    | PingEvent
    | ErrorEvent
)

RawMessageStreamEvent: TypeAlias = KnownRawEvent
"""What ``decode_raw_event`` returns: an event as it came over the wire (one of a
type this version does not know arrives as an :class:`UnknownEvent` at run time)."""


# --- the events a MessageStream yields -------------------------------------------------

MessageStartEvent = RawMessageStartEvent
MessageDeltaEvent = RawMessageDeltaEvent
ContentBlockStartEvent = RawContentBlockStartEvent
ContentBlockDeltaEvent = RawContentBlockDeltaEvent


class MessageStopEvent(RawMessageStopEvent, tag="message_stop", kw_only=True):
    """The end of the message, carrying the complete message."""

    message: Message


class ContentBlockStopEvent(RawContentBlockStopEvent, tag="content_block_stop", kw_only=True):
    """The content block at ``index`` is complete, carrying the finished block."""

    content_block: ContentBlock


class SnapshotSource(Protocol):
    """Where a derived event's ``snapshot`` comes from: a block's state in an accumulator."""

    def snapshot_at(self, position: int) -> Any:
        """The block's value as it was when it had received ``position`` pieces."""
        ...


class _DerivedEvent:
    """An event derived from a delta; its ``snapshot`` is built only when first read."""

    __slots__ = ("_at", "_snapshot", "_source")
    type: ClassVar[str]
    _fields: ClassVar[tuple[str, ...]]

    def __init__(self, snapshot: object) -> None:
        self._snapshot = snapshot
        self._source: SnapshotSource | None = None
        self._at = 0

    def _lazy(self, source: SnapshotSource, at: int) -> Self:
        self._source = source
        self._at = at
        return self

    @classmethod
    def _derived(cls, value: str, source: SnapshotSource, at: int) -> Self:
        """A new event whose snapshot comes from ``source`` (one call on the hot path)."""
        event = cls.__new__(cls)
        setattr(event, cls._fields[0], value)
        event._snapshot = None
        event._source = source
        event._at = at
        return event

    def _get_snapshot(self) -> Any:
        source = self._source
        if source is not None:
            self._snapshot = source.snapshot_at(self._at)
            self._source = None
        return self._snapshot

    def _field_values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _DerivedEvent)
        return self._field_values() == other._field_values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({parts})"

    def to_dict(self) -> dict[str, Any]:
        """The event as plain data: ``type`` and every field, snapshot included."""
        return {"type": self.type, **{name: getattr(self, name) for name in self._fields}}


class TextEvent(_DerivedEvent):
    """Text was added to a text block: ``text`` is the piece, ``snapshot`` the whole text so far."""

    __slots__ = ("text",)
    type: ClassVar[Literal["text"]] = "text"
    _fields = ("text", "snapshot")

    def __init__(self, text: str, snapshot: str = "") -> None:
        super().__init__(snapshot)
        self.text = text

    @property
    def snapshot(self) -> str:
        """The block's whole text up to and including this piece (built on first read)."""
        return self._get_snapshot()  # type: ignore[no-any-return]


class ThinkingEvent(_DerivedEvent):
    """Thinking was added: ``thinking`` is the piece, ``snapshot`` all thinking so far."""

    __slots__ = ("thinking",)
    type: ClassVar[Literal["thinking"]] = "thinking"
    _fields = ("thinking", "snapshot")

    def __init__(self, thinking: str, snapshot: str = "") -> None:
        super().__init__(snapshot)
        self.thinking = thinking

    @property
    def snapshot(self) -> str:
        """The block's whole thinking up to and including this piece (built on first read)."""
        return self._get_snapshot()  # type: ignore[no-any-return]


class InputJsonEvent(_DerivedEvent):
    """A piece of tool input arrived: ``partial_json`` is the piece, ``snapshot`` the value so far.

    ``snapshot`` is the best parse of the JSON so far, partial strings included
    (``{"city": "Par"}``), built on first read and never changed afterwards.
    """

    __slots__ = ("partial_json",)
    type: ClassVar[Literal["input_json"]] = "input_json"
    _fields = ("partial_json", "snapshot")

    def __init__(self, partial_json: str, snapshot: object = None) -> None:
        super().__init__(snapshot)
        self.partial_json = partial_json

    @property
    def snapshot(self) -> Any:
        """The tool input parsed so far (built on first read)."""
        return self._get_snapshot()


class CitationEvent(_DerivedEvent):
    """A citation was added to a text block; ``snapshot`` is the block's citations so far."""

    __slots__ = ("citation",)
    type: ClassVar[Literal["citation"]] = "citation"
    _fields = ("citation", "snapshot")

    def __init__(self, citation: Citation, snapshot: list[Citation] | None = None) -> None:
        super().__init__(snapshot if snapshot is not None else [citation])
        self.citation = citation

    @property
    def snapshot(self) -> list[Citation]:
        """The block's citations up to and including this one."""
        return self._get_snapshot()  # type: ignore[no-any-return]


class SignatureEvent(_DerivedEvent):
    """A thinking block received its signature."""

    __slots__ = ("signature",)
    type: ClassVar[Literal["signature"]] = "signature"
    _fields = ("signature",)

    def __init__(self, signature: str) -> None:
        super().__init__(None)
        self.signature = signature


MessageStreamEvent: TypeAlias = (
    TextEvent
    | CitationEvent
    | ThinkingEvent
    | SignatureEvent
    | InputJsonEvent
    | MessageStartEvent
    | MessageDeltaEvent
    | MessageStopEvent
    | ContentBlockStartEvent
    | ContentBlockDeltaEvent
    | ContentBlockStopEvent
)
"""What a ``MessageStream`` yields: the raw events (``message_stop`` and
``content_block_stop`` enriched with the finished message / block), each delta
followed by its derived event.  Events of types this version does not know are
passed on as they came, as :class:`UnknownEvent` objects (not in the static
union, so that ``event.type == "text"`` narrows; test with ``isinstance``)."""
