"""AsyncAnthropic: configuration, the connection pool, and the messages resource."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, Self, TypedDict, TypeVar, Unpack, overload

import httpx

from . import _http
from ._exceptions import APIResponseValidationError, MissingCredentialsError
from ._wire import decode_message
from .types._message import Message
from .types._params import MessageCreateParams

if TYPE_CHECKING:
    from ._raw_stream import AsyncStream, Stream
    from ._stream import MessageStreamManager
    from ._sync_stream import SyncMessageStreamManager

__all__ = [
    "Anthropic",
    "AsyncAnthropic",
    "AsyncMessages",
    "ClientConfig",
    "MessageStreamParams",
    "Messages",
]

MESSAGES_PATH = "/v1/messages"


class TransportParams(TypedDict, total=False):
    """Per-call options that are not part of the request body."""

    extra_headers: Mapping[str, str | None] | None
    extra_query: Mapping[str, Any] | None
    extra_body: Mapping[str, Any] | None
    timeout: float | httpx.Timeout | None
    max_retries: int | None


class MessageStreamParams(MessageCreateParams, TransportParams, total=False):
    """Every keyword argument of ``messages.create`` / ``messages.stream``."""


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What a client was configured with (shared by the async and the sync client)."""

    credentials: _http.Credentials
    base_url: str
    max_retries: int
    timeout: float | httpx.Timeout
    idle_timeout: float | None
    default_headers: Mapping[str, str | None]

    @classmethod
    def resolve(
        cls,
        *,
        api_key: str | None,
        auth_token: str | None,
        base_url: str | None,
        max_retries: int,
        timeout: float | httpx.Timeout,
        idle_timeout: float | None,
        default_headers: Mapping[str, str | None] | None,
    ) -> ClientConfig:
        """Fill in from the environment and check; raises MissingCredentialsError."""
        if api_key is None:
            api_key = os.environ.get("ANTHROPIC_API_KEY") or None
        if auth_token is None:
            auth_token = os.environ.get("ANTHROPIC_AUTH_TOKEN") or None
        if api_key is None and auth_token is None:
            raise MissingCredentialsError(
                "no API key: pass api_key=... to the client or set the ANTHROPIC_API_KEY "
                "environment variable (or, for a bearer token, auth_token=... / "
                "ANTHROPIC_AUTH_TOKEN)"
            )
        if base_url is None:
            base_url = os.environ.get("ANTHROPIC_BASE_URL") or _http.DEFAULT_BASE_URL
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError("idle_timeout must be a positive number of seconds, or None")
        return cls(
            credentials=_http.Credentials(api_key, auth_token),
            base_url=base_url.rstrip("/"),
            max_retries=max_retries,
            timeout=timeout,
            idle_timeout=idle_timeout,
            default_headers=dict(default_headers or {}),
        )

    def prepare(
        self, params: Mapping[str, Any], *, stream: bool
    ) -> tuple[str, dict[str, str], bytes, _http.RequestOptions]:
        """Split call arguments into the URL, headers, JSON body and transport options."""
        body: dict[str, Any] = {}
        transport: dict[str, Any] = {}
        for name, value in params.items():
            if name in TransportParams.__annotations__:
                transport[name] = value
            elif value is not None:
                body[name] = _listify(name, value)
        if stream:
            body["stream"] = True
        body.update(transport.get("extra_body") or {})
        headers = _http.build_headers(
            self.credentials, self.default_headers, transport.get("extra_headers"), stream=stream
        )
        max_retries = transport.get("max_retries")
        options = _http.RequestOptions(
            path=MESSAGES_PATH,
            query=transport.get("extra_query"),
            timeout=transport.get("timeout"),
            max_retries=self.max_retries if max_retries is None else max_retries,
            stream=stream,
        )
        return self.base_url + MESSAGES_PATH, headers, _http.encode_body(body), options

    def __repr__(self) -> str:
        return (
            f"ClientConfig(base_url={self.base_url!r}, max_retries={self.max_retries}, "
            f"timeout={self.timeout!r}, idle_timeout={self.idle_timeout!r}, "
            f"credentials={self.credentials!r})"
        )


