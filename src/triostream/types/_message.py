"""Message, usage and the top-level fields a stream's ``message_delta`` updates."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, UnsetType

from ._content import ContentBlock

__all__ = [
    "CacheCreation",
    "Container",
    "Message",
    "MessageDeltaUsage",
    "OutputTokensDetails",
    "ServerToolUsage",
    "Usage",
]


class _Plain(msgspec.Struct, kw_only=True, repr_omit_defaults=True, gc=False):
    """An untagged API object."""


class CacheCreation(_Plain):
    """Input tokens written to the prompt cache, by cache lifetime."""

    ephemeral_5m_input_tokens: int | UnsetType = UNSET
    ephemeral_1h_input_tokens: int | UnsetType = UNSET


class ServerToolUsage(_Plain):
    """How many server tool requests the message made."""

    web_search_requests: int | UnsetType = UNSET
    web_fetch_requests: int | UnsetType = UNSET


class OutputTokensDetails(_Plain):
    """A breakdown of the output tokens."""

    thinking_tokens: int | UnsetType = UNSET


class Usage(_Plain):
    """Token counts of a message (cumulative when a stream's ``message_delta`` updates them)."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | UnsetType | None = UNSET
    cache_read_input_tokens: int | UnsetType | None = UNSET
    cache_creation: CacheCreation | UnsetType | None = UNSET
    server_tool_use: ServerToolUsage | UnsetType | None = UNSET
    output_tokens_details: OutputTokensDetails | UnsetType | None = UNSET
    service_tier: str | UnsetType | None = UNSET
    inference_geo: str | UnsetType | None = UNSET
    speed: str | UnsetType | None = UNSET


class MessageDeltaUsage(_Plain):
    """The usage carried by ``message_delta``: the counts present overwrite the snapshot's."""

    output_tokens: int
    input_tokens: int | UnsetType | None = UNSET
    cache_creation_input_tokens: int | UnsetType | None = UNSET
    cache_read_input_tokens: int | UnsetType | None = UNSET
    cache_creation: CacheCreation | UnsetType | None = UNSET
    server_tool_use: ServerToolUsage | UnsetType | None = UNSET
    output_tokens_details: OutputTokensDetails | UnsetType | None = UNSET


class Container(_Plain):
    """The code execution container a message used."""

    id: str
    expires_at: str


class Message(
    msgspec.Struct, kw_only=True, tag="message", tag_field="type", repr_omit_defaults=True
):
    """A message written by the model: the result of ``messages.create`` or of a whole stream.

    ``msgspec.json.encode(message)`` gives the Messages API's JSON, and
    ``message.content`` can be sent back as an assistant turn unchanged.
    """

    type: ClassVar[Literal["message"]] = "message"
    id: str
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: str | UnsetType | None = UNSET
    stop_sequence: str | UnsetType | None = UNSET
    stop_details: dict[str, Any] | UnsetType | None = UNSET
    container: Container | UnsetType | None = UNSET
    usage: Usage
