"""The loopback Messages API server, in a process of its own.

``python -m benchmarks.server [KEY ...]`` builds the replies for the given
stream keys (see :class:`benchmarks.streams.StreamSpec`), starts a
:class:`triostream.testing.MockServer` on 127.0.0.1, prints ``PORT <n>`` and
serves until its standard input is closed. Every request gets the reply of the
stream named by its ``model`` (built on first use and cached), so the
benchmarked process spends no CPU on the server side: ``time.process_time()``
there measures the consumer alone.

:class:`ServerProcess` starts and stops it from the benchmark process.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["ServerProcess", "main", "raise_fd_limit"]

_ROOT = Path(__file__).resolve().parent.parent


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit (1,000 streams need sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else 65536
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class ServerProcess:
    """``with ServerProcess(keys) as server:`` the server process, at ``server.base_url``."""

    def __init__(self, prebuild: list[str] | None = None) -> None:
        """Prepare to start a server that builds the replies of ``prebuild`` before it listens."""
        self._prebuild = prebuild or []
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Self:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.server", *self._prebuild],
            cwd=_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().decode()
        if not line.startswith("PORT "):
            self._stop()
            raise RuntimeError(f"the benchmark server did not start (it said {line!r})")
        self.port = int(line.split()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._process = None
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def _serve(prebuild: list[str]) -> None:
    import trio

    from triostream.testing import MockServer, RecordedRequest, Reply

    from .streams import StreamSpec

    replies: dict[str, Reply] = {}

    def reply_for(key: str) -> Reply:
        reply = replies.get(key)
        if reply is None:
            spec = StreamSpec.from_key(key)
            reply = Reply.stream(spec.events(), chunking=spec.chunking)
            replies[key] = reply
        return reply

    def handler(request: RecordedRequest) -> Reply:
        body = request.json
        key = body.get("model") if isinstance(body, dict) else None
        try:
            return reply_for(str(key))
        except ValueError as exc:
            return Reply.error(400, message=f"benchmark server: {exc}")

    for key in prebuild:
        reply_for(key)
    async with trio.open_nursery() as nursery:
        server = await MockServer.start(nursery)
        server.handler = handler
        print(f"PORT {server.port}", flush=True)
        # Serve until the parent closes our stdin (or dies): no orphaned servers.
        await trio.to_thread.run_sync(sys.stdin.buffer.read, abandon_on_cancel=True)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m benchmarks.server``."""
    import trio

    raise_fd_limit()
    trio.run(_serve, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
