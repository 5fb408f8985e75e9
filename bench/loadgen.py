"""An open-loop, fixed-rate HTTPS load generator that is safe from coordinated omission.

Debian's wrk (4.1) is closed-loop: each connection sends its next request only
when the previous answer arrived, so a stalled server is sampled less and its
latency under-reported ("coordinated omission"). wrk2's ``-R`` fixes that but
is not packaged. This generator does what wrk2 does, in asyncio:

* request ``i`` is *scheduled* at ``t0 + i / rate``, whatever happened before;
* its latency is measured from that scheduled time to the last byte of the
  answer, so time spent waiting for a free connection, or behind a slow
  answer, counts;
* keep-alive HTTP/1.1 over TLS, up to ``--connections`` connections opened on
  demand (the API server also keeps a pool of keep-alive connections to a
  webhook).

Two delays are reported beside the latency: ``generator_lag`` (scheduled time
to the moment the request's task ran: the generator's own lateness; if it is
large the generator, not the server, was the bottleneck) and ``send_lag``
(scheduled time to the request written, which adds waiting for a free
connection, i.e. queueing behind a slow server).

Run as a separate process so it never shares a GIL with what it measures::

    python -m bench.loadgen --url https://127.0.0.1:8443/validate \
        --bodies bench/out/bodies --rate 500 --duration 20 --cafile ca.crt
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.stats import schedule, summarize


def load_bodies(directory: Path) -> list[bytes]:
    """The request bodies listed, in order, in ``directory/index.txt``."""
    names = (directory / "index.txt").read_text().split()
    return [(directory / name).read_bytes() for name in names]


class _Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, bytes, bool]:
        """Send one request; returns (status, body, keep-alive)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, keep = 0, True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value.strip())
            elif lname == "connection" and value.strip().lower() == "close":
                keep = False
            elif lname == "transfer-encoding":
                raise RuntimeError("chunked responses are not supported by this generator")
        body = await self.reader.readexactly(length) if length else b""
        return status, body, keep

    def close(self) -> None:
        self.writer.close()


@dataclass
class _Pool:
    host: str
    port: int
    ssl_ctx: ssl.SSLContext | None
    limit: int
    idle: list[_Conn] = field(default_factory=list)
    opened: int = 0
    waiters: list[asyncio.Future[_Conn]] = field(default_factory=list)

    async def get(self) -> _Conn:
        if self.idle:
            return self.idle.pop()
        if self.opened < self.limit:
            self.opened += 1
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl_ctx)
            except BaseException:
                self.opened -= 1
                raise
            return _Conn(reader, writer)
        waiter: asyncio.Future[_Conn] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    def put(self, conn: _Conn) -> None:
        while self.waiters:
            waiter = self.waiters.pop(0)
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def discard(self, conn: _Conn) -> None:
        conn.close()
        self.opened -= 1

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


def _request_bytes(host: str, path: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def run_fixed_rate(url: str, bodies: Sequence[bytes], *, rate: float, duration: float,
                         warmup: float = 2.0, connections: int = 64,
                         cafile: str | None = None, timeout: float = 10.0) -> dict[str, object]:
    """Send ``rate`` requests/s for ``warmup + duration`` seconds; summarise the measured part."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)
    ctx: ssl.SSLContext | None = None
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.check_hostname = False  # the certificate names the Service, not 127.0.0.1
    requests = [_request_bytes(host, parts.path or "/", b) for b in bodies]
    pool = _Pool(host, port, ctx, connections)
    offsets = schedule(rate, warmup + duration)
    latencies: list[float] = []
    lags: list[float] = []
    generator_lags: list[float] = []
    statuses: dict[str, int] = {}
    denied = errors = 0
    loop = asyncio.get_running_loop()

    async def one(i: int, scheduled: float) -> None:
        nonlocal denied, errors
        conn: _Conn | None = None
        began = loop.time()
        try:
            conn = await pool.get()
            sent = loop.time()
            status, body, keep = await asyncio.wait_for(conn.exchange(requests[i % len(requests)]),
                                                        timeout)
            done = loop.time()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError,
                RuntimeError, ssl.SSLError):
            errors += 1
            if conn is not None:
                pool.discard(conn)
            return
        if keep:
            pool.put(conn)
        else:
            pool.discard(conn)
        if scheduled - t0 >= warmup:
            latencies.append(done - scheduled)
            lags.append(sent - scheduled)
            generator_lags.append(began - scheduled)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if b'"allowed":false' in body or b'"allowed": false' in body:
                denied += 1

    t0 = loop.time() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for i, offset in enumerate(offsets):
        scheduled = t0 + offset
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, scheduled)))
    await asyncio.gather(*tasks)
    pool.close()
    measured = len(latencies)
    summary: dict[str, object] = {
        "rate": rate, "duration_s": duration, "sent": measured, "errors": errors,
        "statuses": statuses, "denied_fraction": round(denied / measured, 4) if measured else None,
        "latency": summarize(latencies), "send_lag": summarize(lags),
        "generator_lag": summarize(generator_lags),
        "connections_opened": pool.opened,
    }
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", type=Path, required=True, help="directory with index.txt")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--cafile")
    args = parser.parse_args(argv)
    result = asyncio.run(run_fixed_rate(args.url, load_bodies(args.bodies), rate=args.rate,
                                        duration=args.duration, warmup=args.warmup,
                                        connections=args.connections, cafile=args.cafile))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
