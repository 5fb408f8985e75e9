"""A gunicorn ``gthread`` worker that slow clients cannot starve.

gunicorn's ``ThreadWorker`` hands a connection to a pool thread as soon as it
is readable, and that thread then performs the TLS handshake and reads the
request with blocking calls and no deadline. ``workers x threads`` clients
sending a header line every few seconds (slowloris) therefore hold every
thread, and everyone else waits. gunicorn 27 has no setting that bounds this:
``timeout`` only restarts a silent worker, and its 5 s "wait for data" check
passes as soon as the first byte arrives.

:class:`DeadlineThreadWorker` moves the waiting out of the pool. The worker's
event loop (which already polls kept-alive connections) drives a non-blocking
TLS handshake and buffers the request head and body; only a complete request
(see :func:`request_ready`) is given to a thread, which then parses from
memory. Every request gets ``read_timeout`` seconds for all of this, counted
from its first byte on a kept-alive connection or from ``accept()`` on a new
one; past it the connection is closed (debug log, no response, no
traceback). A slow client thus costs a file descriptor and a buffer until its
deadline, never a thread. Bodies larger than :data:`PREFETCH_LIMIT` or sent
chunked are read by the thread under the same deadline
(:class:`_DeadlineReader`).

Example (what ``webhook.serve.gunicorn_options`` does)::

    options["worker_class"] = deadline_worker(5.0)
"""

from __future__ import annotations

import errno
import logging
import re
import selectors
import socket
import ssl
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gsock
from gunicorn.workers.gthread import TConn, ThreadWorker

log = logging.getLogger("leasegate.worker")

#: A head longer than this is handed to gunicorn's parser unfinished, which
#: refuses it (limit_request_line / limit_request_fields) or reads on under the
#: deadline.
HEAD_LIMIT = 64 * 1024
#: Bodies up to this size are buffered before a thread is involved. Larger ones
#: (rare for admission reviews, refused with 413 above max_body_bytes) are read
#: by the thread, still under the deadline; this bounds the memory a connection
#: that has not yet reached a thread can pin.
PREFETCH_LIMIT = 1024 * 1024

_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.I | re.M)
_TRANSFER_ENCODING = re.compile(rb"^transfer-encoding[ \t]*:", re.I | re.M)


def request_ready(buf: bytes | bytearray) -> bool:
    """Whether ``buf`` holds enough of a request to hand it to a thread.

    True once the head and a ``Content-Length`` body up to
    :data:`PREFETCH_LIMIT` are in; also for anything the thread must finish or
    refuse itself (an oversized head, a chunked or oversized body, a malformed
    length): gunicorn's parser answers those as before.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return len(buf) > HEAD_LIMIT
    head = buf[:end + 2]
    if _TRANSFER_ENCODING.search(head):
        return True
    lengths = _CONTENT_LENGTH.findall(head)
    if not lengths:
        return True
    if len(lengths) > 1 or not lengths[0].isdigit():
        return True  # gunicorn refuses it with 400
    length = int(lengths[0])
    return length > PREFETCH_LIMIT or len(buf) - (end + 4) >= length


class _DeadlineReader:
    """The socket as gunicorn's parser sees it: every ``recv`` ends by the deadline.

    At the deadline the connection is shut down and EOF returned, which
    gunicorn and werkzeug already treat as a client that went away (quietly),
    where a raised timeout would be logged as a server error or become a 500.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.deadline = float("inf")

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            return self.sock.recv(size)
        except TimeoutError:
            log.debug("request not read within its deadline; closing the connection")
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return b""
        finally:
            self.sock.settimeout(None)  # back to blocking, as gunicorn expects for writes


