"""triostream: a trio-native, structured-concurrency client for the Anthropic Messages API.

The trio layer (clients, streams) is imported on first use, so that the sans-IO
core (``triostream.sse``, ``triostream.types``, ``MessageAccumulator``) can be
used without importing trio or httpx.
"""

from typing import TYPE_CHECKING, Any

from ._accumulator import MessageAccumulator
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IncompleteStreamError,
    InternalServerError,
    MissingCredentialsError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from ._version import __version__
from .types import (
    CitationEvent,
    ContentBlock,
    ContentBlockDeltaEvent,
    ContentBlockStartEvent,
    ContentBlockStopEvent,
    InputJsonEvent,
    Message,
    MessageDeltaEvent,
    MessageParam,
    MessageStartEvent,
    MessageStopEvent,
    MessageStreamEvent,
    RawMessageStreamEvent,
    SignatureEvent,
    TextBlock,
    TextEvent,
    ThinkingBlock,
    ThinkingEvent,
    ToolParam,
    ToolUseBlock,
    Usage,
)

if TYPE_CHECKING:
    from ._client import Anthropic, AsyncAnthropic, AsyncMessages, Messages
    from ._fanout import Subscription, SubscriptionStatistics
    from ._raw_stream import AsyncStream, Stream
    from ._stream import AsyncMessageStream, MessageStreamManager, open_message_stream
    from ._sync_stream import MessageStream

_LAZY = {
    "Anthropic": "._client",
    "Messages": "._client",
    "MessageStream": "._sync_stream",
    "Stream": "._raw_stream",
    "AsyncAnthropic": "._client",
    "AsyncMessages": "._client",
    "AsyncStream": "._raw_stream",
    "AsyncMessageStream": "._stream",
    "MessageStreamManager": "._stream",
    "open_message_stream": "._stream",
    "Subscription": "._fanout",
    "SubscriptionStatistics": "._fanout",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'triostream' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "Anthropic",
    "AsyncAnthropic",
    "AsyncMessageStream",
    "AsyncMessages",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "CitationEvent",
    "ConflictError",
    "ContentBlock",
    "ContentBlockDeltaEvent",
    "ContentBlockStartEvent",
    "ContentBlockStopEvent",
    "IncompleteStreamError",
    "InputJsonEvent",
    "InternalServerError",
    "Message",
    "MessageAccumulator",
    "MessageDeltaEvent",
    "MessageParam",
    "MessageStartEvent",
    "MessageStopEvent",
    "MessageStream",
    "MessageStreamEvent",
    "MessageStreamManager",
    "Messages",
    "MissingCredentialsError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RawMessageStreamEvent",
    "RequestTooLargeError",
    "SignatureEvent",
    "Stream",
    "Subscription",
    "SubscriptionStatistics",
    "TextBlock",
    "TextEvent",
    "ThinkingBlock",
    "ThinkingEvent",
    "ToolParam",
    "ToolUseBlock",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "open_message_stream",
]
