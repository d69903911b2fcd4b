"""The ``triostream`` command line: demo, chat and replay, exit codes, and terminal output.

Most runs call ``main(argv)`` in-process (stdout captured, so not a terminal);
a few run ``python -m triostream`` as a user would, one of them under a
pseudo-terminal to see the live rendering, and one interrupted with SIGINT.
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RECORDED, RECORDED_FILES
from triostream import MessageAccumulator
from triostream._cli import main
from triostream.sse import SSEDecoder
from triostream.testing import Reply, ScriptedConversation, ThreadedMockServer, serve_in_thread
from triostream.types import Message, MessageStreamEvent, decode_raw_event

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ScriptedConversation()
FAKE_KEY = "sk-ant-test-cli-0000"
ANSI = re.compile(r"\x1b\[")
SGR = re.compile(r"\x1b\[[0-9;]*m")
CURSOR_UP = re.compile(r"\x1b\[\d+F")
SUMMARY = re.compile(
    r"done: 2 turns, (\d+) output tokens in ([\d.]+) s \(([\d.]+) tokens/s\); "
    r"usage: (\d+) input \+ (\d+) output tokens"
)
DEMO_INPUT = """\
[tool call] get_forecast
  {
    "city": "Lisbon",
    "days": 3,
    "unit": "celsius",
    "fields": [
      "temperature",
      "rain",
      "wind"
    ]
  }
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, base URL or colour settings from the outside; loopback without proxy."""
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_") or name in ("NO_COLOR", "http_proxy", "https_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def scripted() -> Iterator[ThreadedMockServer]:
    with serve_in_thread() as server:
        server.handler = SCRIPT
        yield server


def cli(
    *argv: str, env: dict[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    """``python -m triostream ARGV`` as a subprocess."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    base["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), base.get("PYTHONPATH")]))
    base["PYTHONIOENCODING"] = "utf-8"
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "triostream", *argv],
        env=base,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        **options,
    )


def text_of(message: dict[str, Any]) -> str:
    return "".join(block["text"] for block in message["content"] if block["type"] == "text")


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# --- demo ---------------------------------------------------------------------------------


def check_demo_output(out: str) -> None:
    assert "> I'm spending the next three days in Lisbon." in out
    assert out.count("[thinking]") == 2
    assert "I'll use the get_forecast tool for that." in out
    assert DEMO_INPUT in out
    assert '[tool result] get_forecast\n  {"city": "Lisbon", "highs_c": [21, 23, 19]' in out
    assert "Based on get_forecast: city Lisbon; highs_c 21, 23 and 19;" in out
    assert "stop_reason tool_use" in out
    assert "stop_reason end_turn" in out
    summary = SUMMARY.search(out)
    assert summary, out
    assert out.rstrip("\n").endswith(summary[0])  # the summary line ends the output
    turn_usage = [
        (int(i), int(o)) for i, o in re.findall(r"\[usage\] input (\d+), output (\d+) tokens", out)
    ]
    assert len(turn_usage) == 2
    assert int(summary[4]) == sum(i for i, _ in turn_usage)
    assert int(summary[1]) == int(summary[5]) == sum(o for _, o in turn_usage) > 50
    # tokens/s from the unrounded time: within what rounding the seconds to 0.01 allows
    tokens, seconds, rate = int(summary[1]), float(summary[2]), float(summary[3])
    assert tokens / (seconds + 0.005) - 0.1 <= rate
    if seconds >= 0.01:
        assert rate <= tokens / (seconds - 0.005) + 0.1


def test_demo_end_to_end() -> None:
    done = cli("demo", "--delay", "0")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not ANSI.search(done.stdout)  # not a terminal: plain text
    check_demo_output(done.stdout)


def test_demo_in_process_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--delay", "0"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert not ANSI.search(out)
    check_demo_output(out)


