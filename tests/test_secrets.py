"""Secrets stay secret (DESIGN promise 9), on every path and with either credential.

``tests/test_client.py`` checks the basics: the client's repr, one run of the main
failures, caplog at DEBUG, and that the key is sent only in ``x-api-key``.  This file
goes wider, for an ``api_key`` and for an ``auth_token`` alike:

- every object a user may print or dump: the client (``repr``, ``str``, ``vars``), its
  ``ClientConfig`` and ``Credentials`` (``repr`` and ``str``), the messages resource,
  the stream managers, the streams themselves (``repr`` and ``vars``), raw streams,
  and the same for the sync twin;
- every failure, through every entry point (``messages.stream``,
  ``open_message_stream``, ``create(stream=True)``, ``create()``, and the sync
  client): each error status (those retried first, so their retries are logged too),
  ``event: error`` of each type, a cut connection, the idle and the read timeout, data
  that is not JSON, JSON that is not an event, events out of order, a tool input that
  never became valid JSON, and a refused connection (retried);
- for each exception: ``str``, ``repr``, ``args``, ``message``, ``body``, every
  exception chained to it (``__cause__``, ``__context__``) and the formatted
  traceback;
- every log record, with the root logger and httpx/httpcore at DEBUG, the
  application logging each failure with ``logger.exception``, each record formatted
  in full (arguments and ``exc_info`` included).
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import triostream
from tests.conftest import API_KEY, PARAMS, RECORDED
from tests.streams import (
    block_start,
    block_stop,
    json_delta,
    message_end,
    message_start,
    text_delta,
    text_stream,
)
from triostream import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncAnthropic,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    IncompleteStreamError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UnprocessableEntityError,
)
from triostream._client import ClientConfig
from triostream._http import Credentials
from triostream.testing import (
    MockServer,
    Reply,
    ThreadedMockServer,
    serve_in_thread,
    sse_body,
)

AUTH_TOKEN = "tok-ant-test-BEARER-51e07d"  # a recognisable fake bearer token
CREDENTIALS = {"api_key": API_KEY, "auth_token": AUTH_TOKEN}
BASIC = (RECORDED / "basic_response.txt").read_bytes()
NO_WAIT = {"retry-after-ms": "0"}
TEXT = text_stream(["Hello", " there"])

app_log = logging.getLogger("secrets_test_app")


@pytest.fixture(params=sorted(CREDENTIALS))
def credential(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(the keyword, the secret): ``api_key`` and ``auth_token`` in turn."""
    kind: str = request.param
    return kind, CREDENTIALS[kind]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG on the root logger, with httpx and httpcore at DEBUG too."""
    caplog.set_level(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("httpx", "httpcore", "triostream")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def assert_no_secret_in_text(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text, text[:400]


def exception_texts(exc: BaseException) -> list[str]:
    """Everything an exception shows: its chain, str, repr, args, message, body, traceback."""
    texts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        texts += [repr(getattr(current, name, None)) for name in ("message", "body", "type")]
        pending += [current.__cause__, current.__context__]
    return texts


def assert_logs_clean(secret: str, caplog: pytest.LogCaptureFixture) -> None:
    """No record, in any form, holds the secret; and there were records to look at."""
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s %(args)s")
    assert any(r.name.startswith(("httpx", "httpcore")) for r in caplog.records)
    for record in caplog.records:
        assert_no_secret_in_text(
            secret, record.getMessage(), repr(record.args), formatter.format(record)
        )
    assert_no_secret_in_text(secret, caplog.text)


# --- what a user may print ---------------------------------------------------------------------


def test_no_object_shows_the_secret(credential: tuple[str, str]) -> None:
    kind, secret = credential
    client = AsyncAnthropic(**{kind: secret})  # type: ignore[arg-type]
    sync = triostream.Anthropic(**{kind: secret})  # type: ignore[arg-type]
    config = ClientConfig.resolve(
        api_key=secret if kind == "api_key" else None,
        auth_token=secret if kind == "auth_token" else None,
        base_url=None,
        max_retries=2,
        timeout=5.0,
        idle_timeout=None,
        default_headers=None,
    )
    credentials = Credentials(
        secret if kind == "api_key" else None, secret if kind == "auth_token" else None
    )
    shown = [
        *(repr(x) for x in (client, sync, client.messages, sync.messages, config, credentials)),
        *(str(x) for x in (client, sync, config, credentials)),
        repr(vars(client)),
        repr(vars(sync)),
        repr(client.messages.stream(**PARAMS)),
        repr(sync.messages.stream(**PARAMS)),
        repr(client.http_client.headers),  # the key goes on each request, not on the pool
    ]
    assert_no_secret_in_text(secret, *shown)
    # The secret is still there to be sent.
    assert credentials.headers() in ({"x-api-key": secret}, {"authorization": f"Bearer {secret}"})
    sync.close()


async def test_no_live_stream_shows_the_secret(
    server: MockServer, credential: tuple[str, str]
) -> None:
    kind, secret = credential
    client = AsyncAnthropic(base_url=server.base_url, **{kind: secret})  # type: ignore[arg-type]
    server.enqueue(Reply.sse(BASIC), Reply.sse(BASIC), Reply.sse(BASIC))
    with trio.fail_after(5):
        async with client.messages.stream(**PARAMS) as stream:
            message = await stream.get_final_message()
            assert_no_secret_in_text(
                secret, repr(stream), repr(vars(stream)), repr(stream.response), repr(message)
            )
        async with (
            trio.open_nursery() as nursery,
            triostream.open_message_stream(nursery, client=client, **PARAMS) as s,
        ):
            assert_no_secret_in_text(secret, repr(s), repr(vars(s)))
        raw = await client.messages.create(stream=True, **PARAMS)
        async with raw:
            events = [event async for event in raw]
            assert_no_secret_in_text(secret, repr(raw), repr(vars(raw)), repr(events))
    await client.aclose()


# --- every failure -------------------------------------------------------------------------------

Entry = Callable[[AsyncAnthropic, dict[str, Any]], Awaitable[object]]


async def via_messages_stream(client: AsyncAnthropic, params: dict[str, Any]) -> object:
    async with client.messages.stream(**{**PARAMS, **params}) as stream:
        return await stream.get_final_message()


async def via_open_message_stream(client: AsyncAnthropic, params: dict[str, Any]) -> object:
    # The stream's failure comes out of get_final_message(), inside the block, so the
    # nursery never sees it (and never wraps it in a group).
    failure: BaseException | None = None
    result: object = None
    async with trio.open_nursery() as nursery:
        try:
            async with triostream.open_message_stream(
                nursery, client=client, **{**PARAMS, **params}
            ) as stream:
                result = await stream.get_final_message()
        except triostream.APIError as exc:
            failure = exc
    if failure is not None:
        raise failure
    return result


async def via_raw_stream(client: AsyncAnthropic, params: dict[str, Any]) -> object:
    stream = await client.messages.create(stream=True, **{**PARAMS, **params})
    async with stream:
        return [event async for event in stream]


async def via_create(client: AsyncAnthropic, params: dict[str, Any]) -> object:
    return await client.messages.create(**{**PARAMS, **params})


ENTRIES: dict[str, Entry] = {
    "messages.stream": via_messages_stream,
    "open_message_stream": via_open_message_stream,
    "create(stream=True)": via_raw_stream,
    "create()": via_create,
}

STATUSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    500: InternalServerError,
    503: InternalServerError,
    529: OverloadedError,
}
RETRIED = {409, 429, 500, 503, 529}


def status_case(status: int) -> tuple[list[Reply], type[Exception], dict[str, Any]]:
    """An error status: (replies, the exception, call parameters); a retried status twice."""
    message = f"request refused ({status})"
    reply = Reply.error(status, message=message, headers=NO_WAIT)
    replies = [reply, reply] if status in RETRIED else [reply]
    return replies, STATUSES[status], {"max_retries": 1}


def stream_cases() -> dict[str, tuple[list[Reply], type[Exception], dict[str, Any]]]:
    """Failures inside a 200 stream: (replies, the exception, call parameters)."""
    cases: dict[str, tuple[list[Reply], type[Exception], dict[str, Any]]] = {}
    for error_type, cls in {
        "overloaded_error": OverloadedError,
        "rate_limit_error": RateLimitError,
        "api_error": InternalServerError,
        "invalid_request_error": BadRequestError,
        "authentication_error": AuthenticationError,
    }.items():
        error = {"type": "error", "error": {"type": error_type, "message": "in-stream failure"}}
        cases[f"event: error {error_type}"] = (
            [Reply.stream([message_start(), error])],
            cls,
            {},
        )
    body = sse_body(TEXT)
    cases["cut"] = ([Reply.sse(body, disconnect_after=len(body) // 2)], IncompleteStreamError, {})
    cases["ends early"] = ([Reply.stream(TEXT[:4])], IncompleteStreamError, {})
    cases["not JSON"] = (
        [Reply.stream([message_start(), b"event: content_block_delta\ndata: {oops\n\n"])],
        APIResponseValidationError,
        {},
    )
    cases["not an event"] = (
        [Reply.stream([message_start(), b"data: [1, 2, 3]\n\n"])],
        APIResponseValidationError,
        {},
    )
    cases["out of order"] = (
        [Reply.stream([message_start(), text_delta(4, "x")])],
        APIResponseValidationError,
        {},
    )
    bad_tool = [
        message_start(),
        block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
        json_delta(0, '{"a": nope'),
        block_stop(0),
        *message_end("tool_use"),
    ]
    cases["tool input never valid"] = ([Reply.stream(bad_tool)], APIResponseValidationError, {})
    cases["read timeout"] = (
        [Reply.stream(TEXT, stall_after=2)],
        APITimeoutError,
        {"timeout": httpx.Timeout(0.05)},
    )
    cases["no answer (timeout, retried)"] = (
        [Reply.stream(TEXT, head_delay=math.inf)] * 2,
        APITimeoutError,
        {"timeout": httpx.Timeout(0.05), "max_retries": 1},
    )
    return cases


STREAM_CASES = stream_cases()
ACCUMULATED = {"out of order", "tool input never valid"}
"""Failures only the accumulator finds (a raw stream passes the events on)."""


@asynccontextmanager
async def client_for(
    server: MockServer, credential: tuple[str, str], **options: Any
) -> AsyncIterator[AsyncAnthropic]:
    kind, secret = credential
    async with AsyncAnthropic(
        base_url=server.base_url,
        **{kind: secret},  # type: ignore[arg-type]
        **options,
    ) as client:
        yield client


async def fail(
    client: AsyncAnthropic, entry: Entry, params: dict[str, Any], cls: type[Exception]
) -> BaseException:
    """Run ``entry``, which must raise exactly ``cls``; log it as an application would."""
    with trio.fail_after(5), pytest.raises(cls) as info:
        await entry(client, params)
    assert type(info.value) is cls
    try:
        raise info.value
    except cls:
        app_log.exception("the call failed")
    app_log.error("the call failed: %r", info.value, exc_info=info.value)
    return info.value


@pytest.mark.parametrize("entry", sorted(ENTRIES))
async def test_no_error_status_shows_the_secret(
    server: MockServer,
    credential: tuple[str, str],
    debug_logs: pytest.LogCaptureFixture,
    entry: str,
) -> None:
    secret = credential[1]
    async with client_for(server, credential) as client:
        for status in STATUSES:
            replies, cls, params = status_case(status)
            server.enqueue(*replies)
            error = await fail(client, ENTRIES[entry], params, cls)
            assert_no_secret_in_text(secret, *exception_texts(error))
    assert server.queued == 0
    assert_logs_clean(secret, debug_logs)


@pytest.mark.parametrize("entry", ["messages.stream", "open_message_stream", "create(stream=True)"])
async def test_no_stream_failure_shows_the_secret(
    server: MockServer,
    credential: tuple[str, str],
    debug_logs: pytest.LogCaptureFixture,
    entry: str,
) -> None:
    secret = credential[1]
    async with client_for(server, credential, idle_timeout=None) as client:
        for name, (replies, cls, params) in STREAM_CASES.items():
            if entry == "create(stream=True)" and name in ACCUMULATED:
                continue  # raw events are not accumulated: nothing checks order or tool input
            server.enqueue(*replies)
            error = await fail(client, ENTRIES[entry], params, cls)
            assert_no_secret_in_text(secret, *exception_texts(error))
    assert_logs_clean(secret, debug_logs)


async def test_no_idle_timeout_shows_the_secret(
    server: MockServer, credential: tuple[str, str], debug_logs: pytest.LogCaptureFixture
) -> None:
    secret = credential[1]
    async with client_for(server, credential, idle_timeout=0.05) as client:
        for entry in ("messages.stream", "open_message_stream"):
            server.enqueue(Reply.stream(TEXT, stall_after=3, pings_while_stalled=0.01))
            error = await fail(client, ENTRIES[entry], {}, APITimeoutError)
            assert_no_secret_in_text(secret, *exception_texts(error))
    assert_logs_clean(secret, debug_logs)


async def test_no_refused_connection_shows_the_secret(
    credential: tuple[str, str],
    debug_logs: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # autojump: the retries' backoff sleeps pass at once (no server here to wait for).
    kind, secret = credential
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    async with AsyncAnthropic(
        base_url=f"http://127.0.0.1:{port}",
        max_retries=2,
        **{kind: secret},  # type: ignore[arg-type]
    ) as client:
        for entry in ENTRIES.values():
            error = await fail(client, entry, {}, APIConnectionError)
            assert_no_secret_in_text(secret, *exception_texts(error))
    assert_logs_clean(secret, debug_logs)


# --- the sync twin -------------------------------------------------------------------------------


@pytest.fixture
def sync_server() -> Iterator[ThreadedMockServer]:
    with serve_in_thread() as threaded:
        yield threaded


def test_the_sync_client_shows_no_secret(
    sync_server: ThreadedMockServer,
    credential: tuple[str, str],
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    kind, secret = credential
    cases: list[tuple[list[Reply], type[Exception]]] = [
        ([Reply.error(401, headers=NO_WAIT)], AuthenticationError),
        ([Reply.error(529, headers=NO_WAIT)] * 2, OverloadedError),
        (STREAM_CASES["event: error overloaded_error"][0], OverloadedError),
        (STREAM_CASES["cut"][0], IncompleteStreamError),
        (STREAM_CASES["not JSON"][0], APIResponseValidationError),
    ]
    with triostream.Anthropic(
        base_url=sync_server.base_url,
        max_retries=1,
        **{kind: secret},  # type: ignore[arg-type]
    ) as client:
        sync_server.enqueue(Reply.sse(BASIC))
        with client.messages.stream(**PARAMS) as stream:
            message = stream.get_final_message()
            assert_no_secret_in_text(secret, repr(stream), repr(vars(stream)), repr(message))
        for replies, cls in cases:
            sync_server.enqueue(*replies)
            with pytest.raises(cls) as info, client.messages.stream(**PARAMS) as stream:
                stream.get_final_message()
            assert type(info.value) is cls
            app_log.error("the sync call failed", exc_info=info.value)
            assert_no_secret_in_text(secret, *exception_texts(info.value))
    assert_logs_clean(secret, debug_logs)
