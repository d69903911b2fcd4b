"""The incremental partial-JSON parser: jiter's partial semantics, linear cost, errors."""

from __future__ import annotations

import copy
import json
import random
import sys
import time
import tracemalloc
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiter
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triostream import _partial_json
from triostream._exceptions import APIResponseValidationError
from triostream._partial_json import PartialJSONParser, parse_partial

SRC = Path(__file__).resolve().parents[2] / "src"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def jiter_partial(prefix: str, partial_strings: bool) -> Any:
    """What the official SDK's parser makes of a prefix (None where it raises)."""
    mode: Any = "trailing-strings" if partial_strings else True
    try:
        return jiter.from_json(prefix.encode(), partial_mode=mode)
    except ValueError:
        return None


def same(got: Any, expected: Any) -> bool:
    """Equal, with the same types, key order and float signs (repr tells them apart)."""
    return repr(got) == repr(expected)


# ---------------------------------------------------------------- generated JSON texts


@dataclass(frozen=True)
class Obj:
    """An object as its members in order (duplicate keys allowed)."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Num:
    """A number written exactly as this token."""

    token: str


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "/": "\\/",
}
_WHITESPACE = ["", "", "", " ", "  ", "\n", "\t", "\r\n  "]


def _u_escape(code: int, rnd: random.Random) -> str:
    text = f"\\u{code:04x}"
    return text.upper().replace("\\U", "\\u") if rnd.random() < 0.5 else text


def encode_string(s: str, rnd: random.Random) -> str:
    """A JSON string for ``s`` with randomly chosen escapes."""
    out = ['"']
    for ch in s:
        r = rnd.random()
        if ch in _SHORT_ESCAPES and (r < 0.6 or ch in '"\\\n\r\t\b\f'):
            out.append(_SHORT_ESCAPES[ch])
        elif ch < " " or r < 0.15:
            code = ord(ch)
            if code > 0xFFFF:
                code -= 0x10000
                out.append(_u_escape(0xD800 + (code >> 10), rnd))
                out.append(_u_escape(0xDC00 + (code & 0x3FF), rnd))
            else:
                out.append(_u_escape(code, rnd))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def dump(value: Any, rnd: random.Random) -> str:
    """Serialise with random whitespace around every token and random string escapes."""

    def ws() -> str:
        return rnd.choice(_WHITESPACE)

    if isinstance(value, Obj):
        members = [ws() + encode_string(k, rnd) + ws() + ":" + dump(v, rnd) for k, v in value.pairs]
        return ws() + "{" + (",".join(members) or ws()) + "}" + ws()
    if isinstance(value, list):
        return ws() + "[" + (",".join(dump(v, rnd) for v in value) or ws()) + "]" + ws()
    if isinstance(value, str):
        text = encode_string(value, rnd)
    elif isinstance(value, Num):
        text = value.token
    elif isinstance(value, float):
        text = repr(value)
    else:
        text = json.dumps(value)
    return ws() + text + ws()


keys = st.sampled_from(["a", "b", "", "é", 'q"t', "😀"]) | st.text(max_size=4)
number_tokens = st.from_regex(
    r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | number_tokens.map(Num)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(st.tuples(keys, children), max_size=4).map(lambda p: Obj(tuple(p)))
    ),
    max_leaves=25,
)


def cut(text: str, rnd: random.Random) -> list[str]:
    """``text`` in random pieces (1 to ~25 characters, some single characters)."""
    pieces = []
    pos = 0
    while pos < len(text):
        size = rnd.choice([1, 1, 2, 3, 5, 8, 13, 20, 25])
        pieces.append(text[pos : pos + size])
        pos += size
    return pieces


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, rnd=st.randoms(use_true_random=False))
def test_snapshots_match_jiter_after_every_piece(value: Any, rnd: random.Random) -> None:
    text = dump(value, rnd)
    parser = PartialJSONParser()
    taken: list[tuple[Any, Any]] = []
    fed = 0
    for piece in cut(text, rnd):
        parser.feed(piece)
        fed += len(piece)
        prefix = text[:fed]
        assert parser.length == fed
        assert parser.error is None, prefix
        for partial_strings in (False, True):
            got = parser.snapshot(partial_strings=partial_strings)
            expected = jiter_partial(prefix, partial_strings)
            assert same(got, expected), (prefix, partial_strings, got, expected)
            taken.append((got, copy.deepcopy(got)))
    assert parser.text == text
    assert parser.complete
    final = parser.finish()
    assert same(final, json.loads(text))
    assert parser.finish() is final
    # Nothing handed out earlier has changed since.
    for snapshot, deep_copy in taken:
        assert same(snapshot, deep_copy)


@settings(max_examples=150, deadline=None)
@given(value=json_values, rnd=st.randoms(use_true_random=False))
def test_parse_partial_matches_jiter_on_every_prefix(value: Any, rnd: random.Random) -> None:
    text = dump(value, rnd)
    for end in range(len(text) + 1):
        prefix = text[:end]
        for partial_strings in (False, True):
            got = parse_partial(prefix, partial_strings=partial_strings)
            expected = jiter_partial(prefix, partial_strings)
            assert same(got, expected), (prefix, partial_strings, got, expected)


# ---------------------------------------------------------------- explicit cases

EXAMPLES: list[tuple[str, Any, Any]] = [
    # prefix, snapshot(partial_strings=False), snapshot(partial_strings=True)
    ("", None, None),
    ("   ", None, None),
    ('{"a": "hel', {}, {"a": "hel"}),
    ('{"a": 12', {"a": 12}, {"a": 12}),
    ('{"a": 1.', {}, {}),
    ('{"a": -', {}, {}),
    ('{"a": 1e', {}, {}),
    ('{"a": 1.5e+', {}, {}),
    ('{"a": 1.5e+1', {"a": 15.0}, {"a": 15.0}),
    ('{"a": tr', {}, {}),
    ('{"a', {}, {}),
    ('{"a":', {}, {}),
    ('{"a" ', {}, {}),
    ('{"a": [1, 2', {"a": [1, 2]}, {"a": [1, 2]}),
    ('{"a": "x", "b', {"a": "x"}, {"a": "x"}),
    ('["ab', [], ["ab"]),
    ('["', [], [""]),
    ('"abc', None, "abc"),
    ('"', None, ""),
    ('{"a": "x\\', {}, {"a": "x"}),
    ('{"a": "x\\u00', {}, {"a": "x"}),
    ('{"a": "x\\u00e9', {}, {"a": "xé"}),
    ('["ab\\ud83d', [], ["ab"]),
    ('["ab\\ud83d\\', [], ["ab"]),
    ('["ab\\ud83d\\ude0', [], ["ab"]),
    ('["ab\\ud83d\\ude00', [], ["ab😀"]),
    ('["ab\\ud83d\\ude00"', ["ab😀"], ["ab😀"]),
    ('{"a": {"b": [{}, {"c": nul', {"a": {"b": [{}, {}]}}, {"a": {"b": [{}, {}]}}),
    ('{"a": 1}  x', {"a": 1}, {"a": 1}),
    ("12", 12, 12),
    ("1.", None, None),
    ("-", None, None),
    ("-0", 0, 0),
    ("[-0.0", [-0.0], [-0.0]),
    ("[0", [0], [0]),
    ("[true", [True], [True]),
    ("[nul", [], []),
    ("[[", [[]], [[]]),
    ("[1, [2, 3], ", [1, [2, 3]], [1, [2, 3]]),
    ('{"a":1,"b":2,"a":"x', {"a": 1, "b": 2}, {"a": "x", "b": 2}),
    ('{"a":1,"b":2,"a":[', {"a": [], "b": 2}, {"a": [], "b": 2}),
    ('{"a":1,"b":2,"a":3}', {"a": 3, "b": 2}, {"a": 3, "b": 2}),
    (
        "[123456789012345678901234567890",
        [123456789012345678901234567890],
        [123456789012345678901234567890],
    ),
    ("[1e400", [float("inf")], [float("inf")]),
    ('  {"a"  :  1  ,  "b"  :  [  ]  }  ', {"a": 1, "b": []}, {"a": 1, "b": []}),
]


@pytest.mark.parametrize(("prefix", "plain", "trailing"), EXAMPLES)
def test_examples(prefix: str, plain: Any, trailing: Any) -> None:
    assert same(parse_partial(prefix, partial_strings=False), plain)
    assert same(parse_partial(prefix, partial_strings=True), trailing)
    # The examples are jiter's answers too.
    assert same(jiter_partial(prefix, False), plain)
    assert same(jiter_partial(prefix, True), trailing)
    # Character by character gives the same as in one piece.
    parser = PartialJSONParser()
    for ch in prefix:
        parser.feed(ch)
    assert same(parser.snapshot(partial_strings=False), plain)
    assert same(parser.snapshot(partial_strings=True), trailing)


def test_snapshot_is_cached_until_the_next_feed() -> None:
    parser = PartialJSONParser()
    parser.feed('{"a": [1, 2')
    first = parser.snapshot()
    assert parser.snapshot() is first
    parser.feed("")
    assert parser.snapshot() is first
    parser.feed(", 3")
    assert parser.snapshot() is not first
    assert parser.snapshot() == {"a": [1, 2, 3]}


def test_old_snapshots_never_change() -> None:
    text = '{"a": [1, {"b": "xy\\u00e9z", "c": [[], {}]}, 2], "d": {"e": "long text here"}, "f": 3}'
    parser = PartialJSONParser()
    taken = []
    for ch in text:
        parser.feed(ch)
        for partial_strings in (False, True):
            snap = parser.snapshot(partial_strings=partial_strings)
            taken.append((snap, copy.deepcopy(snap)))
    final = parser.finish()
    assert final == json.loads(text)
    assert final is not parser.snapshot()  # the final value is fresh, not shared
    final["a"].append("mutated")
    for snap, deep_copy in taken:
        assert same(snap, deep_copy)


def test_text_and_length() -> None:
    parser = PartialJSONParser()
    pieces = [f'{{"k{i}": "{i}", ' if i == 0 else f'"k{i}": "{i}", ' for i in range(500)]
    for n, piece in enumerate(pieces, 1):
        parser.feed(piece)
        if n % 97 == 0:
            assert parser.text == "".join(pieces[:n])
            assert parser.snapshot()[f"k{n - 1}"] == str(n - 1)
    parser.feed('"end": null}')
    text = "".join(pieces) + '"end": null}'
    assert parser.text == text
    assert parser.length == len(text)
    assert parser.finish() == json.loads(text)


def test_feed_rejects_bytes() -> None:
    with pytest.raises(TypeError):
        PartialJSONParser().feed(b"{}")  # type: ignore[arg-type]


# ---------------------------------------------------------------- invalid input


def _tool_input_deltas(path: Path) -> list[str]:
    pieces = []
    for line in path.read_text().splitlines():
        if line.startswith("data: "):
            event = json.loads(line[len("data: ") :])
            delta = event.get("delta", {})
            if delta.get("type") == "input_json_delta":
                pieces.append(delta["partial_json"])
    return pieces


def test_recorded_invalid_tool_input() -> None:
    pieces = _tool_input_deltas(FIXTURES / "tool_use_invalid_json_response.txt")
    text = "".join(pieces)
    assert text == '{"location": "Paris", "unit": celsius}'
    parser = PartialJSONParser()
    for piece in pieces:
        parser.feed(piece)
    assert parser.error is not None
    assert "character 30" in parser.error
    assert "'c'" in parser.error
    assert parser.snapshot(partial_strings=False) == {"location": "Paris"}
    assert parser.snapshot(partial_strings=True) == {"location": "Paris"}
    assert not parser.complete
    with pytest.raises(APIResponseValidationError) as info:
        parser.finish()
    assert "character 30" in info.value.message
    assert info.value.body == text


INVALID: list[tuple[str, int]] = [
    # text, offset of the first bad character
    ('{"location": "Paris", "unit": celsius}', 30),
    ('{"a": 1}  x', 10),
    ("[1}", 2),
    ("[1 2]", 3),
    ('{"a":01}', 6),
    ("[tru]", 4),
    ("[1.]", 3),
    ("[1.e5]", 3),
    ("[1e]", 3),
    ("[-x", 2),
    ("[--1]", 2),
    ("[+1]", 1),
    ('{"a" 1}', 5),
    ("{1:2}", 1),
    ("[1,]", 3),
    ('{"a":1,}', 7),
    ("[,", 1),
    ('"\\x"', 2),
    ("[NaN]", 1),
    ("[Infinity]", 1),
    ("[\x0b1]", 1),
    ('{"a": 1\u00a0}', 7),
    ('["\\ud83d"]', 8),
    ('["\\ud83dx"]', 8),
    ('["\\ud83d\\n"]', 9),
    ('["\\ud83d\\ud83d"]', 11),
    ('["\\ude00"]', 5),
    ('["\\u12g4"]', 6),
    ('["a\nb"]', 3),
    ('["a\x00"]', 3),
    ('["a\ud83d"]', 3),
    ("{}{}", 2),
    ("1 2", 2),
    ("truex", 4),
    ('[1, "a"', -1),  # valid prefix, incomplete
]


@pytest.mark.parametrize(("text", "offset"), INVALID)
def test_invalid_input(text: str, offset: int) -> None:
    parser = PartialJSONParser()
    for ch in text:
        parser.feed(ch)
    if offset < 0:
        assert parser.error is None
        with pytest.raises(APIResponseValidationError, match="incomplete") as info:
            parser.finish()
        assert f"character {len(text)}" in info.value.message
        return
    assert parser.error is not None
    assert f"character {offset}" in parser.error
    prefix = text[:offset]
    for partial_strings in (False, True):
        # The snapshot is that of the last valid prefix, which is jiter's answer for it.
        snap = parser.snapshot(partial_strings=partial_strings)
        assert same(snap, parse_partial(prefix, partial_strings=partial_strings))
        assert same(snap, jiter_partial(prefix, partial_strings))
    # More input changes nothing but the text.
    error = parser.error
    before = parser.snapshot()
    parser.feed('"more", 1]}')
    assert parser.error == error
    assert parser.snapshot() is before
    assert parser.text == text + '"more", 1]}'
    with pytest.raises(APIResponseValidationError) as info:
        parser.finish()
    assert f"character {offset}" in info.value.message
    assert info.value.body == parser.text


@pytest.mark.parametrize("text", ["", "  \n", '{"a": ', "[1, 2", '"abc', "1.", "tru"])
def test_finish_on_incomplete_input(text: str) -> None:
    parser = PartialJSONParser()
    parser.feed(text)
    assert parser.error is None
    with pytest.raises(APIResponseValidationError, match=f"incomplete.*character {len(text)}"):
        parser.finish()


def test_huge_integers_are_an_error_not_a_crash() -> None:
    limit = sys.get_int_max_str_digits() or 4300
    parser = PartialJSONParser()
    parser.feed("[" + "7" * (limit + 10) + "]")
    assert parser.error is not None
    assert f"character {limit + 1}" in parser.error
    assert parser.snapshot() == [int("7" * limit)]
    with pytest.raises(APIResponseValidationError):
        parser.finish()


def test_numbers_msgspec_refuses_still_decode() -> None:
    # msgspec refuses doubles out of range and negative integers near the digit limit;
    # jiter and json give inf / the integer, and so do we.
    text = '{"big": 1e999, "neg": -1.5e400, "long": -' + "9" * 4299 + "}"
    parser = PartialJSONParser()
    parser.feed(text)
    assert parser.snapshot() == json.loads(text)
    assert parser.finish() == json.loads(text)


# ---------------------------------------------------------------- deep nesting


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def test_deep_nesting_is_an_error_with_bounded_memory() -> None:
    text = "[" * 100_000
    parser = PartialJSONParser()
    tracemalloc.start()
    try:
        for i in range(0, len(text), 20):
            parser.feed(text[i : i + 20])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parser.error is not None
    assert "max_depth=1000" in parser.error
    assert "character 1000" in parser.error
    assert peak < 600_000  # the text (~100 KB) and 1000 frames, no more
    assert _depth(parser.snapshot()) == 1000
    with pytest.raises(APIResponseValidationError, match="max_depth"):
        parser.finish()


def test_max_depth_is_configurable() -> None:
    parser = PartialJSONParser(max_depth=2)
    parser.feed("[[1]]")
    assert parser.finish() == [[1]]
    parser = PartialJSONParser(max_depth=2)
    parser.feed("[[[1]]]")
    assert parser.error is not None
    assert "character 2" in parser.error
    assert parser.snapshot() == [[]]


def test_deep_valid_nesting_beyond_msgspecs_recursion_limit() -> None:
    depth = 3000
    parser = PartialJSONParser(max_depth=depth + 1)
    parser.feed("[" + "[" * depth + "]" * depth)
    # The completed child is deeper than msgspec can decode: the fallback takes over.
    assert _depth(parser.snapshot()) == depth + 1
    parser.feed(', "x"]')
    snap = parser.snapshot()
    assert snap[1] == "x"
    assert _depth(snap) == depth + 1
    final = parser.finish()
    assert final[1] == "x"
    assert _depth(final) == depth + 1


def test_deep_open_nesting_snapshots_without_recursion() -> None:
    parser = PartialJSONParser(max_depth=10_000)
    for _ in range(4000):
        parser.feed('{"k": [')
    snap = parser.snapshot()
    levels = 0
    while snap:
        snap = snap["k"]
        assert isinstance(snap, list)
        snap = snap[0] if snap else None
        levels += 1
    assert levels == 4000


# ---------------------------------------------------------------- linear cost


def realistic_document(size: int, seed: int = 1) -> str:
    """A tool input of about ``size`` characters: keys, a long escaped string, many rows."""
    rnd = random.Random(seed)
    words = [
        "alpha",
        "beta",
        "délta",
        'quote"d',
        "back\\slash",
        "tab\t",
        "nl\n",
        "emoji 😀",
        "日本",
    ]
    rows: list[dict[str, Any]] = []
    doc = {
        "path": "/tmp/out.txt",
        "content": " ".join(rnd.choice(words) for _ in range(size // 25)),
        "rows": rows,
        "flags": {"dry_run": False, "retries": 3},
    }
    while (missing := size - len(json.dumps(doc, ensure_ascii=False))) > 0:
        for _ in range(max(10, missing // 100)):
            rows.append(
                {
                    "id": len(rows),
                    "name": rnd.choice(words),
                    "score": round(rnd.random() * 100, 3),
                    "tags": ["x", "y"],
                    "ok": rnd.random() < 0.5,
                    "note": None,
                }
            )
    return json.dumps(doc, ensure_ascii=False)


def _feed_time(text: str) -> float:
    pieces = [text[i : i + 20] for i in range(0, len(text), 20)]
    start = time.perf_counter()
    parser = PartialJSONParser()
    for piece in pieces:
        parser.feed(piece)
    parser.finish()
    return time.perf_counter() - start


def test_feeding_is_linear() -> None:
    small = realistic_document(100_000)
    large = realistic_document(1_000_000)
    t_small = min(_feed_time(small) for _ in range(3))
    t_large = min(_feed_time(large) for _ in range(3))
    # 10x the input: ~10x the time; quadratic would be ~100x.
    assert t_large / t_small < 20, (t_small, t_large)


def test_snapshots_decode_each_character_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = 0

    def counting_decode(text: str) -> Any:
        nonlocal decoded
        decoded += len(text)
        return msgspec.json.decode(text)

    counting = types.SimpleNamespace(
        json=types.SimpleNamespace(decode=counting_decode), DecodeError=msgspec.DecodeError
    )
    monkeypatch.setattr(_partial_json, "msgspec", counting)
    text = realistic_document(200_000)
    parser = PartialJSONParser()
    for i in range(0, len(text), 20):
        parser.feed(text[i : i + 20])
        parser.snapshot(partial_strings=i % 40 == 0)
    assert parser.snapshot() == json.loads(text)
    assert parser.finish() == json.loads(text)
    # Each completed member is decoded once (containers a snapshot had started are
    # handed up, not decoded again), plus the single decode in finish().
    assert decoded < 3 * len(text), decoded / len(text)


def test_large_document_snapshots_match_jiter() -> None:
    text = realistic_document(150_000, seed=7)
    parser = PartialJSONParser()
    for n, i in enumerate(range(0, len(text), 20)):
        parser.feed(text[i : i + 20])
        if n % 3 == 0:
            parser.snapshot(partial_strings=n % 2 == 0)
        if n % 401 == 0:
            prefix = text[: i + 20]
            for partial_strings in (False, True):
                assert same(
                    parser.snapshot(partial_strings=partial_strings),
                    jiter_partial(prefix, partial_strings),
                )
        if n % 1000 == 0:
            assert parser.text == text[: i + 20]
    assert parser.finish() == json.loads(text)
