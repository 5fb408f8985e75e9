"""A real TCP relay that adds one-way latency towards its upstream (e.g. the kube-apiserver).

Used to keep a webhook's API calls genuinely in flight for a while without
faking anything: bytes are relayed unchanged (TLS stays end to end between
the webhook and the API server), but every chunk the client sends is held for
``delay`` seconds before it is forwarded, like a slow network link. Answers
from upstream are relayed at once. Order within a connection is kept (a delay
line, not a sleep per chunk), so a request split over several chunks costs
``delay`` once.

:meth:`DelayingProxy.held` tells how many connections currently have bytes
held in the delay line: with HTTP/1.1 (one request at a time per connection)
that is how many API calls are waiting.

Example::

    with DelayingProxy(("127.0.0.1", 6443), delay=1.5) as proxy:
        server = f"https://127.0.0.1:{proxy.port}"   # the API server's cert has SAN 127.0.0.1
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from types import TracebackType

_CHUNK = 65536


class _Relay:
    """One proxied connection: client -> delay line -> upstream, upstream -> client."""

    def __init__(self, proxy: DelayingProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.line: collections.deque[tuple[float, bytes]] = collections.deque()  # (due, data); b"" is EOF
        self.cond = threading.Condition()
        for target, name in ((self._read_client, "in"), (self._write_upstream, "delay"),
                             (self._copy_back, "out")):
            threading.Thread(target=target, name=f"delayproxy-{name}", daemon=True).start()

    @property
    def holding(self) -> bool:
        with self.cond:
            return any(data for _, data in self.line)

    def _read_client(self) -> None:
        while True:
            try:
                data = self.client.recv(_CHUNK)
            except OSError:
                data = b""
            with self.cond:
                self.line.append((time.monotonic() + self.proxy.delay, data))
                self.cond.notify()
            if data:
                self.proxy._saw_chunk()
            else:
                return

    def _write_upstream(self) -> None:
        while True:
            with self.cond:
                while not self.line:
                    self.cond.wait()
                due, data = self.line[0]
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with self.cond:
                self.line.popleft()
            try:
                if not data:
                    self.upstream.shutdown(socket.SHUT_WR)
                    return
                self.upstream.sendall(data)
            except OSError:
                self.close()
                return

    def _copy_back(self) -> None:
        try:
            while data := self.upstream.recv(_CHUNK):
                self.client.sendall(data)
            self.client.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()

    def close(self) -> None:
        with self.cond:  # ends the delay thread if it is waiting
            self.line.append((0.0, b""))
            self.cond.notify()
        for sock in (self.client, self.upstream):
            try:
                sock.close()
            except OSError:
                pass


class DelayingProxy:
    """Listen on a free loopback port; relay each connection to ``upstream`` with ``delay`` s latency."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        self.upstream = upstream
        self.delay = delay  # may be changed while running; applies to chunks read afterwards
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._relays: list[_Relay] = []
        self._lock = threading.Lock()
        self.chunks = 0  # client chunks seen, in total
        threading.Thread(target=self._accept, name="delayproxy-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._relays.append(_Relay(self, client, upstream))

    def _saw_chunk(self) -> None:
        with self._lock:
            self.chunks += 1

    def held(self) -> int:
        """How many connections have client bytes waiting in the delay line right now."""
        with self._lock:
            relays = list(self._relays)
        return sum(1 for relay in relays if relay.holding)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            relays, self._relays = self._relays, []
        for relay in relays:
            relay.close()

    def __enter__(self) -> DelayingProxy:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
