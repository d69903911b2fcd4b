"""Every script in examples/ runs against the scripted loopback server, and says what it should.

The scripts use ``AsyncAnthropic()`` / ``Anthropic()`` with default arguments, so
the environment points them here: ``ANTHROPIC_BASE_URL`` at a
``triostream.testing`` server answering with :class:`ScriptedConversation`, and a
fake ``ANTHROPIC_API_KEY``. Each runs as a user would run it (a subprocess),
except the service, which the test starts in its own nursery to talk to it.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
import trio

import triostream
from triostream.testing import (
    MockServer,
    RecordedRequest,
    Reply,
    ScriptedConversation,
    ThreadedMockServer,
    serve_in_thread,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPT = ScriptedConversation()
FAKE_KEY = "sk-ant-test-examples-0000"
MODEL = "claude-sonnet-4-5"


@dataclass
class Run:
    """What one example printed, and the requests it made."""

    stdout: str
    stderr: str
    requests: list[RecordedRequest]

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ThreadedMockServer]:
    """One scripted server for the whole module, in a thread of its own."""
    with serve_in_thread() as server:
        server.handler = SCRIPT
        yield server


def example_env(base_url: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ANTHROPIC_") and key.lower() not in ("http_proxy", "https_proxy")
    }
    pythonpath = [str(ROOT / "src"), env.get("PYTHONPATH", "")]
    env.update(
        ANTHROPIC_BASE_URL=base_url,
        ANTHROPIC_API_KEY=FAKE_KEY,
        NO_PROXY="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join(p for p in pythonpath if p),
        PYTHONIOENCODING="utf-8",
    )
    return env


def run_example(server: ThreadedMockServer, name: str) -> Run:
    """Run examples/<name>.py to completion; it must exit 0 without a traceback."""
    first = len(server.requests)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        env=example_env(server.base_url),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    server.wait_idle(timeout=10)
    requests = server.requests[first:]
    assert all(r.header("x-api-key") == FAKE_KEY for r in requests)
    assert all(c.closed_at is not None for c in server.connections)
    return Run(done.stdout, done.stderr, requests)


def text_of(message: dict[str, Any]) -> str:
    return "".join(block["text"] for block in message["content"] if block["type"] == "text")


def answer(request: RecordedRequest) -> dict[str, Any]:
    """The message the scripted server answered ``request`` with."""
    assert request.json["model"] == MODEL or request.json["model"].startswith("claude")
    return SCRIPT.message_for(request.json)


def prompt_of(request: RecordedRequest) -> str:
    content = request.json["messages"][-1]["content"]
    assert isinstance(content, str)
    return content


def test_every_example_has_a_test() -> None:
    tested = {
        name.removeprefix("test_")
        for name, value in globals().items()
        if name.startswith("test_") and callable(value)
    }
    scripts = {path.stem for path in EXAMPLES.glob("*.py")}
    assert len(scripts) == 18
    assert scripts <= tested, scripts - tested


def test_basic_streaming(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "basic_streaming")
    (request,) = run.requests
    assert request.json["stream"] is True
    assert request.json["max_tokens"] == 1024
    expected = text_of(answer(request))
    assert expected.startswith('You asked: "Say hello in one short sentence.".')
    assert run.stdout == expected + "\n"


def test_all_events(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "all_events")
    (request,) = run.requests
    message = answer(request)
    lines = run.lines
    assert lines[:2] == [
        f"[message_start] id={message['id']} model={MODEL}",
        "[content_block_start] #0 text",
    ]
    assert lines[-3:] == [
        "[content_block_stop] #0",
        "[message_delta] stop_reason=end_turn",
        "[message_stop]",
    ]
    texts = [ast.literal_eval(line.removeprefix("[text] ")) for line in lines[2:-3]]
    assert all(line.startswith("[text] ") for line in lines[2:-3])
    assert "".join(texts) == text_of(message)
    assert len(texts) == message["usage"]["output_tokens"]  # one word per delta


def test_final_message(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "final_message")
    (request,) = run.requests
    message = answer(request)
    assert run.lines == [
        f"text: {text_of(message)}",
        "stop_reason: end_turn",
        f"input_tokens: {message['usage']['input_tokens']}",
        f"output_tokens: {message['usage']['output_tokens']}",
    ]
    assert message["usage"]["output_tokens"] == len(text_of(message).split())


def test_tool_use(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "tool_use")
    (request,) = run.requests
    assert [tool["name"] for tool in request.json["tools"]] == ["get_weather"]
    message = answer(request)
    tool_call = message["content"][-1]
    assert tool_call["input"] == {"location": "Paris", "unit": "celsius"}
    lines = run.lines
    assert lines[0] == "tool call: get_weather"
    pieces = [ast.literal_eval(line.removeprefix("  piece: ")) for line in lines[1:-2]]
    assert pieces[0] == ""  # the API's first input_json_delta is empty, and so is the script's
    assert len(pieces) > 4
    assert json.loads("".join(pieces)) == {"location": "Paris", "unit": "celsius"}
    assert lines[-2] == (
        f'input of get_weather ({tool_call["id"]}): {{"location": "Paris", "unit": "celsius"}}'
    )
    assert lines[-1] == "stop_reason: tool_use"


def test_async_streaming(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "async_streaming")
    (request,) = run.requests
    message = answer(request)
    text = text_of(message)
    assert run.stdout.startswith(text + "\n\ncontent block finished accumulating: TextBlock(")
    accumulated = run.lines[-1]
    assert accumulated.startswith("accumulated message: ")
    assert json.loads(accumulated.removeprefix("accumulated message: ")) == message


def test_final_text(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "final_text")
    (request,) = run.requests
    assert run.stdout == text_of(answer(request)) + "\n"
    assert prompt_of(request) in run.stdout


def test_snapshot(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "snapshot")
    (request,) = run.requests
    text = text_of(answer(request))
    *progress, final = run.lines
    assert final == "final: 1 block(s), stop_reason end_turn"
    lengths = []
    for line in progress:
        found = re.fullmatch(r"\s*(\d+) chars so far, ending (.+)", line)
        assert found, line
        lengths.append(int(found[1]))
        assert text[: int(found[1])].endswith(ast.literal_eval(found[2]))
    assert lengths == sorted(set(lengths))  # the snapshot only grows
    assert lengths[-1] == len(text)


def test_event_processing(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "event_processing")
    (request,) = run.requests
    text = text_of(answer(request))
    deltas = len(text.split())
    assert run.lines == [
        text,
        f"events processed: content_block_delta={deltas}, content_block_start=1, "
        f"content_block_stop=1, message_delta=1, message_start=1, message_stop=1, text={deltas}",
    ]


def test_error_handling(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "error_handling")
    bad, good = run.requests
    assert bad.json["model"] == "no-such-model"
    assert run.lines == [
        "no-such-model: API error 404 (not_found_error): model: no-such-model",
        f"  request-id: {bad.request_id}",
        f"{MODEL}: {text_of(answer(good))}",
    ]


def test_manual_enter_exit(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "manual_enter_exit")
    (request,) = run.requests
    assert run.stdout == text_of(answer(request)) + "\n"


def test_temperature(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "temperature")
    assert [r.json["temperature"] for r in run.requests] == [0.0, 1.0]
    assert run.lines == [
        f"temperature {r.json['temperature']}: {text_of(answer(r))}" for r in run.requests
    ]


def test_multi_turn(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "multi_turn")
    assert len(run.requests) == 3
    last = run.requests[-1].json["messages"]
    assert [m["role"] for m in last] == ["user", "assistant"] * 2 + ["user"]
    # Each answer went back as the assistant turn, exactly as it came.
    assert last[1]["content"] == answer(run.requests[0])["content"]
    assert last[3]["content"] == answer(run.requests[1])["content"]
    expected: list[str] = []
    for request in run.requests:
        expected += [f"> {prompt_of(request)}", text_of(answer(request))]
    assert run.lines == [*expected, "6 messages in the conversation"]


def test_raw_response(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "raw_response")
    streamed, raw = run.requests
    types = [e["type"] for e in SCRIPT.events_for(raw.json) if e["type"] != "ping"]
    assert run.lines == [
        "status: 200",
        "content-type: text/event-stream",
        f"request-id: {streamed.request_id}",
        f"raw request-id: {raw.request_id}",
        f"raw events: {types!r}",
    ]


def test_concurrent_streams(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "concurrent_streams")
    by_city = {
        re.search(r"about (\w+),", prompt_of(r))[1]: text_of(answer(r))  # type: ignore[index]
        for r in run.requests
    }
    assert sorted(by_city) == ["Kyoto", "Lisbon", "Oslo"]
    assert run.lines == [f"{city}: {by_city[city]}" for city in ("Lisbon", "Oslo", "Kyoto")]


def test_usage_during_streaming(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "usage_during_streaming")
    (request,) = run.requests
    usage = answer(request)["usage"]
    assert usage["output_tokens"] > 20
    assert run.lines == [
        f"message_start: input_tokens={usage['input_tokens']}",
        "message_start: output_tokens=1",
        f"message_delta: output_tokens={usage['output_tokens']}",
        f"final usage: input_tokens={usage['input_tokens']}",
        f"final usage: output_tokens={usage['output_tokens']}",
    ]


def test_fan_out(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "fan_out")
    (request,) = run.requests
    message = answer(request)
    text = text_of(message)
    wire = [e for e in SCRIPT.events_for(request.json) if e["type"] != "ping"]
    deltas = sum(e["type"] == "content_block_delta" for e in wire)
    assert run.lines == [
        text,
        f"metrics: {len(wire) + deltas} events, {deltas} text deltas, {len(text)} characters, "
        f"{message['usage']['output_tokens']} output tokens",
    ]
    assert run.stderr.splitlines() == [
        f"[log] event {kind}"
        for kind in (
            "message_start",
            "content_block_start",
            "content_block_stop",
            "message_delta",
            "message_stop",
        )
    ]


def test_sync_streaming(scripted: ThreadedMockServer) -> None:
    run = run_example(scripted, "sync_streaming")
    (request,) = run.requests
    message = answer(request)
    assert run.lines == [
        text_of(message),
        "stop_reason: end_turn",
        f"output_tokens: {message['usage']['output_tokens']}",
    ]


# --- the service: started in the test's nursery, three real TCP clients ---------------------


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def ask(port: int, prompt: str) -> str:
    """Send a prompt to the service and read the whole answer."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as conn:
        await conn.send_all(prompt.encode() + b"\n")
        received = b""
        while chunk := await conn.receive_some():
            received += chunk
    return received.decode()


