"""The error tree and the choice of class."""

from __future__ import annotations

import pytest

import triostream
from triostream._exceptions import make_status_error, status_error_class


@pytest.mark.parametrize(
    ("status", "error_type", "cls"),
    [
        (400, "invalid_request_error", triostream.BadRequestError),
        (401, "authentication_error", triostream.AuthenticationError),
        (403, "permission_error", triostream.PermissionDeniedError),
        (404, "not_found_error", triostream.NotFoundError),
        (409, "invalid_request_error", triostream.ConflictError),  # the status decides
        (413, "request_too_large", triostream.RequestTooLargeError),
        (422, "invalid_request_error", triostream.UnprocessableEntityError),
        (429, "rate_limit_error", triostream.RateLimitError),
        (500, "api_error", triostream.InternalServerError),
        (500, "overloaded_error", triostream.OverloadedError),  # no class of its own: the type
        (503, None, triostream.InternalServerError),
        (529, "overloaded_error", triostream.OverloadedError),
        (529, None, triostream.OverloadedError),
        (200, "overloaded_error", triostream.OverloadedError),  # event: error in a stream
        (200, "rate_limit_error", triostream.RateLimitError),
        (200, "brand_new_error", triostream.APIStatusError),
        (418, None, triostream.APIStatusError),
    ],
)
def test_class_by_status_and_type(status: int, error_type: str | None, cls: type) -> None:
    assert status_error_class(status, error_type) is cls


def test_the_tree() -> None:
    assert issubclass(triostream.OverloadedError, triostream.InternalServerError)
    assert issubclass(triostream.InternalServerError, triostream.APIStatusError)
    assert issubclass(triostream.IncompleteStreamError, triostream.APIConnectionError)
    assert issubclass(triostream.APITimeoutError, triostream.APIConnectionError)
    for cls in (
        triostream.APIStatusError,
        triostream.APIConnectionError,
        triostream.APIResponseValidationError,
    ):
        assert issubclass(cls, triostream.APIError)


def test_json_error_body() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    err = make_status_error(status_code=529, body=body, request_id="req_1")
    assert isinstance(err, triostream.OverloadedError)
    assert (err.status_code, err.type, err.message, err.request_id) == (
        529,
        "overloaded_error",
        "Overloaded",
        "req_1",
    )
    assert err.body == body
    assert str(err) == "Overloaded"


def test_non_json_error_body_keeps_its_status_class_and_text() -> None:
    err = make_status_error(status_code=502, body="<html>Bad gateway</html>\n")
    assert type(err) is triostream.InternalServerError
    assert err.message == "<html>Bad gateway</html>"
    assert err.type is None


def test_empty_error_body() -> None:
    err = make_status_error(status_code=404, body=None)
    assert type(err) is triostream.NotFoundError
    assert err.message == "HTTP status 404"