def _listify(name: str, value: Any) -> Any:
    """Materialise the iterables a request may be given (generators are not JSON)."""
    if name == "messages":
        return [
            {**m, "content": list(m["content"])}
            if isinstance(m, Mapping) and not isinstance(m.get("content"), (str, list))
            else m
            for m in value
        ]
    if name in ("tools", "stop_sequences") or (name == "system" and not isinstance(value, str)):
        return list(value)
    return value


_HttpT = TypeVar("_HttpT", httpx.AsyncClient, httpx.Client)


class _ClientBase(Generic[_HttpT]):
    """What the async and the sync client share: arguments, configuration, the pool."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        auth_token: str | None = None,
        base_url: str | None = None,
        max_retries: int = 2,
        timeout: float | httpx.Timeout = _http.DEFAULT_TIMEOUT,
        idle_timeout: float | None = None,
        default_headers: Mapping[str, str | None] | None = None,
        http_client: _HttpT | None = None,
    ) -> None:
        self._config = ClientConfig.resolve(
            api_key=api_key,
            auth_token=auth_token,
            base_url=base_url,
            max_retries=max_retries,
            timeout=timeout,
            idle_timeout=idle_timeout,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http: _HttpT = http_client or self._new_http_client(timeout)

    def _new_http_client(self, timeout: float | httpx.Timeout) -> _HttpT:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """The API's base URL."""
        return self._config.base_url

    @property
    def idle_timeout(self) -> float | None:
        """Seconds without a content event after which a stream fails with APITimeoutError."""
        return self._config.idle_timeout

    @property
    def http_client(self) -> _HttpT:
        """The httpx client requests go through."""
        return self._http

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._config.base_url!r}, "
            f"max_retries={self._config.max_retries}, credentials=<redacted>)"
        )


