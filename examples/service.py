"""A small trio service: many clients at once, each answer streamed in its own nursery,
and cancelled (HTTP connection included) as soon as its client goes away.

Protocol: connect, send one line (the prompt), read the answer as it streams; the
server closes the connection at the end. Try it:

    python examples/service.py 8765          # then, in another terminal:
    echo "Tell me about trio" | nc 127.0.0.1 8765
"""

import sys
from functools import partial

import trio

import triostream

MAX_PROMPT_BYTES = 16_384


async def read_prompt(conn: trio.SocketStream) -> str | None:
    """The first line the client sends (None if it leaves first or sends too much)."""
    data = b""
    while b"\n" not in data:
        chunk = await conn.receive_some(4096)
        if not chunk or len(data) + len(chunk) > MAX_PROMPT_BYTES:
            return None
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8", "replace").strip() or None


async def cancel_when_gone(conn: trio.SocketStream, scope: trio.CancelScope, peer: str) -> None:
    """Cancel ``scope`` when the client closes its end (anything else it sends is ignored)."""
    try:
        while await conn.receive_some(4096):
            pass
    except trio.BrokenResourceError:
        pass
    print(f"{peer}: client went away; cancelling its stream", flush=True)
    scope.cancel()


async def answer(
    client: triostream.AsyncAnthropic, nursery: trio.Nursery, conn: trio.SocketStream, prompt: str
) -> None:
    """Stream the answer to ``prompt`` to the client, the stream's tasks in ``nursery``."""
    try:
        async with triostream.open_message_stream(
            nursery,
            client=client,
            model="claude-sonnet-4-5",
            max_tokens=1024,
            messages=[{"role": "user", "content": prompt}],
        ) as stream:
            async for text in stream.text_stream:
                await conn.send_all(text.encode())
        await conn.send_all(b"\n")
    except triostream.APIError as exc:
        await conn.send_all(f"\nerror: {type(exc).__name__}: {exc.message}\n".encode())


async def handle(client: triostream.AsyncAnthropic, conn: trio.SocketStream) -> None:
    """Serve one client: stream the answer to its prompt for as long as it stays."""
    peer = "{}:{}".format(*conn.socket.getpeername()[:2])
    async with conn:
        prompt = await read_prompt(conn)
        if prompt is None:
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(cancel_when_gone, conn, nursery.cancel_scope, peer)
            try:
                await answer(client, nursery, conn, prompt)
            except trio.BrokenResourceError:
                pass  # it left while we were writing: the same as going away
            else:
                print(f"{peer}: answered", flush=True)
            nursery.cancel_scope.cancel()  # done: stop watching the client


async def serve(
    port: int = 0, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve on 127.0.0.1:``port`` (0: any free port) until cancelled; started with the port."""
    async with triostream.AsyncAnthropic() as client, trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(handle, client), port, host="127.0.0.1")
        )
        bound = listeners[0].socket.getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        task_status.started(bound)


async def main() -> None:
    await serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0)


if __name__ == "__main__":
    trio.run(main)
