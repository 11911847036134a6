"""Forwards 127.0.0.1:PORT on this node to the job's MLflow server (HOST:SERVER_PORT on the head).

    python forward.py PORT HOST:SERVER_PORT

The store's URI is then http://127.0.0.1:PORT on every node and in every job of the same store,
wherever the job's head lands: ``harness run --resume`` continues a launch only into the URI it
recorded, and the trials it restores keep that URI. Runs until SIGTERM; the standard library only.
"""
from __future__ import annotations

import asyncio
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():  # a half-close passes through: the other direction may still answer
            writer.write_eof()
    except OSError:
        writer.close()


async def _serve(port: int, host: str, server_port: int) -> None:
    async def connect(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, server_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))
        for writer in (client_writer, server_writer):
            writer.close()

    server = await asyncio.start_server(connect, "127.0.0.1", port)
    print(f"forwarding 127.0.0.1:{port} to {host}:{server_port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit() or ":" not in argv[1]:
        print(__doc__, file=sys.stderr)
        return 2
    host, _, server_port = argv[1].rpartition(":")
    try:
        asyncio.run(_serve(int(argv[0]), host, int(server_port)))
    except OSError as e:  # the port is taken: say which, and how to choose another
        print(f"forward.py: cannot listen on 127.0.0.1:{argv[0]}: {e.strerror} (set HARNESS_STORE_PORT)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
