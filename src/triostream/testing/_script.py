"""ScriptedConversation: a handler that answers ``POST /v1/messages`` as a model would, scripted.

::

    server = await MockServer.start(nursery)
    server.handler = ScriptedConversation()          # or ScriptedConversation(delay=0.02)

The answer depends only on the request body (no randomness, no clock), so a
test can compute what a request will get with :meth:`ScriptedConversation.message_for`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from triostream._partial_json import parse_partial

from ._records import RecordedRequest
from ._replies import Chunking, Reply

__all__ = ["ScriptedConversation"]

_WORD = re.compile(r"\s*\S+")
_SPACES = re.compile(r"\s+")
# Characters per input_json_delta piece, in turn: small and uneven, like the API's.
_JSON_PIECES = (4, 7, 3, 9, 5, 8, 6)
_PROMPT_CHARS = 160
_RESULT_CHARS = 200
_PLACE_NAMES = ("location", "city", "place", "destination", "town", "country")
_QUERY_NAMES = ("query", "q", "question", "text", "prompt", "search", "topic")

BlockKind = Literal["thinking", "text", "tool_use"]


class _InvalidRequest(ValueError):
    """The request is not one the Messages API would accept (answered with a 400)."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.type = type


@dataclass(slots=True)
class _Block:
    """One content block of the answer, as the pieces its deltas carry."""

    kind: BlockKind
    pieces: list[str]
    signature: str = ""
    tool_id: str = ""
    tool_name: str = ""
    complete: bool = True

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(slots=True)
class _Plan:
    """The whole answer: blocks, why it stopped, and its usage."""

    message_id: str
    model: str
    blocks: list[_Block] = field(default_factory=list)
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    input_tokens: int = 1
    output_tokens: int = 0


