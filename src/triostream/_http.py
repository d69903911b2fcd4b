"""The only module that talks to httpx: requests, headers, retries and error mapping.

Everything else in triostream sees triostream's own exceptions: the functions
here turn httpx's into the tree of :mod:`triostream._exceptions`, and HTTP error
statuses into the right :class:`APIStatusError` subclass.
"""

from __future__ import annotations

import email.utils
import platform
import random
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import msgspec
import trio

from ._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    IncompleteStreamError,
    make_status_error,
)
from ._version import __version__

__all__ = [
    "DEFAULT_TIMEOUT",
    "Credentials",
    "RequestOptions",
    "attach_response",
    "body_chunks",
    "reading_body",
    "send_with_retries",
    "single_cancelled",
    "sync_body_chunks",
    "sync_close_response",
    "sync_drain",
    "sync_send_with_retries",
]

DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
DEFAULT_TIMEOUT: Final = httpx.Timeout(600.0, connect=5.0)
DEFAULT_ANTHROPIC_VERSION: Final = "2023-06-01"
INITIAL_RETRY_DELAY: Final = 0.5
MAX_RETRY_DELAY: Final = 8.0
MAX_RETRY_AFTER: Final = 60.0
MAX_ERROR_BODY: Final = 1 << 20
_RETRY_STATUSES: Final = frozenset({408, 409, 429})
USER_AGENT: Final = (
    f"triostream/{__version__} httpx/{httpx.__version__} "
    f"{platform.python_implementation()}/{platform.python_version()}"
)

_json_encoder = msgspec.json.Encoder()


class Credentials:
    """The API key or auth token; never shown by ``repr`` or ``str``."""

    __slots__ = ("_api_key", "_auth_token")

    def __init__(self, api_key: str | None, auth_token: str | None) -> None:
        self._api_key = api_key
        self._auth_token = auth_token

    def headers(self) -> dict[str, str]:
        """The authentication headers for a request."""
        if self._api_key is not None:
            return {"x-api-key": self._api_key}
        if self._auth_token is not None:
            return {"authorization": f"Bearer {self._auth_token}"}
        return {}

    def __repr__(self) -> str:
        kind = "api_key" if self._api_key is not None else "auth_token"
        return f"Credentials({kind}=<redacted>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """Everything one request needs besides its JSON body."""

    path: str
    headers: Mapping[str, str | None] = field(default_factory=dict)
    query: Mapping[str, Any] | None = None
    timeout: float | httpx.Timeout | None = None
    max_retries: int = 2
    stream: bool = False


def build_headers(
    credentials: Credentials,
    default_headers: Mapping[str, str | None],
    extra_headers: Mapping[str, str | None] | None,
    *,
    stream: bool,
) -> dict[str, str]:
    """Request headers: auth, version, content type, accept, user agent; then overrides.

    A header whose override value is None is removed.
    """
    headers: dict[str, str | None] = {
        "anthropic-version": DEFAULT_ANTHROPIC_VERSION,
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "user-agent": USER_AGENT,
        **credentials.headers(),
    }
    if stream:
        # Raw SSE bytes: no compression layer between the socket and the decoder.
        headers["accept-encoding"] = "identity"
    for overrides in (default_headers, extra_headers or {}):
        for name, value in overrides.items():
            headers[name.lower()] = value
    return {name: value for name, value in headers.items() if value is not None}


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request body as JSON (Structs from earlier responses are encoded as the API's JSON)."""
    try:
        return _json_encoder.encode(body)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"request parameters are not JSON-serialisable: {exc}") from None


# --- retries ------------------------------------------------------------------------------


