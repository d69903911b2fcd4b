"""AsyncAnthropic: headers, environment, the request body, the http_client, messages.create,
and secrets (DESIGN promise 9), checked against what the loopback server received."""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import trio

import triostream
from tests.conftest import API_KEY, PARAMS, RECORDED
from tests.streams import THINKING, TOOLS, WEATHER, message_start, text_delta, text_stream
from triostream import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    IncompleteStreamError,
    InternalServerError,
    MissingCredentialsError,
    OverloadedError,
)
from triostream.testing import MockServer, RecordedRequest, Reply, sse_body
from triostream.types import Message, TextBlock

BASIC = (RECORDED / "basic_response.txt").read_bytes()
AUTH_TOKEN = "oauth-token-SECRET-e41d07"
ENV_KEY = "sk-ant-env-SECRET-90b2c1"

ALLOWED_HEADERS = {
    "host",
    "accept",
    "accept-encoding",
    "connection",
    "content-length",
    "content-type",
    "user-agent",
    "anthropic-version",
    "x-api-key",
    "authorization",
}
"""Every header a request may carry by default: nothing for telemetry."""

MESSAGE_JSON: dict[str, Any] = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "text", "text": "Hi! Let me look."},
        {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": WEATHER},
        {"type": "future_block", "id": "fb_1", "payload": {"x": [1, 2, None]}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 34},
}
"""A non-streaming reply, with a block type this version does not know."""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ANTHROPIC_* variable from the machine running the tests leaks into them."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


async def stream_once(client: triostream.AsyncAnthropic, **params: Any) -> Message:
    """Stream one message through ``client.messages.stream`` and return it."""
    with trio.fail_after(5):
        async with client.messages.stream(**{**PARAMS, **params}) as stream:
            return await stream.get_final_message()


async def streamed_request(
    server: MockServer, client: triostream.AsyncAnthropic, **params: Any
) -> RecordedRequest:
    """Stream the basic recording once; the request the server received."""
    server.enqueue(Reply.sse(BASIC))
    before = len(server.requests)
    await stream_once(client, **params)
    assert len(server.requests) == before + 1
    return server.requests[-1]


async def created_request(
    server: MockServer, client: triostream.AsyncAnthropic, **params: Any
) -> RecordedRequest:
    """One non-streaming ``messages.create``; the request the server received."""
    server.enqueue(Reply.json(MESSAGE_JSON))
    before = len(server.requests)
    with trio.fail_after(5):
        await client.messages.create(**{**PARAMS, **params})
    assert len(server.requests) == before + 1
    return server.requests[-1]


async def assert_all_closed(client: triostream.AsyncAnthropic, server: MockServer) -> None:
    """Close the client, then every connection the server saw must be closed."""
    await client.aclose()
    with trio.fail_after(5):
        await server.wait_idle()
    assert all(record.closed_at is not None for record in server.connections)


def header_names(request: RecordedRequest) -> list[str]:
    """The names of the headers of a recorded request, in order."""
    return [name for name, _ in request.headers]


# --- headers ----------------------------------------------------------------------------------


