"""Incremental, linear-time parsing of a JSON text that arrives in pieces.

A tool call streams its ``input`` as ``input_json_delta`` pieces of a few
characters each, and the whole input can be megabytes.  Re-parsing the growing
buffer after every piece (what the official SDK does) costs O(n^2).  Here:

* :meth:`PartialJSONParser.feed` runs a state machine over the *new*
  characters only, so feeding costs O(total size).  Runs of string content,
  digits and whitespace are skipped with compiled regexes, not char by char.
  Nothing is decoded while feeding: the scanner only records where values end.
* :meth:`PartialJSONParser.snapshot` builds the best value of the prefix so
  far when asked.  Completed members are decoded by msgspec straight from the
  text, once, and kept; a snapshot copies only the containers still open on
  the current path, so a snapshot handed out never changes afterwards.
* :meth:`PartialJSONParser.finish` decodes the complete text once with
  :func:`msgspec.json.decode`.

Snapshot semantics follow jiter's ``partial_mode`` (the official SDK's
parser): an open string counts only with ``partial_strings=True`` (without a
trailing incomplete escape or a high surrogate still waiting for its pair), a
number counts once it is valid as it stands (``12`` yes, ``1.``/``-``/``1e``
no), a partly received literal or key does not count, and a key whose value
has not started is left out.  Deliberate differences from jiter, for inputs
that are not valid JSON anyway: ``NaN``/``Infinity`` are errors here, and
after an error the snapshot stays at the last valid prefix.  An integer part
with more digits than :func:`sys.get_int_max_str_digits` allows (4300 by
default) is an error too: jiter, :mod:`json` and msgspec cannot convert such an
integer either (for simplicity the limit also applies before a fraction).
Lone surrogate escapes (``"\\ud83d"``) and raw surrogate code points are
errors, as in jiter and msgspec.

This module is sans-IO: it imports neither trio nor httpx.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from typing import Any, Final

import msgspec

from ._exceptions import APIResponseValidationError

__all__ = ["PartialJSONParser", "parse_partial"]

# Scanner states.
_VALUE: Final = 0  # a value must come next: top level, after ':' or after ',' in an array
_ARRAY_FIRST: Final = 1  # just after '[': a value or ']'
_OBJECT_FIRST: Final = 2  # just after '{': a key or '}'
_OBJECT_KEY: Final = 3  # after ',' in an object: a key
_COLON: Final = 4  # after a key: ':'
_AFTER: Final = 5  # after a value inside a container: ',' or the closing bracket
_DONE: Final = 6  # after the top-level value: whitespace only
_STRING: Final = 7  # inside a string
_ESCAPE: Final = 8  # after a backslash in a string
_HEX: Final = 9  # inside the four hex digits of a \u escape
_LOW_BACKSLASH: Final = 10  # after a high surrogate escape: its pair's '\'
_LOW_U: Final = 11  # ... then its 'u'
_NUMBER: Final = 12
_LITERAL: Final = 13

_IN_STRING: Final = frozenset({_STRING, _ESCAPE, _HEX, _LOW_BACKSLASH, _LOW_U})

# Number sub-states: what the number so far ends with.
_N_START: Final = 0  # nothing yet
_N_MINUS: Final = 1  # "-"
_N_ZERO: Final = 2  # a leading "0"
_N_INT: Final = 3  # integer digits
_N_DOT: Final = 4  # "."
_N_FRAC: Final = 5  # fraction digits
_N_E: Final = 6  # "e"
_N_EXP_SIGN: Final = 7  # "e+" / "e-"
_N_EXP: Final = 8  # exponent digits
_N_COMPLETE: Final = frozenset({_N_ZERO, _N_INT, _N_FRAC, _N_EXP})

_WS: Final = " \t\n\r"
_DIGITS: Final = "0123456789"
_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")
_LITERALS: Final = {"t": "true", "f": "false", "n": "null"}
_LITERAL_VALUES: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}

_WS_RUN: Final = re.compile(r"[ \t\n\r]*")
_DIGIT_RUN: Final = re.compile(r"[0-9]*")
# What ends a run of plain string content; raw surrogate code points cannot be
# encoded as UTF-8 and are rejected.
_STRING_STOP: Final = re.compile('["\\\\\x00-\x1f\ud800-\udfff]')
_NUMBER_TOKEN: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
# A character that could continue a number token (so the fast path cannot decide).
_NUMBER_CHARS: Final = frozenset(".eE+-0123456789")
# How many entries of the piece list are joined into one chunk at a time.
_COMPACT_EVERY: Final = 64


class _Unset:
    """Marker type for "no value" where None is a JSON value."""

    __slots__ = ()


_MISSING: Final = _Unset()


class _Frame:
    """One open container on the scanner's stack, and what of it is decoded.

    ``[mat_pos, done_pos)`` is the text of completed members not yet decoded
    into ``obj``; when ``after_member`` it starts with the ``,`` that follows
    the last decoded member.
    """

    __slots__ = (
        "after_member",
        "done_pos",
        "is_object",
        "key",
        "key_end",
        "key_start",
        "mat_pos",
        "obj",
    )

    def __init__(self, is_object: bool, pos: int) -> None:
        self.is_object = is_object
        self.mat_pos = pos
        self.done_pos = pos
        self.after_member = False
        self.obj: Any = None  # the decoded list/dict, created at the first snapshot
        self.key_start = 0  # text range of the current key, quotes included
        self.key_end = 0
        self.key: Any = _MISSING  # that key decoded, once needed


def _char(c: str) -> str:
    """A character for an error message."""
    return repr(c) if c.isprintable() else f"U+{ord(c):04X}"


def _number(token: str) -> int | float:
    """A JSON number token msgspec refused: a float out of range, or a very long integer."""
    if "." in token or "e" in token or "E" in token:
        return float(token)
    return int(token)


_TOKEN: Final = re.compile(
    r'[ \t\n\r]*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([\[{])|([\]}])|(:)|(,)'
    r"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)|(true|false|null))",
    re.DOTALL,
)
# What the iterative decoder expects next.
_D_VALUE: Final = 0
_D_VALUE_OR_CLOSE: Final = 1
_D_KEY: Final = 2
_D_KEY_OR_CLOSE: Final = 3
_D_COLON: Final = 4
_D_AFTER: Final = 5
_D_END: Final = 6


def _decode_iteratively(text: str) -> Any:
    """Decode a complete JSON text without recursion (slow; for what msgspec refuses).

    msgspec recurses (it stops near 1000 levels) and refuses numbers out of the
    double range; the scanner accepts both, as jiter and :mod:`json` do.
    Raises ValueError (or msgspec.DecodeError for a bad string) if ``text`` is
    not exactly one JSON value.
    """
    stack: list[list[Any]] = []  # [container, its pending key]
    root: Any = None
    expect = _D_VALUE
    pos = 0
    while True:
        m = _TOKEN.match(text, pos)
        if m is None:
            if expect == _D_END and text[pos:].strip(_WS) == "":
                return root
            raise ValueError(f"invalid JSON at character {pos}")
        pos = m.end()
        string, opening, closing, colon, comma, number, literal = m.groups()
        if closing is not None:
            if expect not in (_D_AFTER, _D_VALUE_OR_CLOSE, _D_KEY_OR_CLOSE) or (
                isinstance(stack[-1][0], dict) != (closing == "}")
            ):
                raise ValueError(f"unexpected {closing!r} at character {pos - 1}")
            stack.pop()
            expect = _D_AFTER if stack else _D_END
            continue
        if comma is not None or colon is not None:
            if comma is not None and expect == _D_AFTER:
                expect = _D_KEY if isinstance(stack[-1][0], dict) else _D_VALUE
            elif colon is not None and expect == _D_COLON:
                expect = _D_VALUE
            else:
                raise ValueError(f"unexpected {m.group().strip(_WS)!r} at character {pos - 1}")
            continue
        if string is not None and expect in (_D_KEY, _D_KEY_OR_CLOSE):
            stack[-1][1] = msgspec.json.decode(string)
            expect = _D_COLON
            continue
        if expect not in (_D_VALUE, _D_VALUE_OR_CLOSE):
            raise ValueError(f"unexpected value at character {m.start()}")
        value: Any
        if opening is not None:
            value = {} if opening == "{" else []
        elif string is not None:
            value = msgspec.json.decode(string)
        elif number is not None:
            try:
                value = msgspec.json.decode(number)
            except msgspec.DecodeError:
                value = _number(number)
        else:
            value = _LITERAL_VALUES[literal]
        if stack:
            top = stack[-1]
            if isinstance(top[0], dict):
                top[0][top[1]] = value
            else:
                top[0].append(value)
        else:
            root = value
        if opening is not None:
            stack.append([value, None])
            expect = _D_KEY_OR_CLOSE if opening == "{" else _D_VALUE_OR_CLOSE
        else:
            expect = _D_AFTER if stack else _D_END


def _decode(text: str) -> Any:
    """Decode a JSON text the scanner has validated: msgspec, or the iterative fallback."""
    try:
        return msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return _decode_iteratively(text)


class PartialJSONParser:
    """Incremental, linear-time parser of a JSON text that arrives in pieces.

    :meth:`feed` the pieces as they arrive; :meth:`snapshot` gives the best
    value of what has arrived (cached until the next :meth:`feed`);
    :meth:`finish` gives the complete value.  Feeding never raises on bad
    JSON: the first problem is recorded in :attr:`error` and later pieces are
    only stored.  Containers nested deeper than ``max_depth`` are an error.
    """

    def __init__(self, *, max_depth: int = 1000) -> None:
        if max_depth < 0:
            raise ValueError(f"max_depth must be >= 0, not {max_depth}")
        self._max_depth = max_depth
        max_digits = sys.get_int_max_str_digits()
        self._max_int_digits = max_digits if max_digits > 0 else sys.maxsize
        # The text: chunks with their start offsets; the last _loose are raw pieces.
        self._chunks: list[str] = []
        self._starts: list[int] = []
        self._loose = 0
        self._length = 0
        self._text: str | None = None
        # Scanner.
        self._state = _VALUE
        self._stack: list[_Frame] = []
        self._error: str | None = None
        self._error_pos = -1
        self._root_start = 0
        self._root_end = -1  # where the top-level value ended, once it has
        self._root_value: Any = _MISSING
        self._value_start = 0  # start of the current scalar (string quote, number, literal)
        self._in_key = False
        self._escape_start = 0  # where the current incomplete escape begins
        self._hex = ""
        self._want_low = False  # a high surrogate escape awaits its low half
        self._nstate = _N_START
        self._negative = False
        self._literal = ""
        self._literal_matched = 0
        # The current string's content, decoded up to _string_pos, for snapshots.
        self._string_parts: list[str] = []
        self._string_pos = 0
        # Results.
        self._snapshots: list[Any] = [_MISSING, _MISSING]
        self._final: Any = _MISSING

    # ------------------------------------------------------------------ text

    @property
    def text(self) -> str:
        """Everything fed so far (joined when asked, cached until the next feed)."""
        text = self._text
        if text is None:
            text = "".join(self._chunks)
            self._text = text
            if len(self._chunks) > 1:
                self._chunks = [text]
                self._starts = [0]
                self._loose = 0
        return text

    @property
    def length(self) -> int:
        """The number of characters fed so far."""
        return self._length

    @property
    def error(self) -> str | None:
        """Where and why the input stopped being a valid JSON prefix, or None."""
        return self._error

    @property
    def complete(self) -> bool:
        """Whether the text so far is exactly one complete, valid JSON value."""
        if self._error is not None:
            return False
        if self._state == _DONE:
            return True
        return self._state == _NUMBER and not self._stack and self._nstate in _N_COMPLETE

    def _slice(self, start: int, stop: int) -> str:
        """``text[start:stop]`` without joining the whole text."""
        if self._text is not None:
            return self._text[start:stop]
        chunks = self._chunks
        starts = self._starts
        k = bisect_right(starts, start) - 1
        chunk = chunks[k]
        offset = starts[k]
        if stop <= offset + len(chunk):
            return chunk[start - offset : stop - offset]
        parts = [chunk[start - offset :]]
        k += 1
        while True:
            chunk = chunks[k]
            offset = starts[k]
            if stop <= offset + len(chunk):
                parts.append(chunk[: stop - offset])
                return "".join(parts)
            parts.append(chunk)
            k += 1

    # ------------------------------------------------------------------ feeding

    def feed(self, piece: str) -> None:
        """Take the next piece of the text.  Never raises on bad JSON (see :attr:`error`)."""
        if not isinstance(piece, str):
            raise TypeError(f"feed() takes str, not {type(piece).__name__}")
        if not piece:
            return
        base = self._length
        self._chunks.append(piece)
        self._starts.append(base)
        self._loose += 1
        if self._loose >= _COMPACT_EVERY:
            self._compact()
        self._length = base + len(piece)
        self._text = None
        self._final = _MISSING
        if self._error is None:
            self._snapshots = [_MISSING, _MISSING]
            self._scan(piece, base)

    def _compact(self) -> None:
        """Join the loose pieces at the end into one chunk (keeps memory and bisects small)."""
        first = len(self._chunks) - self._loose
        joined = "".join(self._chunks[first:])
        del self._chunks[first:]
        del self._starts[first + 1 :]
        self._chunks.append(joined)
        self._loose = 0

    def _fail(self, pos: int, reason: str) -> None:
        """Record the first error; the scanner state stays as it was before ``pos``."""
        self._error = f"{reason} at character {pos}"
        self._error_pos = pos

    def _unexpected(self, pos: int, c: str, expected: str) -> None:
        self._fail(pos, f"unexpected {_char(c)} (expected {expected})")

    def _scan(self, s: str, base: int) -> None:
        """Run the state machine over the new piece ``s``, which starts at offset ``base``."""
        n = len(s)
        i = 0
        st = self._state
        stack = self._stack
        while i < n:
            if st == _STRING:
                m = _STRING_STOP.search(s, i)
                if m is None:
                    break
                j = m.start()
                c = s[j]
                if c == '"':
                    i = j + 1
                    if self._in_key:
                        frame = stack[-1]
                        frame.key_start = self._value_start
                        frame.key_end = base + i
                        frame.key = _MISSING
                        st = _COLON
                    elif stack:
                        stack[-1].done_pos = base + i
                        st = _AFTER
                    else:
                        self._root_end = base + i
                        st = _DONE
                elif c == "\\":
                    self._escape_start = base + j
                    i = j + 1
                    st = _ESCAPE
                else:
                    self._state = st
                    kind = "a raw surrogate" if c >= "\ud800" else "a control character"
                    self._fail(base + j, f"{kind} ({_char(c)}) inside a string")
                    return
                continue
            c = s[i]
            if c in _WS and st <= _DONE:
                m = _WS_RUN.match(s, i)
                assert m is not None
                i = m.end()
                continue
            if st == _AFTER:
                frame = stack[-1]
                if c == ",":
                    i += 1
                    st = _OBJECT_KEY if frame.is_object else _VALUE
                elif c == ("}" if frame.is_object else "]"):
                    i += 1
                    st = self._close(base + i)
                else:
                    self._state = st
                    closer = "'}'" if frame.is_object else "']'"
                    self._unexpected(base + i, c, f"',' or {closer}")
                    return
            elif st in (_VALUE, _ARRAY_FIRST):
                if c == '"':
                    if not stack:
                        self._root_start = base + i
                    self._value_start = base + i
                    self._in_key = False
                    self._string_parts = []
                    i += 1
                    self._string_pos = base + i
                    st = _STRING
                elif c == "{" or c == "[":
                    if len(stack) >= self._max_depth:
                        self._state = st
                        self._fail(base + i, f"nesting deeper than max_depth={self._max_depth}")
                        return
                    if not stack:
                        self._root_start = base + i
                    i += 1
                    if c == "{":
                        stack.append(_Frame(True, base + i))
                        st = _OBJECT_FIRST
                    else:
                        stack.append(_Frame(False, base + i))
                        st = _ARRAY_FIRST
                elif c in "-0123456789":
                    if not stack:
                        self._root_start = base + i
                    self._value_start = base + i
                    m = _NUMBER_TOKEN.match(s, i)
                    if m is not None:
                        j = m.end()
                        if j < n and s[j] not in _NUMBER_CHARS and j - i <= self._max_int_digits:
                            i = j
                            if stack:
                                stack[-1].done_pos = base + i
                                st = _AFTER
                            else:
                                self._root_end = base + i
                                st = _DONE
                            continue
                    self._nstate = _N_START
                    self._state = _NUMBER
                    i = self._scan_number(s, i, base)
                    st = self._state
                    if self._error is not None:
                        return
                elif c == "]" and st == _ARRAY_FIRST:
                    i += 1
                    st = self._close(base + i)
                elif c in "tfn":
                    if not stack:
                        self._root_start = base + i
                    self._value_start = base + i
                    word = _LITERALS[c]
                    if s.startswith(word, i):
                        i += len(word)
                        if stack:
                            stack[-1].done_pos = base + i
                            st = _AFTER
                        else:
                            self._root_end = base + i
                            st = _DONE
                    else:
                        self._literal = word
                        self._literal_matched = 0
                        self._state = _LITERAL
                        i = self._scan_literal(s, i, base)
                        st = self._state
                        if self._error is not None:
                            return
                else:
                    self._state = st
                    self._unexpected(base + i, c, "a value" if st == _VALUE else "a value or ']'")
                    return
            elif st == _COLON:
                if c != ":":
                    self._state = st
                    self._unexpected(base + i, c, "':'")
                    return
                i += 1
                st = _VALUE
            elif st in (_OBJECT_KEY, _OBJECT_FIRST):
                if c == '"':
                    self._value_start = base + i
                    self._in_key = True
                    i += 1
                    st = _STRING
                elif c == "}" and st == _OBJECT_FIRST:
                    i += 1
                    st = self._close(base + i)
                else:
                    self._state = st
                    expected = "a string key" if st == _OBJECT_KEY else "a string key or '}'"
                    self._unexpected(base + i, c, expected)
                    return
            elif st == _NUMBER:
                self._state = st
                i = self._scan_number(s, i, base)
                st = self._state
                if self._error is not None:
                    return
            elif st == _LITERAL:
                self._state = st
                i = self._scan_literal(s, i, base)
                st = self._state
                if self._error is not None:
                    return
            elif st == _DONE:
                self._state = st
                self._unexpected(base + i, c, "nothing after the JSON value")
                return
            else:  # inside an escape sequence
                self._state = st
                if not self._scan_escape(c, base + i):
                    return
                i += 1
                st = self._state
        self._state = st

    def _close(self, end: int) -> int:
        """Pop the container whose closing bracket ends at ``end``; the next state.

        If a snapshot decoded part of it, finish decoding it and hand it to
        the parent (so its text is never decoded twice).
        """
        stack = self._stack
        frame = stack.pop()
        obj = self._materialise(frame) if frame.obj is not None else None
        if stack:
            parent = stack[-1]
            if obj is not None and parent.obj is not None and parent.mat_pos == parent.done_pos:
                if parent.is_object:
                    parent.obj[self._key(parent)] = obj
                else:
                    parent.obj.append(obj)
                parent.mat_pos = end
                parent.after_member = True
            parent.done_pos = end
            return _AFTER
        self._root_end = end
        if obj is not None:
            self._root_value = obj
        return _DONE

    def _end_scalar(self, end: int) -> None:
        """A number or literal ended at ``end``."""
        if self._stack:
            self._stack[-1].done_pos = end
            self._state = _AFTER
        else:
            self._root_end = end
            self._state = _DONE

    def _scan_number(self, s: str, i: int, base: int) -> int:
        """Continue a number from ``s[i]``; returns where scanning stopped."""
        n = len(s)
        ns = self._nstate
        while i < n:
            c = s[i]
            if c in _DIGITS:
                if ns in (_N_INT, _N_FRAC, _N_EXP):
                    m = _DIGIT_RUN.match(s, i)
                    assert m is not None
                    i = m.end()
                    if ns == _N_INT:
                        first_digit = self._value_start + self._negative
                        if base + i - first_digit > self._max_int_digits:
                            self._nstate = ns
                            self._fail(
                                first_digit + self._max_int_digits,
                                f"integer with more than {self._max_int_digits} digits",
                            )
                            return i
                    continue
                if ns in (_N_START, _N_MINUS):
                    if ns == _N_START:
                        self._negative = False
                    ns = _N_ZERO if c == "0" else _N_INT
                elif ns == _N_DOT:
                    ns = _N_FRAC
                elif ns in (_N_E, _N_EXP_SIGN):
                    ns = _N_EXP
                else:  # _N_ZERO
                    self._nstate = ns
                    self._fail(base + i, "a digit after a leading zero")
                    return i
                i += 1
            elif ns == _N_START:  # the caller saw '-'
                self._negative = True
                ns = _N_MINUS
                i += 1
            elif c == "." and (ns in (_N_ZERO, _N_INT)):
                ns = _N_DOT
                i += 1
            elif (c == "e" or c == "E") and (ns in (_N_ZERO, _N_INT, _N_FRAC)):
                ns = _N_E
                i += 1
            elif (c == "+" or c == "-") and ns == _N_E:
                ns = _N_EXP_SIGN
                i += 1
            elif ns in _N_COMPLETE:
                self._nstate = ns
                self._end_scalar(base + i)
                return i
            else:
                self._nstate = ns
                after = {_N_MINUS: "'-'", _N_DOT: "'.'"}.get(ns, "an exponent marker")
                self._unexpected(base + i, c, f"a digit after {after}")
                return i
        self._nstate = ns
        return i

    def _scan_literal(self, s: str, i: int, base: int) -> int:
        """Continue ``true``/``false``/``null`` from ``s[i]``; returns where scanning stopped."""
        word = self._literal
        k = self._literal_matched
        n = len(s)
        while i < n and k < len(word):
            if s[i] != word[k]:
                self._literal_matched = k
                self._unexpected(base + i, s[i], f"{word!r}")
                return i
            i += 1
            k += 1
        self._literal_matched = k
        if k == len(word):
            self._end_scalar(base + i)
        return i

    def _scan_escape(self, c: str, pos: int) -> bool:
        """Take one character of an escape sequence; False on error."""
        st = self._state
        if st == _ESCAPE:
            if c == "u":
                self._hex = ""
                self._state = _HEX
            elif c in '"\\/bfnrt':
                self._state = _STRING
            else:
                self._unexpected(pos, c, "an escape character")
                return False
        elif st == _HEX:
            if c not in _HEX_DIGITS:
                self._unexpected(pos, c, "a hex digit")
                return False
            count = len(self._hex) + 1
            if self._want_low:
                if (count == 1 and c not in "dD") or (count == 2 and c not in "cdefCDEF"):
                    self._fail(pos, "a high surrogate escape not followed by a low surrogate")
                    return False
            elif count == 2 and self._hex in "dD" and c in "cdefCDEF":
                self._fail(pos, "a low surrogate escape without a high surrogate before it")
                return False
            hex_digits = self._hex + c
            self._hex = hex_digits
            if count == 4:
                if self._want_low:
                    self._want_low = False
                    self._state = _STRING
                elif hex_digits[0] in "dD" and hex_digits[1] in "89abAB":
                    self._want_low = True
                    self._state = _LOW_BACKSLASH
                else:
                    self._state = _STRING
        elif st == _LOW_BACKSLASH:
            if c != "\\":
                self._fail(pos, "a high surrogate escape not followed by a low surrogate")
                return False
            self._state = _LOW_U
        else:  # _LOW_U
            if c != "u":
                self._fail(pos, "a high surrogate escape not followed by a low surrogate")
                return False
            self._hex = ""
            self._state = _HEX
        return True

    # ------------------------------------------------------------------ values

    def _valid_end(self) -> int:
        """The length of the valid prefix."""
        return self._length if self._error is None else self._error_pos

    def _key(self, frame: _Frame) -> Any:
        """The decoded current key of an object frame."""
        if frame.key is _MISSING:
            frame.key = msgspec.json.decode(self._slice(frame.key_start, frame.key_end))
        return frame.key

    def _materialise(self, frame: _Frame) -> Any:
        """Decode the frame's completed members not decoded yet; its obj."""
        obj = frame.obj
        if obj is None:
            obj = frame.obj = {} if frame.is_object else []
        if frame.done_pos > frame.mat_pos:
            raw = self._slice(frame.mat_pos, frame.done_pos)
            if frame.after_member:
                raw = raw.lstrip(_WS)[1:]  # the ',' after the last decoded member
            if frame.is_object:
                obj.update(_decode("{" + raw + "}"))
            else:
                obj.extend(_decode("[" + raw + "]"))
            frame.mat_pos = frame.done_pos
            frame.after_member = True
        return obj

    def _partial_string(self) -> str:
        """The current string's content so far, without an incomplete escape."""
        end = self._valid_end() if self._state == _STRING else self._escape_start
        parts = self._string_parts
        if end > self._string_pos:
            parts.append(msgspec.json.decode('"' + self._slice(self._string_pos, end) + '"'))
            self._string_pos = end
        if len(parts) == 1:
            return parts[0]
        joined = "".join(parts)
        self._string_parts = [joined]
        return joined

    def _pending(self, partial_strings: bool) -> Any:
        """The value of the scalar being scanned, or _MISSING if it does not count yet."""
        st = self._state
        if st == _NUMBER:
            if self._nstate in _N_COMPLETE:
                return _decode(self._slice(self._value_start, self._valid_end()))
            return _MISSING
        if st in _IN_STRING and partial_strings and not self._in_key:
            return self._partial_string()
        return _MISSING

    def _root(self) -> Any:
        """The complete top-level value."""
        if self._root_value is _MISSING:
            self._root_value = _decode(self._slice(self._root_start, self._root_end))
        return self._root_value

    def snapshot(self, *, partial_strings: bool = True) -> Any:
        """The best value of what has arrived; None before any value has started.

        With ``partial_strings`` an open string counts with what it has so far.
        Cached until the next :meth:`feed`.  A returned snapshot never changes
        afterwards: the containers still open are copies; completed values
        inside are shared between snapshots (don't mutate them).  After an
        error it is the value of the last valid prefix.
        """
        index = 1 if partial_strings else 0
        cached = self._snapshots[index]
        if cached is not _MISSING:
            return cached
        value: Any
        if self._root_end >= 0:
            value = self._root()
        else:
            value = self._pending(partial_strings)
            for frame in reversed(self._stack):
                copy = self._materialise(frame).copy()
                if value is not _MISSING:
                    if frame.is_object:
                        copy[self._key(frame)] = value
                    else:
                        copy.append(value)
                value = copy
            if value is _MISSING:
                value = None
        self._snapshots[index] = value
        return value

    def _where(self) -> str:
        """Where an incomplete text stopped, for error messages."""
        st = self._state
        if not self._stack and st == _VALUE:
            return "before any value"
        if st in _IN_STRING:
            return "inside an object key" if self._in_key else "inside a string"
        if st == _NUMBER:
            return "inside a number"
        if st == _LITERAL:
            return f"inside {self._literal!r}"
        return f"inside {'an object' if self._stack[-1].is_object else 'an array'}"

    def finish(self) -> Any:
        """The complete value, decoded once from the whole text (cached).

        Raises :class:`~triostream.APIResponseValidationError` (``body`` = the
        text) if the text is not exactly one valid JSON value.
        """
        if self._final is not _MISSING:
            return self._final
        text = self.text
        if self._error is not None:
            raise APIResponseValidationError(f"invalid JSON: {self._error}", body=text)
        if not self.complete:
            raise APIResponseValidationError(
                f"incomplete JSON: the text ends at character {self._length} {self._where()}",
                body=text,
            )
        try:
            value = msgspec.json.decode(text)
        except (msgspec.DecodeError, RecursionError):
            try:
                value = _decode_iteratively(text)
            except (ValueError, msgspec.DecodeError) as exc:  # the scanner accepted it: a bug
                raise APIResponseValidationError(
                    f"JSON could not be decoded: {exc}", body=text
                ) from None
        self._final = value
        return value


def parse_partial(text: str, *, partial_strings: bool = True) -> Any:
    """Best-effort value of a JSON prefix (one-shot; see :meth:`PartialJSONParser.snapshot`)."""
    parser = PartialJSONParser()
    parser.feed(text)
    return parser.snapshot(partial_strings=partial_strings)