def _retry_after(headers: httpx.Headers) -> float | None:
    """The delay the server asks for, from ``retry-after-ms`` or ``retry-after``."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return email.utils.mktime_tz(parsed) - time.time()


def retry_delay(attempt: int, headers: httpx.Headers | None) -> float:
    """Seconds to wait before retry number ``attempt + 1``.

    The server's ``retry-after-ms`` / ``retry-after`` when it is between 0 and 60
    seconds; otherwise exponential backoff from 0.5 s, capped at 8 s, with up to
    25% jitter taken off.
    """
    if headers is not None:
        asked = _retry_after(headers)
        if asked is not None and 0 <= asked <= MAX_RETRY_AFTER:
            return asked
    delay = min(INITIAL_RETRY_DELAY * (2.0**attempt), MAX_RETRY_DELAY)
    return delay * (1.0 - 0.25 * random.random())


def should_retry(response: httpx.Response) -> bool:
    """Whether an error response may be retried (``x-should-retry`` has the last word)."""
    forced = response.headers.get("x-should-retry")
    if forced == "true":
        return True
    if forced == "false":
        return False
    status = response.status_code
    return status in _RETRY_STATUSES or status >= 500


def _connection_error(exc: httpx.HTTPError, *, during_body: bool = False) -> APIError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"timed out: {type(exc).__name__}")
    if during_body and isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return IncompleteStreamError(
            f"the connection broke before the stream ended ({type(exc).__name__}: {exc})"
        )
    return APIConnectionError(f"connection error: {type(exc).__name__}: {exc}")


def _error_from_body(response: httpx.Response, raw: bytes) -> APIStatusError:
    body: object
    try:
        body = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        body = raw.decode("utf-8", "replace")
    return make_status_error(
        status_code=response.status_code,
        body=body,
        response=response,
        request_id=response.headers.get("request-id"),
    )


async def _status_error(response: httpx.Response) -> APIStatusError:
    """Read (a bounded amount of) an error response's body, close it, build the error."""
    raw = b""
    try:
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass
    finally:
        await response.aclose()
    return _error_from_body(response, raw)


def _sync_status_error(response: httpx.Response) -> APIStatusError:
    """The sync twin of :func:`_status_error`."""
    raw = b""
    try:
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) > MAX_ERROR_BODY:
                break
    except httpx.HTTPError:
        pass
    finally:
        response.close()
    return _error_from_body(response, raw)


class _Attempts:
    """One request's retry budget: whether to try again, and after how long."""

    __slots__ = ("attempt", "max_retries")

    def __init__(self, max_retries: int) -> None:
        self.attempt = 0
        self.max_retries = max_retries

    def after_connection_error(self, exc: httpx.HTTPError) -> float:
        """The delay before retrying a failed connection; raises when out of retries."""
        if self.attempt >= self.max_retries:
            raise _connection_error(exc) from None
        delay = retry_delay(self.attempt, None)
        self.attempt += 1
        return delay

    def after_status(self, response: httpx.Response, error: APIStatusError) -> float:
        """The delay before retrying an error status; raises ``error`` when not retried."""
        if self.attempt >= self.max_retries or not should_retry(response):
            raise error
        delay = retry_delay(self.attempt, response.headers)
        self.attempt += 1
        return delay


def _build_request(
    http: httpx.AsyncClient | httpx.Client,
    method: str,
    url: str,
    headers: Mapping[str, str],
    content: bytes,
    options: RequestOptions,
) -> httpx.Request:
    return http.build_request(
        method,
        url,
        headers=headers,
        content=content,
        params=options.query,
        timeout=options.timeout if options.timeout is not None else httpx.USE_CLIENT_DEFAULT,
    )


async def send_with_retries(
    http: httpx.AsyncClient,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    content: bytes,
    options: RequestOptions,
) -> httpx.Response:
    """Send a request, retrying where safe; return the open response of the first success.

    The response's body is not read: the caller owns it and must close it.
    Connection errors, timeouts, 408, 409, 429 and >= 500 are retried up to
    ``options.max_retries`` times (honouring ``x-should-retry`` and the
    server's ``retry-after``); other error statuses raise at once.

    Cancellation: the request and any retry sleep run in the caller's cancel
    scope; when cancelled, nothing is left open.
    """
    attempts = _Attempts(options.max_retries)
    while True:
        request = _build_request(http, method, url, headers, content, options)
        try:
            with single_cancelled():
                response = await http.send(request, stream=True)
        except httpx.HTTPError as exc:
            await trio.sleep(attempts.after_connection_error(exc))
            continue
        if response.is_success:
            return response
        error = await _status_error(response)
        await trio.sleep(attempts.after_status(response, error))


