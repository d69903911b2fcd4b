"""The cancellation sweep: stop a stream at every point of its life, and check nothing is left.

Two ways to reach every point:

- **after the k-th event**, for every k: the consumer cancels the scope around the
  stream (its nursery and its ``async with`` block) when it has received k events,
  or calls ``aclose()`` then;
- **at the k-th scheduling step**, for every k: a trio instrument counts the steps
  of the consumer's task and of the stream's tasks (``after_task_step``) and cancels
  the scope right after the k-th, the way a deadline expiring in the run loop would.
  This reaches the points no event marks: connecting, waiting for the headers,
  reading an error body and the retry sleep, starting the tasks, the drain after
  ``message_stop``, the close.  Steps are counted rather than checkpoints because a
  step ends at a checkpoint that actually switched tasks: the only places where a
  cancellation can land.  The sweep stops at the first k the run does not reach.

After every run: the caller's ``Cancelled`` came out of the block as itself (never
an ExceptionGroup, never a triostream error) and the scope caught it (or, requested
during the stream's last, shielded steps, it found no checkpoint left and the
stream just ended), no task of the stream is left (none in its nursery, none
anywhere), the pool has no active connection and the server's open connections are
exactly the pool's idle ones; then the NEXT stream on the same client completes.
One client serves every run of a test; at the end, once it is closed, every
connection the server saw is closed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

import triostream
from tests.conftest import API_KEY, PARAMS
from tests.faults import (
    ENTRIES,
    HELLO,
    STREAMS,
    TALLY,
    Entry,
    expect,
    library_tasks,
    pool_activity,
)
from triostream import AsyncAnthropic, AsyncMessageStream, IncompleteStreamError
from triostream.testing import Chunking, MockServer, RecordedRequest, Reply

NO_WAIT = {"retry-after-ms": "0"}
MAX_STEPS = 5000
"""A bound on the step sweep (a basic stream takes a few dozen steps)."""

MakeClient = Callable[..., AsyncAnthropic]
Consumer = Callable[[AsyncMessageStream, trio.CancelScope], Awaitable[None]]
"""Consumes a stream; may cancel the scope around it (given as the second argument)."""
Problem = tuple[str, str]
"""(what went wrong, the run it went wrong in)."""


@pytest.fixture(params=ENTRIES)
def entry(request: pytest.FixtureRequest) -> Entry:
    """Each entry point: ``open_message_stream`` (our nursery) and ``messages.stream``."""
    value: Entry = request.param
    return value


@pytest.fixture
async def make_client(server: MockServer) -> AsyncIterator[MakeClient]:
    """Makes the one client of a test (closed at the end even when the test fails)."""
    made: list[AsyncAnthropic] = []

    def make(**options: Any) -> AsyncAnthropic:
        client = AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def is_stream_task(task: trio.lowlevel.Task) -> bool:
    """A task triostream started for a stream (the test server's tasks aside)."""
    return task.name.startswith("triostream.") and not task.name.startswith("triostream.testing")


class CancelAtStep(trio.abc.Instrument):
    """Cancels ``scope`` right after the ``k``-th step of ``consumer`` or a stream task."""

    def __init__(self, scope: trio.CancelScope, k: int, consumer: trio.lowlevel.Task) -> None:
        self.scope = scope
        self.k = k
        self.consumer = consumer
        self.steps = 0
        self.fired = False

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        """Count the step; cancel at the k-th."""
        if task is self.consumer or is_stream_task(task):
            self.steps += 1
            if self.steps == self.k:
                self.fired = True
                self.scope.cancel()


async def settle(server: MockServer, client: AsyncAnthropic) -> None:
    """Wait until the server's open connections are exactly the pool's idle ones.

    A dropped connection is closed by the client at once; the server notices it
    when its task next runs.  ``wait_all_tasks_blocked`` returns once every task is
    blocked and no I/O is ready, so the loop ends as soon as the server has caught up.
    """
    pool: Any = client.http_client._transport._pool  # type: ignore[attr-defined]
    with trio.fail_after(5):
        while server.open_connections != sum(1 for c in pool.connections if c.is_idle()):
            await trio.testing.wait_all_tasks_blocked()


class Script:
    """The server's handler: the replies for the next requests, in order.

    Unlike the server's own queue, it can be reset: a run cancelled before its
    request went out must not leave its replies to the next run.
    """

    def __init__(self, server: MockServer) -> None:
        self.replies: deque[Reply] = deque()
        server.handler = self

    def __call__(self, request: RecordedRequest) -> Reply:
        """The next reply (an empty script is a bug in the test: the server stops)."""
        return self.replies.popleft()

    def set(self, *replies: Reply) -> None:
        """Replace whatever is left with ``replies``."""
        self.replies.clear()
        self.replies.extend(replies)


async def next_stream_works(
    script: Script, client: AsyncAnthropic, label: str, *, keep_alive: bool = True
) -> None:
    """A fresh stream on the same client completes with the right text.

    Without ``keep_alive`` the server closes the connection after it, so the next run
    starts by connecting (and its cancellation can land in the connect).
    """
    script.set(Reply.sse(HELLO, close_connection=not keep_alive))
    with trio.fail_after(5):
        async with client.messages.stream(**PARAMS) as stream:
            text = await stream.get_final_text()
    assert text == "Hello there!", label
    assert library_tasks() == [], label


class Phase:
    """Where the consumer's task is: opening, streaming, leaving, after."""

    def __init__(self) -> None:
        self.now = "opening"


async def open_and_consume(
    client: AsyncAnthropic,
    entry: Entry,
    scope: trio.CancelScope,
    phase: Phase,
    consume: Consumer,
    escaped: list[BaseException],
    leftover: list[trio.lowlevel.Task],
) -> None:
    """Open a stream through ``entry``, run ``consume`` on it; record what escaped."""
    if entry == "open_message_stream":
        async with trio.open_nursery() as nursery:
            try:
                async with triostream.open_message_stream(
                    nursery, client=client, **PARAMS
                ) as stream:
                    phase.now = "streaming"
                    await consume(stream, scope)
                    phase.now = "leaving"
            except BaseException as exc:
                escaped.append(exc)
                raise
            finally:
                leftover.extend(nursery.child_tasks)
            phase.now = "after"
    else:
        try:
            async with client.messages.stream(**PARAMS) as stream:
                phase.now = "streaming"
                await consume(stream, scope)
                phase.now = "leaving"
        except BaseException as exc:
            escaped.append(exc)
            raise
        phase.now = "after"


async def cancelled_run(
    server: MockServer,
    script: Script,
    client: AsyncAnthropic,
    entry: Entry,
    consume: Consumer,
    label: str,
    *,
    step: int | None = None,
    keep_alive: bool = True,
) -> tuple[bool, str, Problem | None]:
    """One run whose scope is cancelled by ``consume`` or at scheduling step ``step``.

    Returns whether the cancellation was reached, the phase it landed in, and a
    problem (something other than the caller's ``Cancelled`` came out of the block),
    after asserting everything else the module docstring lists.
    """
    escaped: list[BaseException] = []
    leftover: list[trio.lowlevel.Task] = []
    phase = Phase()
    instrument: CancelAtStep | None = None
    with trio.fail_after(10):
        try:
            with trio.CancelScope() as scope:
                if step is not None:
                    instrument = CancelAtStep(scope, step, trio.lowlevel.current_task())
                    trio.lowlevel.add_instrument(instrument)
                try:
                    await open_and_consume(client, entry, scope, phase, consume, escaped, leftover)
                finally:
                    if instrument is not None:
                        trio.lowlevel.remove_instrument(instrument)
        except BaseException as exc:
            raise AssertionError(f"{label}: {exc!r} escaped the cancel scope") from exc
    reached = scope.cancelled_caught if instrument is None else instrument.fired
    problem = None
    if not all(type(exc) is trio.Cancelled for exc in escaped):
        # Recorded, not raised at once, so the sweep goes on and reports every point.
        problem = (f"in {phase.now}: {' / '.join(map(describe, escaped))}", label)
    if not scope.cancelled_caught:
        # Not reached, or requested so late (in the shielded close, say) that no
        # checkpoint was left in the scope: either way the stream ended normally.
        assert escaped == [], f"{label}: {escaped!r}"
        assert phase.now == "after", label
    elif escaped:
        assert phase.now in ("opening", "streaming", "leaving"), label
    assert leftover == [], f"{label}: tasks left in the stream's nursery: {leftover}"
    assert library_tasks() == [], label
    assert pool_activity(client) == [], label
    await settle(server, client)
    where = phase.now if scope.cancelled_caught else "done (too late to deliver)"
    await next_stream_works(script, client, label, keep_alive=keep_alive)
    return reached, where, problem


def describe(exc: BaseException) -> str:
    """An exception, and what a group holds."""
    if isinstance(exc, BaseExceptionGroup):
        inner = ", ".join(type(e).__name__ for e in exc.exceptions)
        return f"{type(exc).__name__}[{inner}]"
    return repr(exc)


def assert_no_problems(problems: list[Problem]) -> None:
    """Fail with every problem a sweep found, grouped by what went wrong."""
    if problems:
        kinds: dict[str, list[str]] = {}
        for kind, label in problems:
            kinds.setdefault(kind, []).append(label)
        report = [f"{len(v)}x {k}; first: {v[0]}" for k, v in kinds.items()]
        raise AssertionError(f"{len(problems)} runs went wrong:\n" + "\n".join(report))


async def finish_and_check(client: AsyncAnthropic, server: MockServer) -> None:
    """Close the client; every connection the server saw must then be closed."""
    await client.aclose()
    with trio.fail_after(5):
        await server.wait_idle()
    assert server.connections
    assert all(record.closed_at is not None for record in server.connections)


# --- cancel (or aclose) after the k-th item ------------------------------------------------

WAYS = ["async for", "text_stream", "subscribe", "aclose"]


def items_of(stream: AsyncMessageStream, way: str) -> Any:
    """What the consumer ``way`` iterates."""
    if way == "text_stream":
        return stream.text_stream
    if way == "subscribe":
        return stream.subscribe()
    return stream


def stop_after(k: int, way: str, ended: list[str]) -> Consumer:
    """A consumer that stops the stream when it has received ``k`` items.

    It cancels the scope around the stream (then checkpoints, so the Cancelled is
    delivered even while received events keep coming without one), or, for
    ``"aclose"``, closes the stream and reads on: what was already handed to the log,
    then ``trio.ClosedResourceError``.  ``ended`` gets how the iteration ended.
    """

    async def consume(stream: AsyncMessageStream, scope: trio.CancelScope) -> None:
        count = 0
        try:
            async for _ in items_of(stream, way):
                count += 1
                if count != k:
                    continue
                if way == "aclose":
                    await stream.aclose()
                else:
                    scope.cancel()
                    await trio.lowlevel.checkpoint()
                    raise AssertionError("a checkpoint after cancel() did not raise Cancelled")
        except trio.ClosedResourceError:
            ended.append("ClosedResourceError")
            return
        ended.append("end")

    return consume


def item_count(name: str, way: str) -> int:
    """How many items the consumer ``way`` receives from the whole stream ``name``."""
    expected = expect(STREAMS[name], ended=True, cut=IncompleteStreamError)
    if way == "text_stream":
        return expected.event_types.count("TextEvent")
    return len(expected.event_types)


async def sweep_items(
    server: MockServer, make_client: MakeClient, names: list[str], ways: list[str]
) -> None:
    client = make_client(max_retries=0)
    script = Script(server)
    problems: list[Problem] = []
    run = 0
    for name in names:
        for way in ways:
            total = item_count(name, way)
            for k in range(1, total + 2):
                entry = ENTRIES[run % len(ENTRIES)]
                run += 1
                script.set(Reply.sse(STREAMS[name]))
                label = f"{name}: {way} after item {k}/{total} via {entry}"
                ended: list[str] = []
                reached, where, problem = await cancelled_run(
                    server, script, client, entry, stop_after(k, way, ended), label
                )
                if problem:
                    problems.append(problem)
                if way == "aclose":
                    assert not reached, label
                    # Closed before the end: the reader ends with ClosedResourceError; a
                    # stream that had completed (or k past the end) ends normally.
                    assert ended in (["ClosedResourceError"], ["end"]), label
                    if k > total:
                        assert ended == ["end"], label
                    outcome = f"aclose: iteration ended with {ended[0]}"
                else:
                    assert reached == (k <= total), label
                    assert ended == ([] if reached else ["end"]), label
                    outcome = f"cancelled while {where}" if reached else "completed"
                TALLY.record("stop after the k-th item", way, outcome)
    await finish_and_check(client, server)
    assert_no_problems(problems)


async def test_stop_after_every_item_of_three_streams(
    server: MockServer, make_client: MakeClient
) -> None:
    await sweep_items(
        server, make_client, ["basic_response", "thinking", "tool_use_response"], WAYS
    )


@pytest.mark.slow
async def test_stop_after_every_item_of_every_stream(
    server: MockServer, make_client: MakeClient
) -> None:
    await sweep_items(server, make_client, sorted(STREAMS), WAYS)


# --- cancel at the k-th scheduling step ----------------------------------------------------


async def read_all(stream: AsyncMessageStream, scope: trio.CancelScope) -> None:
    """Consume every event (the instrument does the cancelling)."""
    async for _ in stream:
        pass


async def sweep_steps(
    server: MockServer,
    make_client: MakeClient,
    name: str,
    entry: Entry,
    first: Reply | None = None,
    chunking: Chunking = "event",
    connection: str = "pooled",
) -> None:
    client = make_client(max_retries=1)
    script = Script(server)
    body = STREAMS[name]
    fault = "after an error status" if first is not None else "healthy stream"
    fault += f", {connection} connection"
    problems: list[Problem] = []
    fresh = connection == "fresh"
    for k in range(1, MAX_STEPS + 1):
        replies = [Reply.sse(body, chunking=chunking)]
        script.set(*([first] if first is not None else []), *replies)
        label = f"{name} (first: {first!r}, {connection} connection) cancelled at step {k}"
        label += f" via {entry}"
        reached, where, problem = await cancelled_run(
            server, script, client, entry, read_all, label, step=k, keep_alive=not fresh
        )
        if problem:
            problems.append(problem)
        if not reached:
            break
        TALLY.record("cancel at the k-th step", fault, f"cancelled while {where}")
    else:
        raise AssertionError(f"{name}: the stream took more than {MAX_STEPS} steps")
    assert k > 10, f"the sweep ended at step {k}: is the instrument counting?"
    TALLY.record("cancel at the k-th step", None, "completed (past the last step)")
    await finish_and_check(client, server)
    assert_no_problems(problems)


CONNECTIONS = ["fresh", "pooled"]
"""Each run connects anew (the cancellation can land in the connect), or reuses one."""


@pytest.mark.parametrize("connection", CONNECTIONS)
async def test_cancel_at_every_step_of_a_stream(
    server: MockServer, make_client: MakeClient, entry: Entry, connection: str
) -> None:
    await sweep_steps(server, make_client, "basic_response", entry, connection=connection)


@pytest.mark.parametrize("connection", CONNECTIONS)
async def test_cancel_at_every_step_of_a_retried_stream(
    server: MockServer, make_client: MakeClient, entry: Entry, connection: str
) -> None:
    first = Reply.error(529, headers=NO_WAIT)
    await sweep_steps(server, make_client, "tool_use_response", entry, first, connection=connection)


@pytest.mark.slow
@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize("chunking", ["event", 16384, 7])
@pytest.mark.parametrize("name", sorted(STREAMS))
async def test_cancel_at_every_step_of_every_stream(
    server: MockServer,
    make_client: MakeClient,
    entry: Entry,
    name: str,
    chunking: Chunking,
    connection: str,
) -> None:
    await sweep_steps(server, make_client, name, entry, chunking=chunking, connection=connection)


@pytest.mark.slow
@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize("status", [408, 429, 500, 529])
async def test_cancel_at_every_step_after_every_retried_status(
    server: MockServer, make_client: MakeClient, entry: Entry, status: int, connection: str
) -> None:
    first = Reply.error(status, headers=NO_WAIT)
    await sweep_steps(server, make_client, "basic_response", entry, first, connection=connection)