async def ask_and_hang_up(port: int, prompt: str, until: bytes) -> None:
    """Send a prompt, read the answer until ``until`` has arrived, and leave."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as conn:
        await conn.send_all(prompt.encode() + b"\n")
        received = b""
        while received != until:
            chunk = await conn.receive_some()
            assert chunk, received
            assert until.startswith(received + chunk), received + chunk
            received += chunk


async def test_service(
    server: MockServer,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    def handler(request: RecordedRequest) -> Reply:
        events = SCRIPT.events_for(request.json)
        if "hang up" in prompt_of(request):
            # message_start, content_block_start, ping and three words; then nothing until
            # the client (the service) goes away.
            return Reply.stream(events, stall_after=6)
        return Reply.stream(events, close_connection=True)

    server.handler = handler
    service = load_example("service")
    answers: dict[str, str] = {}

    async def ask_into(prompt: str) -> None:
        answers[prompt] = await ask(port, prompt)

    with trio.fail_after(10):
        port = await nursery.start(service.serve, 0)
        async with trio.open_nursery() as clients:
            clients.start_soon(ask_into, "What is a nursery?")
            clients.start_soon(ask_into, "What is a cancel scope?")
            # Once the three words are in, the service waits for more that never come:
            # only the client going away can end that stream.
            clients.start_soon(ask_and_hang_up, port, "Please hang up on me", b'You asked: "Please')
        # The other answers closed their connections; the stalled one closes only if the
        # service cancels that stream when its client goes away.
        await server.wait_idle()

    by_prompt = {prompt_of(r): r for r in server.requests}
    assert sorted(by_prompt) == [
        "Please hang up on me",
        "What is a cancel scope?",
        "What is a nursery?",
    ]
    for prompt, received in answers.items():
        assert received == text_of(answer(by_prompt[prompt])) + "\n"
    hung_up = server.connections[by_prompt["Please hang up on me"].connection]
    assert hung_up.closed_by == "client"
    others = {by_prompt[p].connection for p in answers}
    assert {server.connections[i].closed_by for i in others} == {"server"}
    out = capsys.readouterr().out
    assert f"listening on 127.0.0.1:{port}" in out
    assert out.count(": answered") == 2
    assert out.count("client went away; cancelling its stream") == 1
    nursery.cancel_scope.cancel()


# --- the scripted conversation the examples run against ---------------------------------------

WEATHER = {
    "name": "get_weather",
    "input_schema": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "days": {"type": "integer"},
            "fields": {"type": "array", "items": {"type": "string"}},
        },
    },
}
ASK = {"role": "user", "content": "What's the weather in Oslo?"}
BODIES: dict[str, dict[str, Any]] = {
    "text": {"model": MODEL, "max_tokens": 1024, "messages": [ASK]},
    "tool": {"model": MODEL, "max_tokens": 1024, "messages": [ASK], "tools": [WEATHER]},
    "thinking+tool": {
        "model": MODEL,
        "max_tokens": 2048,
        "messages": [ASK],
        "tools": [WEATHER],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    },
    "tool_result": {
        "model": MODEL,
        "max_tokens": 1024,
        "tools": [WEATHER],
        "messages": [
            ASK,
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": '{"temp_c": 4}'}
                ],
            },
        ],
    },
    "max_tokens in tool input": {
        "model": MODEL,
        "max_tokens": 15,
        "messages": [ASK],
        "tools": [WEATHER],
    },
    "stop_sequence": {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [ASK],
        "stop_sequences": ["streamed", "word"],
    },
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
async def test_scripted_stream_and_json_agree(
    body: dict[str, Any], client: triostream.AsyncAnthropic, server: MockServer
) -> None:
    server.handler = SCRIPT
    async with client.messages.stream(**body) as stream:
        streamed = await stream.get_final_message()
    created = await client.messages.create(**body)
    expected = SCRIPT.message_for(body)
    assert msgspec.to_builtins(streamed) == expected
    assert msgspec.to_builtins(created) == expected
    assert [r.json.get("stream") for r in server.requests] == [True, None]
    await client.aclose()
    with trio.fail_after(5):
        await server.wait_idle()
    assert all(c.closed_at is not None for c in server.connections)


def test_scripted_answers() -> None:
    text, tool, thinking, result, cut, stop = (SCRIPT.message_for(b) for b in BODIES.values())
    assert text_of(text).startswith('You asked: "What\'s the weather in Oslo?". ')
    assert (text["stop_reason"], text["usage"]["output_tokens"]) == ("end_turn", 40)
    assert len(text_of(text).split()) == 40  # one token per word
    assert [b["type"] for b in tool["content"]] == ["text", "tool_use"]
    assert tool["content"][1]["input"] == {
        "location": "Oslo",
        "days": 3,
        "fields": ["field 1", "field 2", "field 3"],
    }
    assert tool["stop_reason"] == "tool_use"
    assert [b["type"] for b in thinking["content"]] == ["thinking", "text", "tool_use"]
    assert thinking["content"][0]["signature"]
    assert text_of(result) == (
        "Based on get_weather: temp_c 4. That should cover it; ask if you want more detail."
    )
    # 15 tokens: the 8-word sentence, then 7 JSON pieces of the input (no content_block_stop).
    assert (cut["stop_reason"], cut["usage"]["output_tokens"]) == ("max_tokens", 15)
    assert cut["content"][1]["input"] == {"location": "Oslo", "days": 3, "fields": []}
    events = SCRIPT.events_for(BODIES["max_tokens in tool input"])
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0]
    assert (stop["stop_reason"], stop["stop_sequence"]) == ("stop_sequence", "streamed")
    assert text_of(stop).endswith("triostream.testing, ")
    # The same request gets the same answer; the input tokens grow with the request.
    assert SCRIPT.message_for(BODIES["text"]) == text
    assert result["usage"]["input_tokens"] > text["usage"]["input_tokens"] > 10


async def test_scripted_refusals(client: triostream.AsyncAnthropic, server: MockServer) -> None:
    server.handler = SCRIPT
    with pytest.raises(triostream.BadRequestError, match="max_tokens: Input should be greater"):
        await client.messages.create(model=MODEL, max_tokens=0, messages=[ASK])  # type: ignore[list-item]
    with pytest.raises(triostream.BadRequestError, match="messages: at least one message"):
        await client.messages.create(model=MODEL, max_tokens=10, messages=[])
    with pytest.raises(triostream.NotFoundError, match="model: gpt-4"):
        await client.messages.create(model="gpt-4", max_tokens=10, messages=[ASK])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_tokens"):
        SCRIPT.message_for({"model": MODEL, "messages": [ASK]})
    await client.aclose()
    with trio.fail_after(5):
        await server.wait_idle()
    assert all(c.closed_at is not None for c in server.connections)


def test_scripted_delay_and_chunking() -> None:
    request = RecordedRequest(
        index=0,
        connection=0,
        method="POST",
        path="/v1/messages",
        query="",
        headers=[],
        body=b"",
        json={**BODIES["text"], "stream": True},
        received_at=0.0,
        request_id="req_0",
    )
    reply = ScriptedConversation(delay=0.02)(request)
    assert reply.delay == 0.02
    assert reply.content_type == "text/event-stream"
    assert len(reply.chunks) == len(SCRIPT.events_for(BODIES["text"]))  # one event per chunk
    sized = ScriptedConversation(chunking=5)(request)
    assert {len(chunk) for chunk in sized.chunks[:-1]} == {5}
    with pytest.raises(ValueError, match="delay"):
        ScriptedConversation(delay=-1)
