#!/usr/bin/env python3
"""A shadow that answers every request after a fixed delay (HTTP/1.1 keep-alive), for the bench.

usage: slow_upstream.py PORT DELAY_MS
"""
import asyncio
import sys

BODY = b'{"label": "slow"}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


async def serve(reader, writer, delay):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(delay)
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    port, delay = int(sys.argv[1]), int(sys.argv[2]) / 1000.0
    server = await asyncio.start_server(lambda r, w: serve(r, w, delay), "127.0.0.1", port,
                                        backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
