"""Stream events: the deltas, the raw events on the wire, and the events a stream yields."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Protocol, TypeAlias

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


class MessageStopEvent(RawMessageStopEvent, tag="message_stop", kw_only=True, gc=True):
    """The end of the message, carrying the complete message."""

    message: Message


class ContentBlockStopEvent(
    RawContentBlockStopEvent, tag="content_block_stop", kw_only=True, gc=True
):
    """The content block at ``index`` is complete, carrying the finished block."""

    content_block: ContentBlock


class SnapshotSource(Protocol):
    """Where a derived event's ``snapshot`` comes from: a block's state in an accumulator."""

    def snapshot_at(self, position: int) -> Any:
        """The block's value as it was when it had received ``position`` pieces."""
        ...


class _DerivedEvent(msgspec.Struct, omit_defaults=True, tag_field="type"):
    """An event derived from a delta; its ``snapshot`` is built when first read.

    While the snapshot is not built, ``_source`` and ``_at`` say where it comes from;
    once read, they are cleared and the event encodes (``msgspec.json.encode``) and
    compares by its public fields only.  ``to_dict()`` builds the snapshot first.

    ``TextEvent``, ``ThinkingEvent`` and ``InputJsonEvent`` are not tracked by the
    garbage collector (``gc=False``), so a stream's log of them costs the collector
    nothing: their source holds only the block's pieces
    (and, for tool input, the parser's values), never the accumulator, so no
    reference cycle passes through them.  (Do not store an ``InputJsonEvent`` inside
    its own ``snapshot``: that cycle would never be collected.)
    """

    type: ClassVar[str]
    _fields: ClassVar[tuple[str, ...]]

    def _get_snapshot(self) -> Any:
        source: SnapshotSource | None = getattr(self, "_source", None)
        if source is not None:
            # The fields are each subclass's own (a Struct base can't hold them before the
            # subclass's positional ones), hence getattr/setattr here.
            setattr(self, "_snapshot", source.snapshot_at(getattr(self, "_at", 0)))  # noqa: B010
            setattr(self, "_source", None)  # noqa: B010
            setattr(self, "_at", 0)  # noqa: B010
        return getattr(self, "_snapshot", None)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({parts})"

    def to_dict(self) -> dict[str, Any]:
        """The event as plain data: ``type`` and every field, snapshot included."""
        return {"type": self.type, **{name: getattr(self, name) for name in self._fields}}


class TextEvent(_DerivedEvent, tag="text", gc=False):
    """Text was added to a text block: ``text`` is the piece, ``snapshot`` the whole text so far."""

    type: ClassVar[Literal["text"]] = "text"
    _fields = ("text", "snapshot")
    text: str
    _snapshot: str | None = msgspec.field(default=None, name="snapshot")
    _source: SnapshotSource | None = None
    _at: int = 0

    @property
    def snapshot(self) -> str:
        """The block's whole text up to and including this piece (built on first read)."""
        return self._get_snapshot()  # type: ignore[no-any-return]


class ThinkingEvent(_DerivedEvent, tag="thinking", gc=False):
    """Thinking was added: ``thinking`` is the piece, ``snapshot`` all thinking so far."""

    type: ClassVar[Literal["thinking"]] = "thinking"
    _fields = ("thinking", "snapshot")
    thinking: str
    _snapshot: str | None = msgspec.field(default=None, name="snapshot")
    _source: SnapshotSource | None = None
    _at: int = 0

    @property
    def snapshot(self) -> str:
        """The block's whole thinking up to and including this piece (built on first read)."""
        return self._get_snapshot()  # type: ignore[no-any-return]


class InputJsonEvent(_DerivedEvent, tag="input_json", gc=False):
    """A piece of tool input arrived: ``partial_json`` is the piece, ``snapshot`` the value so far.

    ``snapshot`` is the best parse of the JSON so far, partial strings included
    (``{"city": "Par"}``), built on first read and never changed afterwards.
    """

    type: ClassVar[Literal["input_json"]] = "input_json"
    _fields = ("partial_json", "snapshot")
    partial_json: str
    _snapshot: Any = msgspec.field(default=None, name="snapshot")
    _source: SnapshotSource | None = None
    _at: int = 0

    @property
    def snapshot(self) -> Any:
        """The tool input parsed so far (built on first read)."""
        return self._get_snapshot()


class CitationEvent(_DerivedEvent, tag="citation"):
    """A citation was added to a text block; ``snapshot`` is the block's citations so far."""

    type: ClassVar[Literal["citation"]] = "citation"
    _fields = ("citation", "snapshot")
    citation: Citation
    _snapshot: list[Citation] | None = msgspec.field(default=None, name="snapshot")

    @property
    def snapshot(self) -> list[Citation]:
        """The block's citations up to and including this one."""
        return self._snapshot if self._snapshot is not None else [self.citation]


class SignatureEvent(_DerivedEvent, tag="signature"):
    """A thinking block received its signature."""

    type: ClassVar[Literal["signature"]] = "signature"
    _fields = ("signature",)
    signature: str


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
