"""Content blocks and citations of a Message."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeAlias

from msgspec import UNSET, UnsetType

from ._base import WireStruct

__all__ = [
    "BashCodeExecutionToolResultBlock",
    "Citation",
    "CitationCharLocation",
    "CitationContentBlockLocation",
    "CitationPageLocation",
    "CitationsSearchResultLocation",
    "CitationsWebSearchResultLocation",
    "CodeExecutionToolResultBlock",
    "ContainerUploadBlock",
    "ContentBlock",
    "KnownCitation",
    "KnownContentBlock",
    "RedactedThinkingBlock",
    "ServerToolUseBlock",
    "TextBlock",
    "TextEditorCodeExecutionToolResultBlock",
    "ThinkingBlock",
    "ToolSearchToolResultBlock",
    "ToolUseBlock",
    "WebFetchToolResultBlock",
    "WebSearchResultBlock",
    "WebSearchToolResultBlock",
    "WebSearchToolResultError",
]


# --- citations -------------------------------------------------------------------------


class CitationCharLocation(WireStruct, tag="char_location", gc=False, kw_only=True):
    """A citation of a character range in a plain-text document."""

    type: ClassVar[Literal["char_location"]] = "char_location"
    cited_text: str
    document_index: int
    document_title: str | UnsetType | None = UNSET
    start_char_index: int
    end_char_index: int
    file_id: str | UnsetType | None = UNSET


class CitationPageLocation(WireStruct, tag="page_location", gc=False, kw_only=True):
    """A citation of a page range in a PDF document."""

    type: ClassVar[Literal["page_location"]] = "page_location"
    cited_text: str
    document_index: int
    document_title: str | UnsetType | None = UNSET
    start_page_number: int
    end_page_number: int
    file_id: str | UnsetType | None = UNSET


class CitationContentBlockLocation(
    WireStruct, tag="content_block_location", gc=False, kw_only=True
):
    """A citation of a range of blocks in a custom-content document."""

    type: ClassVar[Literal["content_block_location"]] = "content_block_location"
    cited_text: str
    document_index: int
    document_title: str | UnsetType | None = UNSET
    start_block_index: int
    end_block_index: int
    file_id: str | UnsetType | None = UNSET


class CitationsWebSearchResultLocation(
    WireStruct, tag="web_search_result_location", gc=False, kw_only=True
):
    """A citation of a web search result."""

    type: ClassVar[Literal["web_search_result_location"]] = "web_search_result_location"
    cited_text: str
    encrypted_index: str
    title: str | UnsetType | None = UNSET
    url: str


class CitationsSearchResultLocation(
    WireStruct, tag="search_result_location", gc=False, kw_only=True
):
    """A citation of a search result block given in the request."""

    type: ClassVar[Literal["search_result_location"]] = "search_result_location"
    cited_text: str
    search_result_index: int
    source: str
    title: str | UnsetType | None = UNSET
    start_block_index: int
    end_block_index: int


KnownCitation: TypeAlias = (
    CitationCharLocation
    | CitationPageLocation
    | CitationContentBlockLocation
    | CitationsWebSearchResultLocation
    | CitationsSearchResultLocation
)

Citation: TypeAlias = KnownCitation
"""A citation.  One of a type this version does not know arrives as an
:class:`UnknownCitation` at run time (see :class:`UnknownObject`)."""


# --- content blocks --------------------------------------------------------------------


class TextBlock(WireStruct, tag="text", kw_only=True):
    """Text written by the model, with the citations that back it, if any."""

    type: ClassVar[Literal["text"]] = "text"
    text: str
    citations: list[Citation] | UnsetType | None = UNSET


class ThinkingBlock(WireStruct, tag="thinking", kw_only=True):
    """The model's extended thinking, signed so it can be sent back."""

    type: ClassVar[Literal["thinking"]] = "thinking"
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(WireStruct, tag="redacted_thinking", gc=False, kw_only=True):
    """Thinking that was redacted; ``data`` is opaque and must be sent back unchanged."""

    type: ClassVar[Literal["redacted_thinking"]] = "redacted_thinking"
    data: str


class _ToolInputBlock(WireStruct, dict=True, kw_only=True):
    """A block whose ``input`` streams in as ``input_json_delta`` pieces."""

    id: str
    name: str
    input: dict[str, Any]

    @property
    def input_json(self) -> str | None:
        """The raw JSON text of ``input`` as it streamed in (None for a non-streamed block).

        When the text never became valid JSON, ``input`` holds the best parse of
        its valid beginning and this holds the whole text as received.
        """
        value = self.__dict__.get("_input_json")
        return value if isinstance(value, str) else None


