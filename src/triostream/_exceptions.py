"""The errors triostream raises, and the one place that chooses their class.

::

    Exception
    └── APIError                          anything wrong with talking to the API
        ├── APIStatusError                an error status, or `event: error` in a stream
        │   ├── BadRequestError           400  invalid_request_error
        │   ├── AuthenticationError       401  authentication_error
        │   ├── PermissionDeniedError     403  permission_error
        │   ├── NotFoundError             404  not_found_error
        │   ├── ConflictError             409
        │   ├── RequestTooLargeError      413  request_too_large
        │   ├── UnprocessableEntityError  422
        │   ├── RateLimitError            429  rate_limit_error
        │   └── InternalServerError       >= 500  api_error
        │       └── OverloadedError       529  overloaded_error
        ├── APIConnectionError            the connection failed or broke
        │   ├── IncompleteStreamError     the body ended before `message_stop`
        │   └── APITimeoutError           a timeout (connect, read, idle)
        └── APIResponseValidationError    the server broke the Messages API protocol
    MissingCredentialsError               no API key or token (raised by the client's constructor)

The class of an :class:`APIStatusError` comes from the HTTP status when the
status has a class of its own, else from the error's ``type`` when it is known
(so an ``overloaded_error`` delivered inside a 200 stream is still an
:class:`OverloadedError`), else >= 500 gives :class:`InternalServerError`.

This module is sans-IO: it imports neither trio nor httpx at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "IncompleteStreamError",
    "InternalServerError",
    "MissingCredentialsError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "UnprocessableEntityError",
    "make_status_error",
]


class APIError(Exception):
    """Base of every error triostream raises about the API.

    ``message`` is a human-readable description; ``body`` is the decoded error
    body (or raw text) when there was one.  Neither ever contains credentials.
    """

    message: str
    body: object | None
    request_id: str | None

    def __init__(
        self, message: str, *, body: object | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.body = body
        self.request_id = request_id


class APIStatusError(APIError):
    """The API answered with an error: an HTTP error status, or ``event: error``.

    ``status_code`` is the HTTP status (200 for an error delivered inside a
    stream), ``type`` the error's ``type`` (``"overloaded_error"``, ...) when
    the body had one, ``response`` the ``httpx.Response`` when there was one.
    """

    status_code: int
    type: str | None
    response: httpx.Response | None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        type: str | None = None,
        response: httpx.Response | None = None,
        body: object | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, body=body, request_id=request_id)
        self.status_code = status_code
        self.type = type
        self.response = response

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status_code={self.status_code}, "
            f"type={self.type!r}, request_id={self.request_id!r})"
        )


class BadRequestError(APIStatusError):
    """400: the request was malformed (``invalid_request_error``)."""


class AuthenticationError(APIStatusError):
    """401: the API key or token was missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """403: the credentials may not use this resource."""


class NotFoundError(APIStatusError):
    """404: no such resource (or model)."""


class ConflictError(APIStatusError):
    """409: the request conflicted with the current state."""


class RequestTooLargeError(APIStatusError):
    """413: the request body was too large."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: too many requests or tokens (``rate_limit_error``)."""


class InternalServerError(APIStatusError):
    """>= 500: the API failed (``api_error``)."""


class OverloadedError(InternalServerError):
    """529, or ``overloaded_error`` anywhere: the API is temporarily overloaded."""


class APIConnectionError(APIError):
    """The connection could not be made, or broke."""


class IncompleteStreamError(APIConnectionError):
    """The response body ended before ``message_stop``."""


class APITimeoutError(APIConnectionError):
    """A timeout: connecting, reading, or no content event within ``idle_timeout``."""


class APIResponseValidationError(APIError):
    """The server sent something that is not the Messages API's protocol.

    Bad JSON, an event that is not an event, events out of order, an SSE line
    over the size limit, or tool input that never became valid JSON.
    """


_CLASS_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    529: OverloadedError,
}

_CLASS_BY_ERROR_TYPE: dict[str, type[APIStatusError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "request_too_large": RequestTooLargeError,
    "rate_limit_error": RateLimitError,
    "api_error": InternalServerError,
    "overloaded_error": OverloadedError,
}


def status_error_class(status_code: int, error_type: str | None) -> type[APIStatusError]:
    """The class for an error with this HTTP status and error ``type``.

    A status with a class of its own decides (a 409 is a ConflictError whatever
    its body says); otherwise a known ``type`` does, so that a stream's
    ``event: error`` (status 200) or a 500 saying ``overloaded_error`` gets the
    class of what went wrong; otherwise >= 500 is an InternalServerError.
    """
    cls = _CLASS_BY_STATUS.get(status_code)
    if cls is not None:
        return cls
    if error_type is not None and error_type in _CLASS_BY_ERROR_TYPE:
        return _CLASS_BY_ERROR_TYPE[error_type]
    if status_code >= 500:
        return InternalServerError
    return APIStatusError


def _error_fields(body: object) -> tuple[str | None, str | None]:
    """``(type, message)`` from an API error body ``{"type": "error", "error": {...}}``."""
    if not isinstance(body, dict):
        return None, None
    error: Any = body.get("error", body)
    if not isinstance(error, dict):
        return None, None
    error_type = error.get("type")
    message = error.get("message")
    return (
        error_type if isinstance(error_type, str) else None,
        message if isinstance(message, str) else None,
    )


def make_status_error(
    *,
    status_code: int,
    body: object | None,
    response: httpx.Response | None = None,
    request_id: str | None = None,
) -> APIStatusError:
    """Build the right :class:`APIStatusError` subclass for an error body.

    ``body`` is the decoded JSON error body, the raw text of a body that was
    not JSON, or None.  A non-JSON body still gets the class of its status and
    its text becomes the message.
    """
    error_type, message = _error_fields(body)
    if message is None:
        if isinstance(body, str) and body.strip():
            message = body.strip()
        elif error_type is not None:
            message = error_type
        else:
            message = f"HTTP status {status_code}"
    cls = status_error_class(status_code, error_type)
    return cls(
        message,
        status_code=status_code,
        type=error_type,
        response=response,
        body=body,
        request_id=request_id,
    )


class MissingCredentialsError(Exception):
    """No API key or auth token was given, as an argument or in the environment."""