class DeadlineThreadWorker(ThreadWorker):  # type: ignore[misc]
    """``ThreadWorker`` whose threads only ever see complete requests (see module doc)."""

    read_timeout: float = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading: dict[TConn, float] = {}  # connection -> its request's deadline

    def enqueue_req(self, conn: TConn) -> None:
        # Every path to a thread (accept, a kept-alive connection turning readable,
        # a pipelined request) comes through here: start this request's clock.
        if not conn.initialized:
            self._setup(conn)
        conn.reader.deadline = time.monotonic() + self.read_timeout
        conn.prefetch = bytearray(conn.parser.unreader.take_buffered())
        conn.handshaken = conn.handshaken or not isinstance(conn.sock, ssl.SSLSocket)
        conn.sock.setblocking(False)
        self._reading[conn] = conn.reader.deadline
        self._guarded(conn, registered=False)

    def _setup(self, conn: TConn) -> None:
        # What TConn.init() would do in the thread, minus the blocking handshake;
        # marking it initialized makes gunicorn skip both later. The parser reads
        # through the deadline reader; responses are written to the socket itself.
        conn.sock.setblocking(False)
        if self.cfg.is_ssl:
            ctx = gsock.ssl_context(self.cfg)
            conn.sock = ctx.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False,
                                        suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
        conn.reader = _DeadlineReader(conn.sock)
        conn.parser = http.get_parser(self.cfg, conn.reader, conn.client)
        conn.handshaken = False
        conn.initialized = True

    def _on_event(self, conn: TConn, _fileobj: Any) -> None:
        self._guarded(conn, registered=True)

    def _guarded(self, conn: TConn, registered: bool) -> None:
        try:
            self._advance(conn, registered)
        except Exception:  # escaping here would end the worker's event loop, and every connection
            log.exception("reading a request from %s failed", conn.client)
            self._drop(conn, registered)

    def _advance(self, conn: TConn, registered: bool) -> None:
        """Make what progress the socket allows; runs on the worker's event loop."""
        want = selectors.EVENT_READ
        try:
            if not conn.handshaken:
                conn.sock.do_handshake()
                conn.handshaken = True
                # gunicorn would serve an ALPN "h2" connection as HTTP/2; this
                # worker only prefetches HTTP/1.x, and the context offers no ALPN.
            while not request_ready(conn.prefetch):
                data = conn.sock.recv(65536)
                if not data:
                    raise ConnectionResetError(errno.ECONNRESET, "closed by the client")
                conn.prefetch += data
        except ssl.SSLWantWriteError:
            want = selectors.EVENT_WRITE
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            log.debug("connection from %s closed before a complete request: %s", conn.client, exc)
            self._drop(conn, registered)
            return
        else:
            if registered:
                self.poller.unregister(conn.sock)
            del self._reading[conn]
            conn.parser.unreader.unread(bytes(conn.prefetch))
            conn.prefetch = bytearray()
            super().enqueue_req(conn)
            return
        callback = partial(self._on_event, conn)
        if registered:
            self.poller.modify(conn.sock, want, callback)
        else:
            self.poller.register(conn.sock, want, callback)

    def _drop(self, conn: TConn, registered: bool) -> None:
        self._reading.pop(conn, None)
        if registered:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
        self.nr_conns -= 1
        conn.close()

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            self._close_listeners()

    def _close_listeners(self) -> None:
        """On shutdown, take the connections already queued, then close the listening sockets.

        gunicorn's ``ThreadWorker`` only stops *polling* its listeners on
        SIGTERM; it closes them when it exits, after the drain. Meanwhile the
        kernel still completes the handshake of every new connection into a
        backlog nobody accepts: the client (the API server) hangs for the rest
        of the drain (up to ``graceful_timeout``) and is then reset. The master
        has already closed its copies, so closing ours makes new connections
        fail at once (refused), and the API server can apply failurePolicy or
        reach another replica without waiting. Connections queued before now
        were in flight from their client's view: they are accepted and served.
        """
        for listener in self.sockets:
            while self.nr_conns < self.worker_connections:
                accepted = self.nr_conns
                try:
                    self.accept(listener)  # non-blocking; returns quietly when none is queued
                except OSError:
                    break
                if self.nr_conns == accepted:
                    break
            listener.close()

    def murder_pending(self) -> None:
        # Called once per event-loop turn (about every second), also while stopping.
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c, deadline in self._reading.items() if deadline <= now]:
            log.debug("request from %s not received within %.1f s; closing the connection",
                      conn.client, self.read_timeout)
            self._drop(conn, registered=True)


def deadline_worker(read_timeout: float) -> type[DeadlineThreadWorker]:
    """The worker class to give gunicorn, with ``read_timeout`` seconds per request."""
    return type("DeadlineThreadWorker", (DeadlineThreadWorker,), {"read_timeout": read_timeout})