class AsyncAnthropic(_ClientBase[httpx.AsyncClient]):
    """The trio client of the Anthropic Messages API.

    ::

        async with triostream.AsyncAnthropic() as client:
            message = await client.messages.create(model=..., max_tokens=..., messages=...)

    Credentials come from ``api_key`` / ``auth_token`` or the environment
    (``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``); ``base_url`` from the
    argument, ``ANTHROPIC_BASE_URL``, or the public API.  ``max_retries``
    applies before a stream's first event; ``timeout`` is httpx's (per read);
    ``idle_timeout`` fails a stream that sends no content event (pings do not
    count) for that many seconds.  With ``http_client`` the given
    ``httpx.AsyncClient`` is used and never closed; otherwise the client owns
    one connection pool, closed by ``aclose()`` or ``async with``.
    """

    def _new_http_client(self, timeout: float | httpx.Timeout) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    @functools.cached_property
    def messages(self) -> AsyncMessages:
        """Create messages, or stream them."""
        return AsyncMessages(self)

    async def aclose(self) -> None:
        """Close the connection pool (unless it was given as ``http_client``)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _open(self, params: Mapping[str, Any], *, stream: bool) -> httpx.Response:
        """POST /v1/messages with retries; the open response of the first success."""
        url, headers, content, options = self._config.prepare(params, stream=stream)
        return await _http.send_with_retries(
            self._http, method="POST", url=url, headers=headers, content=content, options=options
        )


class Anthropic(_ClientBase[httpx.Client]):
    """The synchronous twin of :class:`AsyncAnthropic`, over ``httpx.Client``.

    Same arguments, environment, retries, errors and cleanup guarantees;
    ``with`` (or ``close()``) closes the connection pool it owns.
    """

    def _new_http_client(self, timeout: float | httpx.Timeout) -> httpx.Client:
        return httpx.Client(timeout=timeout, follow_redirects=False)

    @functools.cached_property
    def messages(self) -> Messages:
        """Create messages, or stream them."""
        return Messages(self)

    def close(self) -> None:
        """Close the connection pool (unless it was given as ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open(self, params: Mapping[str, Any], *, stream: bool) -> httpx.Response:
        """POST /v1/messages with retries; the open response of the first success.

        With ``idle_timeout``, a stream's reads wait at most that long, so a
        server that sends nothing at all is caught without a background task.
        """
        url, headers, content, options = self._config.prepare(params, stream=stream)
        idle = self._config.idle_timeout
        if stream and idle is not None:
            options = _with_read_timeout(options, self._http.timeout, idle)
        return _http.sync_send_with_retries(
            self._http, method="POST", url=url, headers=headers, content=content, options=options
        )


def _with_read_timeout(
    options: _http.RequestOptions, default: httpx.Timeout, most: float
) -> _http.RequestOptions:
    timeout = options.timeout if options.timeout is not None else default
    if not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(timeout)
    read = most if timeout.read is None else min(timeout.read, most)
    return dataclasses.replace(
        options,
        timeout=httpx.Timeout(
            connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool
        ),
    )


def _decode_created(raw: bytes, response: httpx.Response) -> Message:
    """The Message of a non-streaming response body."""
    try:
        return decode_message(raw)
    except APIResponseValidationError as exc:
        exc.request_id = _http.response_request_id(response)
        raise


class AsyncMessages:
    """``client.messages``: create a message, or stream one."""

    def __init__(self, client: AsyncAnthropic) -> None:
        self._client = client

    @overload
    async def create(
        self, *, stream: Literal[False] = False, **params: Unpack[MessageStreamParams]
    ) -> Message: ...

    @overload
    async def create(
        self, *, stream: Literal[True], **params: Unpack[MessageStreamParams]
    ) -> AsyncStream: ...

    async def create(
        self, *, stream: bool = False, **params: Unpack[MessageStreamParams]
    ) -> Message | AsyncStream:
        """Create a message.

        Without ``stream``, waits for and returns the whole :class:`Message`.  With
        ``stream=True``, returns an :class:`AsyncStream` of raw events once the
        response headers are in (use it with ``async with`` and ``async for``).
        HTTP errors raise the matching :class:`APIStatusError` after retries.

        Cancellation: cancelling the caller's scope abandons the request and
        closes its connection; nothing is left running.
        """
        from ._raw_stream import AsyncStream

        response = await self._client._open(params, stream=stream)
        if stream:
            return AsyncStream(response)
        try:
            with _http.reading_body():
                raw = await response.aread()
        finally:
            await _http.close_response(response)
        return _decode_created(raw, response)

    def stream(self, **params: Unpack[MessageStreamParams]) -> MessageStreamManager:
        """Stream a message: ``async with client.messages.stream(...) as stream:``.

        The stream's tasks run in a nursery of its own, opened by ``async with``;
        see :func:`triostream.open_message_stream` to run them in yours.
        """
        from ._stream import MessageStreamManager

        return MessageStreamManager(self._client, params)


class Messages:
    """``client.messages`` of the sync client: create a message, or stream one."""

    def __init__(self, client: Anthropic) -> None:
        self._client = client

    @overload
    def create(
        self, *, stream: Literal[False] = False, **params: Unpack[MessageStreamParams]
    ) -> Message: ...

    @overload
    def create(self, *, stream: Literal[True], **params: Unpack[MessageStreamParams]) -> Stream: ...

    def create(
        self, *, stream: bool = False, **params: Unpack[MessageStreamParams]
    ) -> Message | Stream:
        """Create a message (see :meth:`AsyncMessages.create`); ``stream=True`` gives a Stream."""
        from ._raw_stream import Stream

        response = self._client._open(params, stream=stream)
        if stream:
            return Stream(response)
        try:
            with _http.reading_body():
                raw = response.read()
        finally:
            _http.sync_close_response(response)
        return _decode_created(raw, response)

    def stream(self, **params: Unpack[MessageStreamParams]) -> SyncMessageStreamManager:
        """Stream a message: ``with client.messages.stream(...) as stream:``."""
        from ._sync_stream import SyncMessageStreamManager

        return SyncMessageStreamManager(self._client, params)