class ScriptedConversation:
    """A :class:`MockServer` handler that answers plausibly from the request JSON.

    What the request gets:

    - ``thinking: {"type": "enabled", ...}``: a thinking block (with its
      signature) first.
    - ``tools`` given and the last user turn is text (and ``tool_choice`` is
      not ``none``): a sentence of text, then a ``tool_use`` block for the
      first tool (or the one ``tool_choice`` names) whose input streams in
      small ``input_json_delta`` pieces; ``stop_reason: tool_use``. The input
      comes from ``tool_inputs[name]`` when given, else it is made up from
      the tool's ``input_schema`` (enums, numbers, lists, place names found
      in the prompt).
    - the last user turn holds a ``tool_result``: a text answer that uses it.
    - otherwise: a few sentences of text (``text`` when given) that quote
      the prompt, one word per ``text_delta``.

    Usage: ``input_tokens`` grows with the request's size, ``output_tokens``
    counts the deltas (one per word or JSON piece). ``max_tokens`` cuts the
    answer (``stop_reason: max_tokens``; a tool input cut short gets no
    ``content_block_stop``, as with the API), and ``stop_sequences`` cut the
    text (``stop_reason: stop_sequence``).

    A request with ``"stream": true`` gets an SSE stream (one HTTP chunk per
    event, ``delay`` seconds apart, or as ``chunking`` says); any other gets
    the same message as JSON. A request the API would refuse (no
    ``messages``, ``max_tokens`` < 1, ...) gets a 400 ``invalid_request_error``,
    and a model whose name does not start with ``claude`` a 404
    ``not_found_error``. Ids are derived from the request body, so the same
    request always gets the same answer.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        chunking: Chunking = "event",
        text: str | None = None,
        tool_inputs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Answer with ``delay`` seconds between events; ``text`` replaces the plain answer."""
        if not delay >= 0:
            raise ValueError(f"delay must be >= 0 seconds, not {delay!r}")
        self.delay = delay
        self.chunking = chunking
        self.text = text
        self.tool_inputs: dict[str, dict[str, Any]] = {
            name: dict(value) for name, value in (tool_inputs or {}).items()
        }

    def __call__(self, request: RecordedRequest) -> Reply:
        """The reply to one request (this is what makes it a ``MockServer.handler``)."""
        body = request.json
        try:
            plan = self._plan(body)
        except _InvalidRequest as exc:
            return Reply.error(exc.status, type=exc.type, message=str(exc))
        if isinstance(body, Mapping) and body.get("stream") is True:
            return Reply.stream(_events(plan), delay=self.delay, chunking=self.chunking)
        return Reply.json(_message(plan))

    def message_for(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The ``Message`` (as JSON data) that a request with this body is answered with.

        Raises :class:`ValueError` when the API would refuse the request.
        """
        return _message(self._plan(body))

    def events_for(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The stream events (as JSON data, pings included) a streaming request gets.

        Use them with :meth:`Reply.stream` to add faults to a scripted answer.
        Raises :class:`ValueError` when the API would refuse the request.
        """
        return _events(self._plan(body))

    # --- the answer ------------------------------------------------------------------------

    def _plan(self, body: object) -> _Plan:
        request = _validate(body)
        digest = hashlib.sha256(
            json.dumps(request, sort_keys=True, separators=(",", ":"), default=str).encode()
        ).hexdigest()
        plan = _Plan(
            message_id=f"msg_01{digest[:22]}",
            model=request["model"],
            input_tokens=max(1, math.ceil(len(json.dumps(request)) / 4)),
        )
        messages: list[Mapping[str, Any]] = request["messages"]
        users = [m for m in messages if m.get("role") == "user"]
        results = _tool_results(users[-1] if users else None)
        asked = next((m for m in reversed(users) if _prompt_of(m)), None)
        prompt = _prompt_of(asked) or "(no text)"
        tool = None if results else _chosen_tool(request)

        candidates: list[_Block] = []
        if _thinking_enabled(request):
            thought = _thinking_text(prompt, tool, results, messages)
            signature = base64.b64encode(hashlib.sha256(thought.encode()).digest()).decode()
            candidates.append(_Block("thinking", _words(thought), signature=signature))
        if results:
            candidates.append(_Block("text", _words(_answer_from_results(results, messages))))
        elif tool is not None:
            name = tool["name"]
            candidates.append(_Block("text", _words(f"I'll use the {name} tool for that.")))
            value = self.tool_inputs.get(name)
            if value is None:
                value = _example_input(tool.get("input_schema"), prompt)
            encoded = json.dumps(value, ensure_ascii=False)
            candidates.append(
                _Block(
                    "tool_use",
                    ["", *_json_pieces(encoded)],
                    tool_id=f"toolu_01{digest[22:44]}",
                    tool_name=name,
                )
            )
            plan.stop_reason = "tool_use"
        else:
            candidates.append(_Block("text", _words(self.text or _plain_text(prompt))))

        _fit(plan, candidates, request["max_tokens"], request.get("stop_sequences") or ())
        return plan


# --- reading the request ---------------------------------------------------------------------


def _validate(body: object) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise _InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _InvalidRequest("model: Field required")
    if not model.startswith("claude"):
        raise _InvalidRequest(f"model: {model}", status=404, type="not_found_error")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _InvalidRequest("max_tokens: Field required (an integer)")
    if max_tokens < 1:
        raise _InvalidRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _InvalidRequest("messages: at least one message is required")
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise _InvalidRequest(f"messages.{position}.role: must be 'user' or 'assistant'")
        if not isinstance(message.get("content"), (str, list)):
            raise _InvalidRequest(f"messages.{position}.content: Field required")
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list)
        or not all(isinstance(t, Mapping) and isinstance(t.get("name"), str) for t in tools)
    ):
        raise _InvalidRequest("tools: each tool needs a name")
    stops = body.get("stop_sequences")
    if stops is not None and (
        not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops)
    ):
        raise _InvalidRequest("stop_sequences: must be a list of non-empty strings")
    # Streaming or not, the answer is the same message.
    return {key: value for key, value in body.items() if key != "stream"}


def _blocks_of(message: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if message is None:
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content or () if isinstance(block, Mapping)]