async def test_default_stream_headers(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await streamed_request(server, client)
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert request.header("x-api-key") == API_KEY
    assert request.header("authorization") is None
    assert request.header("anthropic-version") == "2023-06-01"
    assert request.header("content-type") == "application/json"
    assert request.header("accept") == "text/event-stream"
    user_agent = request.header("user-agent")
    assert user_agent is not None
    assert user_agent.startswith("triostream/")
    assert set(header_names(request)) <= ALLOWED_HEADERS
    assert not [name for name in header_names(request) if name.startswith("x-stainless")]
    assert len(header_names(request)) == len(set(header_names(request)))
    await assert_all_closed(client, server)


async def test_default_create_headers(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await created_request(server, client)
    assert request.header("accept") == "application/json"
    assert request.header("content-type") == "application/json"
    assert request.header("x-api-key") == API_KEY
    assert request.header("anthropic-version") == "2023-06-01"
    user_agent = request.header("user-agent")
    assert user_agent is not None
    assert user_agent.startswith("triostream/")
    assert set(header_names(request)) <= ALLOWED_HEADERS
    await assert_all_closed(client, server)


async def test_the_raw_stream_asks_for_event_stream(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.sse(BASIC))
    with trio.fail_after(5):
        raw = await client.messages.create(**PARAMS, stream=True)
        async with raw:
            assert len([event async for event in raw]) == 8
    assert server.requests[0].header("accept") == "text/event-stream"
    assert server.requests[0].json == {**PARAMS, "stream": True}
    await assert_all_closed(client, server)


async def test_auth_token_is_sent_as_bearer(server: MockServer) -> None:
    client = triostream.AsyncAnthropic(auth_token=AUTH_TOKEN, base_url=server.base_url)
    request = await streamed_request(server, client)
    assert request.header("authorization") == f"Bearer {AUTH_TOKEN}"
    assert request.header("x-api-key") is None
    assert set(header_names(request)) <= ALLOWED_HEADERS
    await assert_all_closed(client, server)


async def test_api_key_wins_over_auth_token(server: MockServer) -> None:
    client = triostream.AsyncAnthropic(
        api_key=API_KEY, auth_token=AUTH_TOKEN, base_url=server.base_url
    )
    request = await streamed_request(server, client)
    assert request.header("x-api-key") == API_KEY
    assert request.header("authorization") is None
    await assert_all_closed(client, server)


async def test_default_headers_override_and_add(server: MockServer) -> None:
    client = triostream.AsyncAnthropic(
        api_key=API_KEY,
        base_url=server.base_url,
        default_headers={"Anthropic-Version": "2099-01-01", "anthropic-beta": "feature-x"},
    )
    request = await streamed_request(server, client)
    assert request.header("anthropic-version") == "2099-01-01"
    assert request.header("anthropic-beta") == "feature-x"
    assert [name for name in header_names(request) if name == "anthropic-version"] == [
        "anthropic-version"
    ]
    await assert_all_closed(client, server)


async def test_extra_headers_override_per_call(server: MockServer) -> None:
    client = triostream.AsyncAnthropic(
        api_key=API_KEY,
        base_url=server.base_url,
        default_headers={"anthropic-beta": "feature-x", "x-team": "blue"},
    )
    request = await streamed_request(
        server,
        client,
        extra_headers={"anthropic-version": "2024-10-22", "anthropic-beta": "feature-y"},
    )
    assert request.header("anthropic-version") == "2024-10-22"
    assert request.header("anthropic-beta") == "feature-y"
    assert request.header("x-team") == "blue"
    # the next call is back to the defaults
    request = await streamed_request(server, client)
    assert request.header("anthropic-version") == "2023-06-01"
    assert request.header("anthropic-beta") == "feature-x"
    await assert_all_closed(client, server)


async def test_a_none_header_value_removes_the_header(server: MockServer) -> None:
    client = triostream.AsyncAnthropic(
        api_key=API_KEY,
        base_url=server.base_url,
        default_headers={"anthropic-beta": "feature-x", "x-team": None},
    )
    request = await streamed_request(
        server, client, extra_headers={"anthropic-version": None, "anthropic-beta": None}
    )
    assert request.header("anthropic-version") is None
    assert request.header("anthropic-beta") is None
    assert request.header("x-team") is None
    assert request.header("x-api-key") == API_KEY
    request = await created_request(server, client, extra_headers={"Anthropic-Beta": None})
    assert request.header("anthropic-beta") is None
    assert request.header("anthropic-version") == "2023-06-01"
    await assert_all_closed(client, server)


# --- environment --------------------------------------------------------------------------


async def test_environment_api_key_and_base_url(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    client = triostream.AsyncAnthropic()
    assert client.base_url == server.base_url
    request = await streamed_request(server, client)
    assert request.header("x-api-key") == ENV_KEY
    assert ENV_KEY not in repr(client)
    await assert_all_closed(client, server)


async def test_environment_auth_token(server: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url + "/")
    client = triostream.AsyncAnthropic()
    request = await streamed_request(server, client)
    assert request.header("authorization") == f"Bearer {AUTH_TOKEN}"
    assert request.header("x-api-key") is None
    assert request.path == "/v1/messages"
    await assert_all_closed(client, server)


async def test_arguments_win_over_the_environment(
    server: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # the discard port
    client = triostream.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url)
    request = await streamed_request(server, client)
    assert request.header("x-api-key") == API_KEY
    await assert_all_closed(client, server)


def test_default_base_url_is_the_public_api() -> None:
    client = triostream.AsyncAnthropic(api_key=API_KEY)
    assert client.base_url == "https://api.anthropic.com"


@pytest.mark.parametrize("empty", [None, ""])
def test_no_credentials_raises_missing_credentials(
    monkeypatch: pytest.MonkeyPatch, empty: str | None
) -> None:
    if empty is not None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", empty)
    with pytest.raises(MissingCredentialsError) as info:
        triostream.AsyncAnthropic()
    assert "api_key" in str(info.value)
    assert "ANTHROPIC_API_KEY" in str(info.value)


# --- the request body ---------------------------------------------------------------------

ALL_PARAMS: dict[str, Any] = {
    **PARAMS,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "temperature": 0.5,
    "top_k": 5,
    "top_p": 0.9,
    "stop_sequences": ["\n\nHuman:"],
    "metadata": {"user_id": "u-1"},
    "tools": [
        {
            "name": "get_weather",
            "description": "Weather for a place",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
}


async def test_stream_body_is_the_params_plus_stream_true(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await streamed_request(server, client, **ALL_PARAMS)
    assert request.json == {**ALL_PARAMS, "stream": True}
    await assert_all_closed(client, server)


async def test_create_body_is_the_params(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await created_request(server, client, **ALL_PARAMS)
    body = dict(request.json)
    assert body.pop("stream", False) is False
    assert body == ALL_PARAMS
    await assert_all_closed(client, server)


async def test_extra_body_and_extra_query(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await streamed_request(
        server,
        client,
        extra_body={"max_tokens": 7, "future_param": {"a": [1, None]}},
        extra_query={"beta": "true", "tag": "a b"},
    )
    assert request.json == {
        **PARAMS,
        "stream": True,
        "max_tokens": 7,
        "future_param": {"a": [1, None]},
    }
    assert request.path == "/v1/messages"
    assert httpx.QueryParams(request.query) == httpx.QueryParams({"beta": "true", "tag": "a b"})
    await assert_all_closed(client, server)


async def test_transport_options_are_not_sent_in_the_body(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await streamed_request(
        server,
        client,
        timeout=30.0,
        max_retries=1,
        extra_headers={"x-trace": "1"},
        extra_query={"q": "1"},
        extra_body={},
    )
    assert request.json == {**PARAMS, "stream": True}
    assert request.header("x-trace") == "1"
    await assert_all_closed(client, server)


async def test_none_valued_params_are_dropped(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await streamed_request(
        server, client, temperature=None, system=None, tools=None, metadata=None, top_k=None
    )
    assert request.json == {**PARAMS, "stream": True}
    await assert_all_closed(client, server)


async def test_a_previous_response_content_is_sent_back_as_the_api_json(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.stream(TOOLS), Reply.stream(THINKING), Reply.sse(BASIC))
    tools_message = await stream_once(client)
    thinking_message = await stream_once(client)
    follow_up = [
        {"role": "user", "content": "Weather and time?"},
        {"role": "assistant", "content": tools_message.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "12:00"},
            ],
        },
        {"role": "assistant", "content": thinking_message.content},
        {"role": "user", "content": "Thanks"},
    ]
    await stream_once(client, messages=follow_up)
    sent = server.requests[2].json["messages"]
    assert sent[1]["content"] == [
        {"type": "text", "text": "Checking both."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": WEATHER},
        {
            "type": "tool_use",
            "id": "toolu_2",
            "name": "get_time",
            "input": {
                "timezone": "America/Los_Angeles",
                "format": "24h",
                "nested": {"a": [{"b": None}]},
            },
        },
        {
            "type": "server_tool_use",
            "id": "srvtoolu_1",
            "name": "web_search",
            "input": {"query": "weather SF"},
        },
        TOOLS[-4]["content_block"],  # web_search_tool_result, exactly as it arrived
    ]
    assert sent[3]["content"] == [
        {
            "type": "thinking",
            "thinking": "Let me think about 2+2.",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA",
        },
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
        {"type": "text", "text": "It is 4."},
    ]
    assert sent[2] == follow_up[2]
    await assert_all_closed(client, server)


async def test_a_message_from_create_is_sent_back_whole(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    """Unknown blocks included: what came in goes out unchanged."""
    server.enqueue(Reply.json(MESSAGE_JSON))
    with trio.fail_after(5):
        message = await client.messages.create(**PARAMS)
    messages = [*PARAMS["messages"], {"role": "assistant", "content": message.content}]
    request = await streamed_request(server, client, messages=messages)
    assert request.json["messages"][1]["content"] == MESSAGE_JSON["content"]
    await assert_all_closed(client, server)


async def test_generator_messages_and_content(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    def blocks() -> Iterator[dict[str, Any]]:
        yield {"type": "text", "text": "first"}
        yield {"type": "text", "text": "second"}

    def conversation() -> Iterator[dict[str, Any]]:
        yield {"role": "user", "content": blocks()}
        yield {"role": "assistant", "content": "ok"}
        yield {"role": "user", "content": "go on"}

    def stops() -> Iterator[str]:
        yield "END"

    request = await streamed_request(
        server, client, messages=conversation(), stop_sequences=stops()
    )
    assert request.json["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}],
        },
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "go on"},
    ]
    assert request.json["stop_sequences"] == ["END"]
    await assert_all_closed(client, server)


async def test_unserialisable_params_raise_type_error(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    with pytest.raises(TypeError, match="JSON"):
        await stream_once(client, metadata={"user_id": object()})
    assert not server.requests
    await assert_all_closed(client, server)


# --- http_client ---------------------------------------------------------------------------


def is_closed(http: httpx.AsyncClient) -> bool:
    """Whether an httpx client is closed (a call, so a type checker does not narrow it)."""
    return http.is_closed


async def test_a_given_http_client_is_used_and_not_closed(server: MockServer) -> None:
    seen: list[httpx.Request] = []

    async def on_request(request: httpx.Request) -> None:
        seen.append(request)

    async with httpx.AsyncClient(
        headers={"x-from-user-client": "yes"}, event_hooks={"request": [on_request]}
    ) as http:
        client = triostream.AsyncAnthropic(
            api_key=API_KEY, base_url=server.base_url, http_client=http
        )
        assert client.http_client is http
        request = await streamed_request(server, client)
        assert request.header("x-from-user-client") == "yes"
        assert len(seen) == 1
        await client.aclose()
        assert not is_closed(http)
        async with triostream.AsyncAnthropic(
            api_key=API_KEY, base_url=server.base_url, http_client=http
        ) as again:
            await streamed_request(server, again)
        assert not is_closed(http)
        assert len(seen) == 2
    assert is_closed(http)
    with trio.fail_after(5):
        await server.wait_idle()


async def test_an_owned_http_client_is_closed(server: MockServer) -> None:
    client = triostream.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url)
    await streamed_request(server, client)
    assert not is_closed(client.http_client)
    await client.aclose()
    assert is_closed(client.http_client)
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections[0].closed_by == "client"

    async with triostream.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url) as other:
        await streamed_request(server, other)
    assert other.http_client.is_closed


# --- messages.create (non-streaming) ----------------------------------------------------------


async def test_create_returns_the_message(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.json(MESSAGE_JSON))
    with trio.fail_after(5):
        message = await client.messages.create(**PARAMS)
    assert isinstance(message, Message)
    assert msgspec.json.decode(msgspec.json.encode(message)) == MESSAGE_JSON
    assert message.id == MESSAGE_JSON["id"]
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 34
    text, tool, unknown = message.content
    assert isinstance(text, TextBlock)
    assert text.text == "Hi! Let me look."
    assert isinstance(tool, triostream.ToolUseBlock)
    assert tool.input == WEATHER
    assert unknown.type == "future_block"
    assert msgspec.to_builtins(unknown) == MESSAGE_JSON["content"][2]
    await assert_all_closed(client, server)


@pytest.mark.parametrize(
    ("reply", "cls", "status"),
    [
        (Reply.error(400, message="bad"), BadRequestError, 400),
        (Reply.error(401, message="bad"), AuthenticationError, 401),
        (Reply.error(529, message="bad"), OverloadedError, 529),
        (Reply.error_text(502, "Bad gateway"), InternalServerError, 502),
    ],
    ids=["400", "401", "529", "502-text"],
)
async def test_create_error_statuses_raise(
    server: MockServer,
    client: triostream.AsyncAnthropic,
    reply: Reply,
    cls: type[APIStatusError],
    status: int,
) -> None:
    server.enqueue(reply)
    with trio.fail_after(5), pytest.raises(cls) as info:
        await client.messages.create(**PARAMS, max_retries=0)
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.request_id == "req_0"
    assert info.value.message in ("bad", "Bad gateway")
    assert API_KEY not in repr(info.value)
    await assert_all_closed(client, server)


async def test_create_retries_then_returns(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.error(529, headers={"retry-after-ms": "0"}), Reply.json(MESSAGE_JSON))
    with trio.fail_after(5):
        message = await client.messages.create(**PARAMS)
    assert message.id == MESSAGE_JSON["id"]
    assert len(server.requests) == 2
    await assert_all_closed(client, server)


async def test_create_with_a_body_that_is_not_a_message(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    server.enqueue(Reply.json({"type": "message", "id": 3}))
    with trio.fail_after(5), pytest.raises(triostream.APIResponseValidationError) as info:
        await client.messages.create(**PARAMS)
    assert info.value.request_id == "req_0"
    await assert_all_closed(client, server)


# --- secrets (DESIGN 9) -------------------------------------------------------------------------


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    """No secret in the str, repr, args or formatted traceback of ``exc``."""
    for secret in secrets:
        assert secret not in str(exc)
        assert secret not in repr(exc)
        assert secret not in "".join(traceback.format_exception(exc))
        assert all(secret not in repr(arg) for arg in exc.args)


def test_the_key_is_in_no_repr() -> None:
    client = triostream.AsyncAnthropic(api_key=API_KEY, auth_token=AUTH_TOKEN)
    for text in (repr(client), str(client), repr(client.messages)):
        assert API_KEY not in text
        assert AUTH_TOKEN not in text


async def dead_port() -> int:
    """A loopback port with no listener."""
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def raised_errors(server: MockServer, client: triostream.AsyncAnthropic) -> list[Exception]:
    """Run every kind of failure through ``client``; the exceptions it raised."""
    caught: list[Exception] = []

    async def expect(cls: type[Exception], **params: Any) -> None:
        with trio.fail_after(5), pytest.raises(cls) as info:
            async with client.messages.stream(**{**PARAMS, **params}) as stream:
                await stream.until_done()
        caught.append(info.value)

    server.enqueue(Reply.error(401, message="invalid x-api-key"))
    await expect(AuthenticationError, max_retries=0)
    server.enqueue(Reply.error_text(502, "<html>Bad gateway</html>"))
    await expect(InternalServerError, max_retries=0)
    server.enqueue(
        Reply.stream(
            [
                message_start(),
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ]
        )
    )
    await expect(OverloadedError)
    body = sse_body(text_stream(["Hello", " there"]))
    server.enqueue(Reply.sse(body, disconnect_after=len(body) // 2))
    await expect(IncompleteStreamError)
    server.enqueue(Reply.stream([message_start(), text_delta(4, "x")]))
    await expect(triostream.APIResponseValidationError)
    server.enqueue(Reply.stream(text_stream(["a"]), head_delay=math.inf))
    await expect(APITimeoutError, max_retries=0, timeout=httpx.Timeout(0.05))
    server.enqueue(Reply.stream(text_stream(["a", "b"]), stall_after=2))
    await expect(APITimeoutError, timeout=httpx.Timeout(0.05))
    server.enqueue(Reply.json({"type": "message"}))
    with trio.fail_after(5), pytest.raises(triostream.APIResponseValidationError) as info:
        await client.messages.create(**PARAMS)
    caught.append(info.value)

    refused = triostream.AsyncAnthropic(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{await dead_port()}", max_retries=0
    )
    async with refused:
        with trio.fail_after(5), pytest.raises(APIConnectionError) as conn_info:
            await refused.messages.create(**PARAMS)
        caught.append(conn_info.value)
    return caught


async def test_the_key_is_in_no_exception_and_no_log(
    server: MockServer, client: triostream.AsyncAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.enqueue(Reply.sse(BASIC))
    assert (await stream_once(client)).content
    errors = await raised_errors(server, client)
    assert len(errors) == 9
    for error in errors:
        assert_secret_free(error, API_KEY)
    assert caplog.records, "nothing was logged at DEBUG"
    assert any(record.name.startswith(("httpx", "httpcore")) for record in caplog.records)
    assert API_KEY not in caplog.text
    for record in caplog.records:
        assert API_KEY not in record.getMessage()
        assert API_KEY not in repr(record.args)
    await assert_all_closed(client, server)


async def test_the_auth_token_is_in_no_exception_and_no_log(
    server: MockServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = triostream.AsyncAnthropic(auth_token=AUTH_TOKEN, base_url=server.base_url)
    server.enqueue(Reply.error(401, message="bad token"))
    with trio.fail_after(5), pytest.raises(AuthenticationError) as info:
        await client.messages.create(**PARAMS)
    assert_secret_free(info.value, AUTH_TOKEN)
    assert AUTH_TOKEN not in caplog.text
    assert AUTH_TOKEN not in repr(client)
    await assert_all_closed(client, server)


async def test_the_key_is_sent_only_in_x_api_key(
    server: MockServer, client: triostream.AsyncAnthropic
) -> None:
    request = await streamed_request(server, client, extra_query={"q": "1"})
    holders = [name for name, value in request.headers if API_KEY in value]
    assert holders == ["x-api-key"]
    assert API_KEY not in request.query
    assert API_KEY.encode() not in request.body
    await assert_all_closed(client, server)
