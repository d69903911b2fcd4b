"""Decoding the Messages API's JSON into triostream's types (sans-IO).

The decoders are built once, here.  The fast path decodes an event straight
into its Struct.  Only when that fails does the slow path look closer: an
event, block, delta or citation whose ``type`` this version does not know is
kept as an ``Unknown*`` object (its JSON as a dict); anything else that does not
fit is an :class:`APIResponseValidationError` naming the event and the path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import msgspec

from ._exceptions import APIResponseValidationError, IncompleteStreamError
from .sse import ServerSentEvent
from .types._base import UnknownCitation, UnknownContentBlock, UnknownDelta, UnknownEvent
from .types._content import Citation, ContentBlock, KnownCitation, KnownContentBlock, TextBlock
from .types._events import (
    CitationsDelta,
    Delta,
    KnownDelta,
    KnownRawEvent,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageStartEvent,
    RawMessageStreamEvent,
)
from .types._message import Message

__all__ = ["decode_message", "decode_raw_event", "decode_sse_events"]

_T = TypeVar("_T")

_event_decoder = msgspec.json.Decoder(KnownRawEvent)
_message_decoder = msgspec.json.Decoder(Message)

_KNOWN_EVENT_TYPES = frozenset(cls.__struct_config__.tag for cls in KnownRawEvent.__args__)
_KNOWN_BLOCK_TYPES = frozenset(cls.__struct_config__.tag for cls in KnownContentBlock.__args__)
_KNOWN_DELTA_TYPES = frozenset(cls.__struct_config__.tag for cls in KnownDelta.__args__)
_KNOWN_CITATION_TYPES = frozenset(cls.__struct_config__.tag for cls in KnownCitation.__args__)


# What msgspec may raise on bad input; bytes that are not UTF-8 raise UnicodeDecodeError.
_DECODE_FAILURES = (msgspec.MsgspecError, RecursionError, UnicodeDecodeError)


def decode_raw_event(data: str | bytes) -> RawMessageStreamEvent:
    """Decode one SSE ``data`` payload into a raw stream event.

    Event, block, delta and citation types this version does not know are kept
    (as ``UnknownEvent``, ``UnknownContentBlock``, ...); unknown fields are
    ignored.  Data that is not JSON, or JSON that is not a Messages API event,
    raises :class:`APIResponseValidationError`.  Bytes are read as UTF-8 with
    invalid bytes as U+FFFD: the result, or the error, is the one for
    ``data.decode("utf-8", "replace")``.
    """
    if not isinstance(data, str):
        try:
            return _event_decoder.decode(data)  # type: ignore[no-any-return]
        except _DECODE_FAILURES:
            # Not UTF-8, or not a plain event: go on from the text, as the str path would.
            data = str(data, "utf-8", "replace")
    try:
        return _event_decoder.decode(data)  # type: ignore[no-any-return]
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json("stream event data", data, exc) from None
    return _decode_event_leniently(data)


def decode_sse_events(
    items: Iterable[ServerSentEvent | tuple[bytes, bytes]],
    out: list[RawMessageStreamEvent],
    *,
    at_end: bool = False,
) -> list[RawMessageStreamEvent]:
    """Decode the data of each SSE event into ``out`` (skipping ``ping``); return ``out``.

    ``items`` are what ``SSEDecoder.feed()`` or ``SSEDecoder.feed_frames()``
    return: events, or ``(name, data)`` tuples of raw bytes, whose data goes to
    msgspec as it is (decoded exactly as the event's text would be).
    When one event fails to decode, ``out`` still holds the events before it.
    ``at_end``: these are the events ``SSEDecoder.close()`` dispatched at the end
    of the body; one that does not decode was cut off, which makes the stream
    incomplete (:class:`IncompleteStreamError`) rather than invalid.
    """
    decode = _event_decoder.decode
    if type(items) is list and items and type(items[0]) is tuple:
        # The common case: every item a (name, data) frame of a known event.  Anything
        # else, or any failure, goes the careful way below, from the first item again.
        try:
            out.extend([decode(data) for name, data in items if name != b"ping"])
        except (TypeError, *_DECODE_FAILURES):
            pass
        else:
            return out
    append = out.append
    data: str | bytes
    for item in items:
        if isinstance(item, tuple):
            name, data = item
            if name == b"ping":
                continue
        elif item.event == "ping":
            continue
        else:
            data = item.data
        try:
            append(decode(data))
            continue
        except _DECODE_FAILURES:
            pass
        if not isinstance(data, str):
            data = str(data, "utf-8", "replace")
        try:  # an unknown type, or an error: decode_raw_event tells which
            append(decode_raw_event(data))
        except APIResponseValidationError as exc:
            if not at_end:
                raise
            raise IncompleteStreamError(
                f"the response body ended inside an event ({exc.message})", body=exc.body
            ) from None
    return out


def decode_message(data: str | bytes) -> Message:
    """Decode a whole ``Message`` (the body of a non-streaming ``messages.create``).

    Bytes are read as UTF-8 with invalid bytes as U+FFFD (as by
    ``data.decode("utf-8", "replace")``).
    """
    if not isinstance(data, str):
        try:
            return _message_decoder.decode(data)
        except _DECODE_FAILURES:
            data = str(data, "utf-8", "replace")
    try:
        return _message_decoder.decode(data)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json("response body", data, exc) from None
    obj = _decode_untyped("response body", data)
    if not isinstance(obj, dict):
        raise APIResponseValidationError("response body is not a message object", body=obj)
    return _message_from(obj, "message", "$")


def _text(data: str | bytes) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "replace")


def _not_json(what: str, data: str | bytes, exc: BaseException) -> APIResponseValidationError:
    reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    return APIResponseValidationError(f"{what} is not valid JSON: {reason}", body=_text(data))


def _decode_untyped(what: str, data: str | bytes) -> Any:
    # The typed decoder stops at the first field of the wrong type, so JSON that is
    # malformed further on is only found here.
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _not_json(what, data, exc) from None


def _decode_event_leniently(data: str | bytes) -> RawMessageStreamEvent:
    obj = _decode_untyped("stream event data", data)
    event_type = obj.get("type") if isinstance(obj, dict) else None
    if not isinstance(event_type, str):
        raise APIResponseValidationError(
            "stream event data is JSON but not an event object with a string `type`",
            body=_text(data),
        )
    if event_type not in _KNOWN_EVENT_TYPES:
        return cast("RawMessageStreamEvent", UnknownEvent(obj))  # kept: see RawMessageStreamEvent
    where = f"{event_type} event"
    if event_type == "message_start":
        message = obj.get("message")
        if isinstance(message, dict):
            return RawMessageStartEvent(message=_message_from(message, where, "$.message"))
    elif event_type == "content_block_start":
        block = obj.get("content_block")
        index = _convert({**obj, "content_block": {"type": "text", "text": ""}}, where, "$")
        assert isinstance(index, RawContentBlockStartEvent)
        if isinstance(block, dict):
            return RawContentBlockStartEvent(
                index=index.index, content_block=_block_from(block, where, "$.content_block")
            )
    elif event_type == "content_block_delta":
        delta = obj.get("delta")
        shell = _convert({**obj, "delta": {"type": "text_delta", "text": ""}}, where, "$")
        assert isinstance(shell, RawContentBlockDeltaEvent)
        if isinstance(delta, dict):
            return RawContentBlockDeltaEvent(
                index=shell.index, delta=_delta_from(delta, where, "$.delta")
            )
    return _convert(obj, where, "$")  # type: ignore[no-any-return]


def _convert(obj: object, where: str, path: str, type_: Any = KnownRawEvent) -> Any:
    try:
        return msgspec.convert(obj, type_)
    except RecursionError:
        raise APIResponseValidationError(f"invalid {where}: nested too deeply") from None
    except msgspec.ValidationError as exc:
        detail = str(exc).replace("`$", f"`{path}", 1) if path != "$" else str(exc)
        raise APIResponseValidationError(f"invalid {where}: {detail}", body=obj) from None


def _with_fallback(
    obj: dict[str, Any],
    known: frozenset[str],
    type_: Any,
    unknown: Callable[[dict[str, Any]], _T],
    where: str,
    path: str,
) -> Any:
    kind = obj.get("type")
    if isinstance(kind, str) and kind not in known:
        return unknown(obj)
    return _convert(obj, where, path, type_)


def _citation_from(obj: object, where: str, path: str) -> Citation:
    if not isinstance(obj, dict):
        return _convert(obj, where, path, KnownCitation)  # type: ignore[no-any-return]
    return _with_fallback(  # type: ignore[no-any-return]
        obj, _KNOWN_CITATION_TYPES, KnownCitation, UnknownCitation, where, path
    )


def _block_from(obj: dict[str, Any], where: str, path: str) -> ContentBlock:
    if obj.get("type") == "text" and isinstance(obj.get("citations"), list):
        shell = _convert({**obj, "citations": []}, where, path, TextBlock)
        shell.citations = [
            _citation_from(c, where, f"{path}.citations[{i}]")
            for i, c in enumerate(obj["citations"])
        ]
        return shell  # type: ignore[no-any-return]
    return _with_fallback(  # type: ignore[no-any-return]
        obj, _KNOWN_BLOCK_TYPES, KnownContentBlock, UnknownContentBlock, where, path
    )


def _delta_from(obj: dict[str, Any], where: str, path: str) -> Delta:
    if obj.get("type") == "citations_delta" and isinstance(obj.get("citation"), dict):
        return CitationsDelta(citation=_citation_from(obj["citation"], where, f"{path}.citation"))
    return _with_fallback(  # type: ignore[no-any-return]
        obj, _KNOWN_DELTA_TYPES, KnownDelta, UnknownDelta, where, path
    )


def _message_from(obj: dict[str, Any], where: str, path: str) -> Message:
    content = obj.get("content")
    if not isinstance(content, list):
        return _convert(obj, where, path, Message)  # type: ignore[no-any-return]
    message = _convert({**obj, "content": []}, where, path, Message)
    assert isinstance(message, Message)
    blocks: list[ContentBlock] = []
    for i, block in enumerate(content):
        block_path = f"{path}.content[{i}]"
        if not isinstance(block, dict):
            raise APIResponseValidationError(
                f"invalid {where}: expected a content block object at `{block_path}`", body=obj
            )
        blocks.append(_block_from(block, where, block_path))
    message.content = blocks
    return message