def _prompt_of(message: Mapping[str, Any] | None) -> str:
    texts = [
        block["text"]
        for block in _blocks_of(message)
        if block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    prompt = _SPACES.sub(" ", " ".join(texts)).strip()
    return prompt if len(prompt) <= _PROMPT_CHARS else prompt[: _PROMPT_CHARS - 3] + "..."


def _tool_results(message: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [block for block in _blocks_of(message) if block.get("type") == "tool_result"]


def _chosen_tool(request: Mapping[str, Any]) -> Mapping[str, Any] | None:
    tools: list[Mapping[str, Any]] = request.get("tools") or []
    choice = request.get("tool_choice")
    choice_type = choice.get("type") if isinstance(choice, Mapping) else None
    if not tools or choice_type == "none":
        return None
    if choice_type == "tool":
        wanted = choice.get("name") if isinstance(choice, Mapping) else None
        for tool in tools:
            if tool["name"] == wanted:
                return tool
        raise _InvalidRequest(f"tool_choice: no tool named {wanted!r} in tools")
    return tools[0]


def _thinking_enabled(request: Mapping[str, Any]) -> bool:
    thinking = request.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") == "enabled"


def _tool_names(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        for block in _blocks_of(message):
            if block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
    return names


# --- writing the answer ----------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _json_pieces(text: str) -> list[str]:
    pieces: list[str] = []
    position = 0
    turn = 0
    while position < len(text):
        size = _JSON_PIECES[turn % len(_JSON_PIECES)]
        pieces.append(text[position : position + size])
        position += size
        turn += 1
    return pieces


def _plain_text(prompt: str) -> str:
    return (
        f'You asked: "{prompt}". This reply comes from the scripted conversation of '
        "triostream.testing, streamed word by word over a real HTTP connection. It is the "
        "same every time, so a test can check it word for word."
    )


def _thinking_text(
    prompt: str,
    tool: Mapping[str, Any] | None,
    results: list[Mapping[str, Any]],
    messages: Sequence[Mapping[str, Any]],
) -> str:
    if results:
        name = _tool_names(messages).get(str(results[0].get("tool_use_id")), "the tool")
        plan = f"The result from {name} is in, so I can answer from it, briefly."
    elif tool is not None:
        plan = (
            f"The {tool['name']} tool can get what is needed, so I will call it first "
            "and answer once its result is back."
        )
    else:
        plan = "I can answer this directly. Keep it short and concrete."
    return f'The user asks: "{prompt}". {plan}'


def _describe(value: Any) -> str:
    if isinstance(value, list):
        items = [_describe(item) for item in value]
        if len(items) <= 1:
            return "".join(items) or "none"
        return ", ".join(items[:-1]) + " and " + items[-1]
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _result_text(result: Mapping[str, Any]) -> str:
    content = result.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(block.get("text"))
            for block in content
            if isinstance(block, Mapping) and block.get("type") == "text"
        )
    return ""


def _summary(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, Mapping) and value:
        summary = "; ".join(f"{key} {_describe(item)}" for key, item in list(value.items())[:8])
    else:
        summary = _SPACES.sub(" ", text).strip() or "nothing"
    if len(summary) > _RESULT_CHARS:
        summary = summary[: _RESULT_CHARS - 3] + "..."
    return summary


def _answer_from_results(
    results: list[Mapping[str, Any]], messages: Sequence[Mapping[str, Any]]
) -> str:
    names = _tool_names(messages)
    sentences: list[str] = []
    for result in results:
        name = names.get(str(result.get("tool_use_id")), "the tool")
        summary = _summary(_result_text(result))
        if result.get("is_error") is True:
            sentences.append(f"{name} reported an error ({summary}), so I can't answer that yet.")
        else:
            sentences.append(f"Based on {name}: {summary}.")
    sentences.append("That should cover it; ask if you want more detail.")
    return " ".join(sentences)


def _place_in(prompt: str) -> str | None:
    words: list[str] = re.findall(r"[A-Za-z][\w'-]*", prompt)
    for word in words[1:]:
        if word[0].isupper() and word not in ("I", "I'm", "I'll", "What", "What's"):
            return word
    return None


def _example_input(schema: object, prompt: str) -> dict[str, Any]:
    value = _example_value(schema, "input", prompt, depth=0)
    return value if isinstance(value, dict) else {"query": prompt}


def _example_value(schema: object, name: str, prompt: str, *, depth: int) -> Any:
    if not isinstance(schema, Mapping):
        schema = {}
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or depth > 3:
            return {}
        return {
            str(key): _example_value(sub, str(key), prompt, depth=depth + 1)
            for key, sub in properties.items()
        }
    if kind == "array":
        items = schema.get("items")
        item_enum = items.get("enum") if isinstance(items, Mapping) else None
        if isinstance(item_enum, list) and item_enum:
            return item_enum[:3]
        singular = name[:-1] if name.endswith("s") and len(name) > 1 else name
        return [
            _example_value(items, f"{singular} {n}", prompt, depth=depth + 1) for n in (1, 2, 3)
        ]
    if kind == "integer":
        return 3
    if kind == "number":
        return 2.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    lowered = name.lower()
    if any(part in lowered for part in _PLACE_NAMES):
        return _place_in(prompt) or "Paris"
    if lowered in _QUERY_NAMES:
        return prompt
    return name.replace("_", " ")


def _fit(
    plan: _Plan, candidates: list[_Block], max_tokens: int, stop_sequences: Sequence[str]
) -> None:
    """Keep what fits in ``max_tokens`` and comes before a stop sequence; set the stop reason."""
    for block in candidates:
        sequence = None
        if block.kind == "text" and stop_sequences:
            found = _first_stop(block.text, stop_sequences)
            if found is not None:
                block.pieces = _cut_text(block.pieces, found[0])
                sequence = found[1]
        remaining = max_tokens - plan.output_tokens
        if remaining <= 0 or _take(plan, block, remaining):
            plan.stop_reason = "max_tokens"
            return
        if sequence is not None:
            plan.stop_reason, plan.stop_sequence = "stop_sequence", sequence
            return


def _take(plan: _Plan, block: _Block, budget: int) -> bool:
    """Add as much of ``block`` as ``budget`` tokens allow; True when it was cut short."""
    taken: list[str] = []
    tokens = 0
    for piece in block.pieces:
        if piece:
            if tokens == budget:
                break
            tokens += 1
        taken.append(piece)
    cut = len(taken) < len(block.pieces)
    if cut:
        if tokens == 0:
            return True
        block.pieces = taken
        if block.kind == "thinking":
            block.signature = ""
        block.complete = block.kind != "tool_use"
    plan.blocks.append(block)
    plan.output_tokens += tokens
    return cut


def _first_stop(text: str, sequences: Sequence[str]) -> tuple[int, str] | None:
    found: tuple[int, str] | None = None
    for sequence in sequences:
        position = text.find(sequence)
        if position >= 0 and (found is None or position < found[0]):
            found = (position, sequence)
    return found


def _cut_text(pieces: list[str], length: int) -> list[str]:
    kept: list[str] = []
    remaining = length
    for piece in pieces:
        if remaining <= 0:
            break
        kept.append(piece[:remaining])
        remaining -= len(piece)
    return [piece for piece in kept if piece]


# --- the wire --------------------------------------------------------------------------------


def _usage(plan: _Plan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": plan.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _final_block(block: _Block) -> dict[str, Any]:
    if block.kind == "thinking":
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if block.kind == "text":
        return {"type": "text", "text": block.text}
    if block.complete:
        value: Any = json.loads(block.text)
    else:
        value = parse_partial(block.text, partial_strings=False)
    return {
        "type": "tool_use",
        "id": block.tool_id,
        "name": block.tool_name,
        "input": value if isinstance(value, dict) else {},
    }


def _message(plan: _Plan) -> dict[str, Any]:
    return {
        "id": plan.message_id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [_final_block(block) for block in plan.blocks],
        "stop_reason": plan.stop_reason,
        "stop_sequence": plan.stop_sequence,
        "usage": _usage(plan, max(plan.output_tokens, 1)),
    }


_EMPTY_BLOCKS: dict[BlockKind, dict[str, Any]] = {
    "thinking": {"type": "thinking", "thinking": "", "signature": ""},
    "text": {"type": "text", "text": ""},
}
_DELTA_FIELDS: dict[BlockKind, tuple[str, str]] = {
    "thinking": ("thinking_delta", "thinking"),
    "text": ("text_delta", "text"),
    "tool_use": ("input_json_delta", "partial_json"),
}


def _events(plan: _Plan) -> list[dict[str, Any]]:
    start: dict[str, Any] = {
        "id": plan.message_id,
        "type": "message",
        "role": "assistant",
        "model": plan.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(plan, 1),
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(plan.blocks):
        if block.kind == "tool_use":
            empty = {"type": "tool_use", "id": block.tool_id, "name": block.tool_name, "input": {}}
        else:
            empty = dict(_EMPTY_BLOCKS[block.kind])
        events.append({"type": "content_block_start", "index": index, "content_block": empty})
        if index == 0:
            events.append({"type": "ping"})
        delta_type, key = _DELTA_FIELDS[block.kind]
        for piece in block.pieces:
            delta = {"type": delta_type, key: piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        if block.signature:
            delta = {"type": "signature_delta", "signature": block.signature}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        if block.complete:
            events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": plan.stop_reason, "stop_sequence": plan.stop_sequence},
            "usage": {"output_tokens": max(plan.output_tokens, 1)},
        }
    )
    events.append({"type": "message_stop"})
    return events
