"""Request parameters of ``messages.create`` / ``messages.stream`` as TypedDicts.

Plain dicts work everywhere; these types let a type checker check them.  A
response's content blocks (``message.content``, any ``ContentBlock``) are
accepted wherever a content block parameter is, so a conversation can send them
back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, Required, TypeAlias, TypedDict

from ._content import ContentBlock

__all__ = [
    "Base64ImageSourceParam",
    "CacheControlEphemeralParam",
    "ContentBlockParam",
    "DocumentBlockParam",
    "ImageBlockParam",
    "MessageCreateParams",
    "MessageParam",
    "MetadataParam",
    "RedactedThinkingBlockParam",
    "TextBlockParam",
    "ThinkingBlockParam",
    "ThinkingConfigParam",
    "ToolChoiceParam",
    "ToolParam",
    "ToolResultBlockParam",
    "ToolUseBlockParam",
    "URLImageSourceParam",
]


class CacheControlEphemeralParam(TypedDict, total=False):
    """Mark a prompt-cache breakpoint."""

    type: Required[Literal["ephemeral"]]
    ttl: Literal["5m", "1h"]


class TextBlockParam(TypedDict, total=False):
    """Text in a request."""

    type: Required[Literal["text"]]
    text: Required[str]
    cache_control: CacheControlEphemeralParam | None
    citations: Iterable[dict[str, Any]] | None


class Base64ImageSourceParam(TypedDict):
    """An image given inline."""

    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class URLImageSourceParam(TypedDict):
    """An image given by URL."""

    type: Literal["url"]
    url: str


class ImageBlockParam(TypedDict, total=False):
    """An image in a request."""

    type: Required[Literal["image"]]
    source: Required[Base64ImageSourceParam | URLImageSourceParam]
    cache_control: CacheControlEphemeralParam | None


class DocumentBlockParam(TypedDict, total=False):
    """A document (PDF, plain text, custom content) in a request."""

    type: Required[Literal["document"]]
    source: Required[dict[str, Any]]
    title: str | None
    context: str | None
    citations: dict[str, Any] | None
    cache_control: CacheControlEphemeralParam | None


class ToolUseBlockParam(TypedDict, total=False):
    """A tool call of an earlier assistant turn."""

    type: Required[Literal["tool_use"]]
    id: Required[str]
    name: Required[str]
    input: Required[dict[str, Any]]
    cache_control: CacheControlEphemeralParam | None


class ToolResultBlockParam(TypedDict, total=False):
    """The result of a tool call, sent in a user turn."""

    type: Required[Literal["tool_result"]]
    tool_use_id: Required[str]
    content: str | Iterable[TextBlockParam | ImageBlockParam | DocumentBlockParam]
    is_error: bool
    cache_control: CacheControlEphemeralParam | None


class ThinkingBlockParam(TypedDict):
    """Thinking of an earlier assistant turn, sent back with its signature."""

    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlockParam(TypedDict):
    """Redacted thinking of an earlier assistant turn, sent back unchanged."""

    type: Literal["redacted_thinking"]
    data: str


ContentBlockParam: TypeAlias = (
    TextBlockParam
    | ImageBlockParam
    | DocumentBlockParam
    | ToolUseBlockParam
    | ToolResultBlockParam
    | ThinkingBlockParam
    | RedactedThinkingBlockParam
    | dict[str, Any]
    | ContentBlock
)


class MessageParam(TypedDict):
    """One turn of the conversation."""

    role: Literal["user", "assistant"]
    content: str | Iterable[ContentBlockParam]


class ToolParam(TypedDict, total=False):
    """A client tool the model may call."""

    name: Required[str]
    input_schema: Required[dict[str, Any]]
    description: str
    type: Literal["custom"] | None
    cache_control: CacheControlEphemeralParam | None


class ToolChoiceParam(TypedDict, total=False):
    """How the model must use tools: ``auto``, ``any``, ``tool`` (with ``name``) or ``none``."""

    type: Required[Literal["auto", "any", "tool", "none"]]
    name: str
    disable_parallel_tool_use: bool


class ThinkingConfigParam(TypedDict, total=False):
    """Extended thinking: ``{"type": "enabled", "budget_tokens": N}`` or ``"disabled"``."""

    type: Required[Literal["enabled", "disabled"]]
    budget_tokens: int


class MetadataParam(TypedDict, total=False):
    """Request metadata."""

    user_id: str | None


class MessageCreateParams(TypedDict, total=False):
    """The body of a ``POST /v1/messages`` request."""

    model: Required[str]
    max_tokens: Required[int]
    messages: Required[Iterable[MessageParam]]
    system: str | Iterable[TextBlockParam]
    temperature: float
    top_k: int
    top_p: float
    stop_sequences: Sequence[str]
    tools: Iterable[ToolParam | dict[str, Any]]
    tool_choice: ToolChoiceParam
    thinking: ThinkingConfigParam
    metadata: MetadataParam
    service_tier: Literal["auto", "standard_only"]
