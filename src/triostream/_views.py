"""What the async and the sync message streams show the same way."""

from __future__ import annotations

import httpx

from . import _http
from ._accumulator import MessageAccumulator
from .types._content import TextBlock
from .types._message import Message

__all__ = ["StreamViews", "final_text"]


class StreamViews:
    """The response and the message so far, for a stream over ``_response``."""

    _response: httpx.Response
    _accumulator: MessageAccumulator

    @property
    def response(self) -> httpx.Response:
        """The ``httpx.Response`` (its status and headers; the stream reads the body)."""
        return self._response

    @property
    def request_id(self) -> str | None:
        """The ``request-id`` response header, or None."""
        return _http.response_request_id(self._response)

    @property
    def current_message_snapshot(self) -> Message | None:
        """The message accumulated so far (None before ``message_start``); kept after errors."""
        return self._accumulator.snapshot


def final_text(message: Message) -> str:
    """The text blocks of a message, joined; RuntimeError when it has none (as the SDK does)."""
    texts = [block.text for block in message.content if isinstance(block, TextBlock)]
    if not texts:
        raise RuntimeError("the message has no text block to get the final text of")
    return "".join(texts)