def sync_send_with_retries(
    http: httpx.Client,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    content: bytes,
    options: RequestOptions,
) -> httpx.Response:
    """The sync twin of :func:`send_with_retries` (sleeps with ``time.sleep``)."""
    attempts = _Attempts(options.max_retries)
    while True:
        request = _build_request(http, method, url, headers, content, options)
        try:
            response = http.send(request, stream=True)
        except httpx.HTTPError as exc:
            time.sleep(attempts.after_connection_error(exc))
            continue
        if response.is_success:
            return response
        error = _sync_status_error(response)
        time.sleep(attempts.after_status(response, error))


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The response body as it arrives, undecoded when there is no content encoding."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return response.aiter_raw()
    return response.aiter_bytes()


def sync_body_chunks(response: httpx.Response) -> Iterator[bytes]:
    """The sync twin of :func:`body_chunks`."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return response.iter_raw()
    return response.iter_bytes()


@contextmanager
def reading_body() -> Iterator[None]:
    """Translate httpx errors raised while a body is read into triostream's."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise _connection_error(exc, during_body=True) from None


def attach_response(error: BaseException, response: httpx.Response) -> BaseException:
    """Give a triostream error the response it came with (request id, ``.response``)."""
    if isinstance(error, APIError) and error.request_id is None:
        error.request_id = response_request_id(response)
    if isinstance(error, APIStatusError) and error.response is None:
        error.response = response
    return error


def response_request_id(response: httpx.Response) -> str | None:
    """The ``request-id`` header of a response, if any."""
    value: str | None = response.headers.get("request-id")
    return value


async def close_response(
    response: httpx.Response, chunks: AsyncIterator[bytes] | None = None, *, deadline: float = 5.0
) -> None:
    """Close a response (and its body iterator) on every path: shielded, bounded in time."""
    with trio.CancelScope(shield=True), trio.move_on_after(deadline):
        try:
            await response.aclose()
        except httpx.HTTPError:
            pass
        if chunks is not None:
            # httpx's body iterator is a chain of async generators (httpx's, then
            # httpcore's), and aclose() on the outer one leaves the inner ones suspended for
            # the GC to finalise with a ResourceWarning.  With the connection closed, one
            # more step fails at the bottom, and that error ends every generator in the chain.
            try:
                async for _ in chunks:
                    pass
            except (httpx.HTTPError, httpx.StreamError):
                pass
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()


def sync_close_response(response: httpx.Response) -> None:
    """Close a response (sync), ignoring transport errors while closing."""
    try:
        response.close()
    except httpx.HTTPError:
        pass


def sync_drain(response: httpx.Response, chunks: Iterator[bytes], seconds: float) -> None:
    """Read what is left of a body (the chunked terminator) so the connection can be reused.

    Each read waits at most ``seconds`` (httpcore reads the request's timeout
    extension at every read), and the whole drain stops after ``seconds``.
    """
    timeouts = response.request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        timeouts["read"] = seconds
    deadline = time.monotonic() + seconds
    try:
        for _ in chunks:
            if time.monotonic() > deadline:
                break
    except httpx.HTTPError:
        pass


@contextmanager
def single_cancelled() -> Iterator[None]:
    """Let a group made only of ``Cancelled`` out as one ``Cancelled``.

    With the caller's scope cancelled too, a nursery passes its tasks' ``Cancelled``
    on as a group instead of absorbing them: ours, ``nursery.start``'s, and trio's
    own in ``open_tcp_stream`` (under httpcore's connect).  The caller must see
    trio's plain ``Cancelled``, never such a group.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        cancelled, rest = group.split(trio.Cancelled)
        if rest is not None or cancelled is None:
            raise
        first: BaseException = cancelled
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None