class ToolUseBlock(_ToolInputBlock, tag="tool_use", kw_only=True):
    """The model calls one of the request's tools."""

    type: ClassVar[Literal["tool_use"]] = "tool_use"
    caller: dict[str, Any] | UnsetType | None = UNSET


class ServerToolUseBlock(_ToolInputBlock, tag="server_tool_use", kw_only=True):
    """The model calls a server-side tool (web search, web fetch, code execution, ...)."""

    type: ClassVar[Literal["server_tool_use"]] = "server_tool_use"
    caller: dict[str, Any] | UnsetType | None = UNSET


class WebSearchResultBlock(WireStruct, tag="web_search_result", gc=False, kw_only=True):
    """One result of a web search."""

    type: ClassVar[Literal["web_search_result"]] = "web_search_result"
    url: str
    title: str
    encrypted_content: str
    page_age: str | UnsetType | None = UNSET


class WebSearchToolResultError(
    WireStruct, tag="web_search_tool_result_error", gc=False, kw_only=True
):
    """A web search that failed."""

    type: ClassVar[Literal["web_search_tool_result_error"]] = "web_search_tool_result_error"
    error_code: str


class WebSearchToolResultBlock(WireStruct, tag="web_search_tool_result", kw_only=True):
    """The result of a ``web_search`` server tool call."""

    type: ClassVar[Literal["web_search_tool_result"]] = "web_search_tool_result"
    tool_use_id: str
    content: list[WebSearchResultBlock] | WebSearchToolResultError
    caller: dict[str, Any] | UnsetType | None = UNSET


class _ServerToolResultBlock(WireStruct, kw_only=True):
    """A server tool's result; ``content`` is kept as the API's JSON."""

    tool_use_id: str
    content: Any
    caller: dict[str, Any] | UnsetType | None = UNSET


class WebFetchToolResultBlock(_ServerToolResultBlock, tag="web_fetch_tool_result", kw_only=True):
    """The result of a ``web_fetch`` server tool call."""

    type: ClassVar[Literal["web_fetch_tool_result"]] = "web_fetch_tool_result"


class CodeExecutionToolResultBlock(
    _ServerToolResultBlock, tag="code_execution_tool_result", kw_only=True
):
    """The result of a ``code_execution`` server tool call."""

    type: ClassVar[Literal["code_execution_tool_result"]] = "code_execution_tool_result"


class BashCodeExecutionToolResultBlock(
    _ServerToolResultBlock, tag="bash_code_execution_tool_result", kw_only=True
):
    """The result of a bash command run by the code execution tool."""

    type: ClassVar[Literal["bash_code_execution_tool_result"]] = "bash_code_execution_tool_result"


class TextEditorCodeExecutionToolResultBlock(
    _ServerToolResultBlock, tag="text_editor_code_execution_tool_result", kw_only=True
):
    """The result of a text-editor command run by the code execution tool."""

    type: ClassVar[Literal["text_editor_code_execution_tool_result"]] = (
        "text_editor_code_execution_tool_result"
    )


class ToolSearchToolResultBlock(
    _ServerToolResultBlock, tag="tool_search_tool_result", kw_only=True
):
    """The result of a tool search server tool call."""

    type: ClassVar[Literal["tool_search_tool_result"]] = "tool_search_tool_result"


class ContainerUploadBlock(WireStruct, tag="container_upload", gc=False, kw_only=True):
    """A file uploaded into the code execution container."""

    type: ClassVar[Literal["container_upload"]] = "container_upload"
    file_id: str


KnownContentBlock: TypeAlias = (
    TextBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | ToolUseBlock
    | ServerToolUseBlock
    | WebSearchToolResultBlock
    | WebFetchToolResultBlock
    | CodeExecutionToolResultBlock
    | BashCodeExecutionToolResultBlock
    | TextEditorCodeExecutionToolResultBlock
    | ToolSearchToolResultBlock
    | ContainerUploadBlock
)

ContentBlock: TypeAlias = KnownContentBlock
"""A content block.

The static union lists the block types this version knows, so that
``block.type == "text"`` narrows as it does with the official SDK.  A block of
a type this version does not know is kept and arrives, at run time, as an
:class:`UnknownContentBlock` (a dict of its JSON): test for it with
``isinstance``.  The same holds for deltas, citations and events."""
