"""The HTTP/1.1 the mock server speaks, written by hand so every byte is ours.

Requests: a request line, header fields and a body framed by Content-Length
or ``Transfer-Encoding: chunked``; anything else is a :class:`BadRequest`.
Responses: status lines and chunk framing. No I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus

__all__ = [
    "CHUNKED_END",
    "CONTINUE",
    "HEAD_END",
    "MAX_BODY",
    "MAX_HEAD",
    "BadRequest",
    "RequestHead",
    "body_length",
    "chunk_header",
    "parse_chunk_size",
    "parse_request_head",
    "reason_phrase",
    "status_line",
]

#: The largest request head (request line and headers) accepted.
MAX_HEAD = 64 * 1024
#: The largest request body accepted.
MAX_BODY = 64 * 1024 * 1024

#: The end of a request head: a blank line, after LF or CRLF line ends.
HEAD_END = re.compile(rb"\n\r?\n")
#: The last chunk and the empty trailer of a chunked body.
CHUNKED_END = b"0\r\n\r\n"
#: The interim response to ``expect: 100-continue``.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_BAD_VALUE_CHAR = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_TARGET_CHAR = re.compile(r"[\x00-\x20\x7f#]")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_PHRASES = {529: "Overloaded"}


class BadRequest(Exception):
    """The request cannot be served: answer ``status`` with ``reason`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A parsed request line and header fields (names lowercased, values as sent)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        """Every value of the header ``name`` (lowercase), in order."""
        return [value for key, value in self.headers if key == name]

    def tokens(self, name: str) -> list[str]:
        """The comma-separated tokens of every ``name`` header, lowercased."""
        return [
            token.strip().lower()
            for value in self.values(name)
            for token in value.split(",")
            if token.strip()
        ]

    @property
    def wants_close(self) -> bool:
        """Whether the client asked for the connection to close after the response."""
        return "close" in self.tokens("connection")

    @property
    def expects_continue(self) -> bool:
        """Whether the client waits for ``100 Continue`` before sending the body."""
        return "100-continue" in self.tokens("expect")


def parse_request_head(raw: bytes) -> RequestHead:
    """Parse a request head that ends with its blank line; :class:`BadRequest` if malformed."""
    lines = raw.decode("latin-1").split("\n")
    lines = [line.removesuffix("\r") for line in lines[:-2]]
    if not lines:
        raise BadRequest(400, "empty request head")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(400, "the request line is not 'METHOD target HTTP/1.1'")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise BadRequest(400, "the method is not a token")
    if version != "HTTP/1.1":
        if _VERSION.fullmatch(version):
            raise BadRequest(505, f"only HTTP/1.1 is served, not {version}")
        raise BadRequest(400, "the request line has no HTTP version")
    if not target.startswith("/") or _BAD_TARGET_CHAR.search(target):
        raise BadRequest(400, "the request target is not an absolute path")
    path, _, query = target.partition("?")

    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise BadRequest(400, "obsolete header line folding")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise BadRequest(400, f"malformed header line {line[:40]!r}")
        value = value.strip(" \t")
        if _BAD_VALUE_CHAR.search(value):
            raise BadRequest(400, f"a control character in the {name} header")
        headers.append((name.lower(), value))

    head = RequestHead(method, path, query, headers)
    if len(head.values("host")) != 1:
        raise BadRequest(400, "an HTTP/1.1 request needs exactly one host header")
    return head


def body_length(head: RequestHead) -> int | None:
    """The request body's length by Content-Length (0 when absent), or None when chunked."""
    codings = head.tokens("transfer-encoding")
    lengths = head.values("content-length")
    if codings:
        if lengths:
            raise BadRequest(400, "both transfer-encoding and content-length")
        if codings != ["chunked"]:
            raise BadRequest(501, "only the chunked transfer-coding is supported")
        return None
    values = {item.strip() for value in lengths for item in value.split(",")}
    if not values:
        return 0
    if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise BadRequest(400, "an invalid content-length")
    length = int(values.pop())
    if length > MAX_BODY:
        raise BadRequest(413, f"the body is over {MAX_BODY} bytes")
    return length


def parse_chunk_size(line: bytes) -> int:
    """The size in a chunk-size line of a chunked request body (extensions ignored)."""
    size = line.split(b";", 1)[0].strip(b" \t")
    if not _CHUNK_SIZE.fullmatch(size):
        raise BadRequest(400, "a malformed chunk size")
    return int(size, 16)


def chunk_header(size: int) -> bytes:
    """The chunk-size line that starts a chunk of ``size`` bytes."""
    return b"%x\r\n" % size


def reason_phrase(status: int) -> str:
    """The reason phrase for ``status`` (``"Overloaded"`` for 529), or ``""``."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _PHRASES.get(status, "")


@cache
def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason phrase>`` with its CRLF."""
    return f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode("latin-1")