def test_demo_uses_the_api_when_a_key_is_set(
    scripted: ThreadedMockServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With ANTHROPIC_API_KEY the demo talks to the API (here ANTHROPIC_BASE_URL's stand-in)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", scripted.base_url)
    first = len(scripted.requests)
    assert main(["demo", "--delay", "0"]) == 0
    out, err = capsys.readouterr()
    requests = scripted.requests[first:]
    assert len(requests) == 2  # the question, then the tool result
    assert all(r.header("x-api-key") == FAKE_KEY for r in requests)
    assert f"with the API at {scripted.base_url}" in out
    assert err == ""
    check_demo_output(out)


def test_demo_local_ignores_the_key(
    scripted: ThreadedMockServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", scripted.base_url)
    first = len(scripted.requests)
    assert main(["demo", "--local", "--delay", "0"]) == 0
    out, _ = capsys.readouterr()
    assert scripted.requests[first:] == []
    assert "a loopback server; no API key, no network" in out
    check_demo_output(out)


def test_demo_with_an_unreachable_api_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # discard port: refused
    assert main(["demo", "--delay", "0"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("triostream demo: APIConnectionError:")
    assert FAKE_KEY not in err
    assert "Traceback" not in err


def test_demo_color_forced_on_a_non_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--delay", "0", "--color"]) == 0
    out, _ = capsys.readouterr()
    assert SGR.search(out)
    assert not CURSOR_UP.search(out)  # colour, but no cursor movement: stdout is not a TTY
    check_demo_output(SGR.sub("", out))


def run_in_pty(*argv: str, env: dict[str, str]) -> tuple[int, str]:
    """Run ``python -m triostream`` with stdout and stderr on a pseudo-terminal."""
    pty = pytest.importorskip("pty")
    primary, secondary = pty.openpty()
    base = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    base.update(PYTHONPATH=str(ROOT / "src"), TERM="xterm-256color", **env)
    process = subprocess.Popen(
        [sys.executable, "-m", "triostream", *argv],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=base,
    )
    os.close(secondary)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], 30)
            assert ready, "no output from the demo for 30 s"
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            output += data
    finally:
        os.close(primary)
        code = process.wait(timeout=30)
    return code, output.decode()


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_demo_on_a_terminal_renders_live() -> None:
    code, out = run_in_pty("demo", "--delay", "0", env={})
    assert code == 0, out
    assert SGR.search(out)
    # The tool input is redrawn as it arrives: a partial city, then the whole input.
    redraws = CURSOR_UP.findall(out)
    assert len(redraws) > 5
    assert '"city": "L' in out
    plain = CURSOR_UP.sub("", SGR.sub("", out)).replace("\x1b[J", "").replace("\r", "")
    assert DEMO_INPUT.replace("[tool call] get_forecast\n", "") in plain
    assert SUMMARY.search(plain)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_no_color_on_a_terminal_keeps_the_live_redraw_only() -> None:
    code, out = run_in_pty("demo", "--delay", "0", env={"NO_COLOR": "1"})
    assert code == 0, out
    assert not SGR.search(out)
    assert CURSOR_UP.search(out)


# --- chat ---------------------------------------------------------------------------------


def test_chat_against_the_local_server(
    scripted: ThreadedMockServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    first = len(scripted.requests)
    assert main(["chat", "--base-url", scripted.base_url, "What is trio?"]) == 0
    out, err = capsys.readouterr()
    (request,) = scripted.requests[first:]
    assert request.header("x-api-key") == FAKE_KEY
    assert request.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "What is trio?"}],
        "stream": True,
    }
    assert out == text_of(SCRIPT.message_for(request.json)) + "\n"
    assert out.startswith('You asked: "What is trio?".')
    assert err == ""


def test_chat_options(
    scripted: ThreadedMockServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    first = len(scripted.requests)
    argv = ["chat", "--base-url", scripted.base_url, "-m", "claude-haiku-4-5", "--system"]
    argv += ["Be brief.", "--max-tokens", "4", "--temperature", "0.2", "Tell me about nurseries"]
    assert main(argv) == 0
    out, _ = capsys.readouterr()
    (request,) = scripted.requests[first:]
    assert request.json["model"] == "claude-haiku-4-5"
    assert request.json["system"] == "Be brief."
    assert request.json["max_tokens"] == 4
    assert request.json["temperature"] == 0.2
    assert out == 'You asked: "Tell me\n'  # four words: max_tokens cut it


@pytest.mark.parametrize("argv", [[], ["-"]], ids=["no-argument", "dash"])
def test_chat_reads_the_prompt_from_stdin(
    argv: list[str],
    scripted: ThreadedMockServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setattr(sys, "stdin", io.StringIO("  a prompt\nfrom stdin \n"))
    first = len(scripted.requests)
    assert main(["chat", "--base-url", scripted.base_url, *argv]) == 0
    (request,) = scripted.requests[first:]
    assert request.json["messages"] == [{"role": "user", "content": "a prompt\nfrom stdin"}]
    assert capsys.readouterr().out.startswith('You asked: "a prompt from stdin".')


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_chat_without_a_prompt_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    assert main(["chat"]) == 2
    assert "no prompt" in one_line(capsys.readouterr().err)


def test_chat_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "Hello"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err) == (
        "triostream chat: no API key: set the ANTHROPIC_API_KEY environment variable"
    )


def test_chat_without_a_key_as_a_process() -> None:
    done = cli("chat", "Hello")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "ANTHROPIC_API_KEY" in one_line(done.stderr)


def test_chat_api_error(
    scripted: ThreadedMockServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    scripted.enqueue(Reply.error(400, message="messages: roles must alternate"))
    first = len(scripted.requests)
    assert main(["chat", "--base-url", scripted.base_url, "Hello"]) == 1
    out, err = capsys.readouterr()
    (request,) = scripted.requests[first:]
    assert out == ""
    assert one_line(err) == (
        "triostream chat: BadRequestError: messages: roles must alternate "
        f"(status 400, request-id {request.request_id})"
    )


def test_chat_error_mid_stream_keeps_the_text(
    scripted: ThreadedMockServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    events = SCRIPT.events_for(body)[:6]  # up to three words
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    scripted.enqueue(Reply.stream([*events, overloaded]))
    assert main(["chat", "--base-url", scripted.base_url, "Hi"]) == 1
    out, err = capsys.readouterr()
    assert out == 'You asked: "Hi".\n'
    assert one_line(err).startswith("triostream chat: OverloadedError: Overloaded (status 200")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_chat_ctrl_c_stops_cleanly() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    with serve_in_thread() as server:
        # Three words, then nothing: the chat waits until it is interrupted.
        server.enqueue(Reply.stream(SCRIPT.events_for(body), stall_after=6))
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "ANTHROPIC_API_KEY": FAKE_KEY}
        process = subprocess.Popen(
            [sys.executable, "-m", "triostream", "chat", "--base-url", server.base_url, "Hi"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            assert process.stdout is not None
            arrived = b""
            while arrived != b'You asked: "Hi".':  # the stream is live
                chunk = os.read(process.stdout.fileno(), 1024)
                assert chunk, arrived
                arrived += chunk
            process.send_signal(signal.SIGINT)
            rest, err = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
        server.wait_idle(timeout=10)
        assert process.returncode == 130
        assert arrived + rest == b'You asked: "Hi".\n'
        assert one_line(err.decode()) == "triostream chat: interrupted"
        assert [c.closed_by for c in server.connections] == ["client"]


def test_chat_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--max-tokens", "0", "Hello"]) == 2
    assert "--max-tokens: must be at least 1" in capsys.readouterr().err
    assert main(["chat", "--temperature", "3", "Hello"]) == 2
    assert "--temperature: must be between 0 and 1" in capsys.readouterr().err


# --- replay -------------------------------------------------------------------------------


def pipeline(body: bytes) -> tuple[list[MessageStreamEvent], Message | None, Exception | None]:
    """What the sans-IO core makes of a recorded body: events, final message or error."""
    decoder, accumulator = SSEDecoder(), MessageAccumulator()
    events: list[MessageStreamEvent] = []
    for sse in decoder.feed(body) + decoder.close():
        if sse.event != "ping":
            events += accumulator.feed(decode_raw_event(sse.data))
    try:
        return events, accumulator.final_message(), None
    except Exception as exc:
        return events, None, exc


RECORDED_IDS = [path.stem for path in RECORDED_FILES]


@pytest.mark.parametrize("path", RECORDED_FILES, ids=RECORDED_IDS)
def test_replay_prints_the_text(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, message, error = pipeline(path.read_bytes())
    code = main(["replay", str(path)])
    out, err = capsys.readouterr()
    assert not ANSI.search(out)
    text = "".join(e.text for e in events if e.type == "text")  # type: ignore[union-attr]
    assert out.startswith(text)
    if text:
        assert out.startswith(text + "\n")
    if error is None:
        assert message is not None
        assert code == 0
        usage = message.usage
        assert one_line(err) == (
            f"triostream replay: {message.id} ({message.model}): stop_reason "
            f"{message.stop_reason}; usage: {usage.input_tokens} input, "
            f"{usage.output_tokens} output tokens"
        )
    else:
        assert code == 1
        assert one_line(err).startswith(f"triostream replay: {type(error).__name__}: ")


def test_replay_known_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(RECORDED / "basic_response.txt")]) == 0
    assert capsys.readouterr().out == "Hello there!\n"

    assert main(["replay", str(RECORDED / "tool_use_response.txt")]) == 0
    assert capsys.readouterr().out == (
        "I'll check the current weather in Paris for you.\n\n"
        "[tool call] get_weather\n"
        "  {\n"
        '    "location": "Paris"\n'
        "  }\n"
    )

    # max_tokens cut the tool input short: what arrived is shown, half a string is not.
    assert main(["replay", str(RECORDED / "incomplete_partial_json_response.txt")]) == 0
    out, err = capsys.readouterr()
    assert out.endswith(
        '    "filename": "taxes.txt",\n    "lines_of_text": [\n'
        '      "# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS WITH MULTIPLE W-2s",\n'
        '      "",\n      "## INTRODUCTION",\n      ""\n    ]\n  }\n'
    )
    assert "stop_reason max_tokens" in err

    assert main(["replay", str(RECORDED / "refusal_response.txt")]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "stop_reason refusal" in err


def test_replay_invalid_json_exits_1_after_the_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(RECORDED / "tool_use_invalid_json_response.txt")]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("I'll check the current weather in Paris for you.\n")
    line = one_line(err)
    assert line.startswith("triostream replay: APIResponseValidationError: ")
    assert "get_weather" in line


@pytest.mark.parametrize("path", RECORDED_FILES, ids=RECORDED_IDS)
def test_replay_events_as_json_lines(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events, _, error = pipeline(path.read_bytes())
    code = main(["replay", "--events", str(path)])
    out, _ = capsys.readouterr()
    assert code == (0 if error is None else 1)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == [event.type for event in events]
    assert lines[0]["type"] == "message_start"
    assert lines[-1]["type"] == "message_stop"
    assert lines[-1]["message"]["id"] == lines[0]["message"]["id"]
    for line, event in zip(lines, events, strict=True):
        if event.type == "text":
            assert line == {"type": "text", "text": event.text, "snapshot": event.snapshot}  # type: ignore[union-attr]
        if event.type == "input_json":
            assert line["partial_json"] == event.partial_json  # type: ignore[union-attr]
            assert line["snapshot"] == event.snapshot  # type: ignore[union-attr]


@pytest.mark.parametrize("chunking", ["1", "7", "event"])
def test_replay_chunking_does_not_change_the_output(
    chunking: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = RECORDED / "tool_use_response.txt"
    assert main(["replay", str(path)]) == 0
    expected = capsys.readouterr().out
    assert main(["replay", "--chunking", chunking, "--events", str(path)]) == 0
    events = capsys.readouterr().out
    assert main(["replay", "--chunking", chunking, str(path)]) == 0
    assert capsys.readouterr().out == expected
    assert main(["replay", "--events", str(path)]) == 0
    assert capsys.readouterr().out == events


def test_replay_of_a_broken_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = (RECORDED / "basic_response.txt").read_bytes()
    truncated = tmp_path / "truncated.sse"
    truncated.write_bytes(body[: body.index(b'"text":"!"')])  # cut inside the last delta
    assert main(["replay", str(truncated)]) == 1
    out, err = capsys.readouterr()
    assert out == "Hello there\n"
    assert one_line(err).startswith("triostream replay: IncompleteStreamError: ")

    errored = tmp_path / "error.sse"
    errored.write_bytes(
        body[: body.index(b"event: content_block_stop")]
        + b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    assert main(["replay", str(errored)]) == 1
    out, err = capsys.readouterr()
    assert out == "Hello there!\n"
    assert one_line(err).startswith("triostream replay: OverloadedError: Overloaded")


def test_replay_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "missing.sse")]) == 2
    assert one_line(capsys.readouterr().err) == (
        f"triostream replay: cannot read {tmp_path / 'missing.sse'}: No such file or directory"
    )
    assert main(["replay", "--chunking", "0", str(RECORDED / "basic_response.txt")]) == 2
    assert '"event" or a chunk size in bytes' in capsys.readouterr().err


# --- the command itself -------------------------------------------------------------------


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "choose a command: demo, chat or replay" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    from triostream import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"triostream {__version__}\n"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("demo", "chat", "replay"))
    assert "130 interrupted" in " ".join(out.split())
