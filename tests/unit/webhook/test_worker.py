"""webhook/worker.py's pure parts: when a buffered request is complete, and the deadline reader."""

from __future__ import annotations

import socket
import time

import pytest

from webhook.worker import HEAD_LIMIT, PREFETCH_LIMIT, _DeadlineReader, request_ready

HEAD = b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(("buf", "ready"), [
    (b"", False),
    (HEAD, False),  # the head is not finished
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", True),  # no body
    (HEAD + b"Content-Length: 5\r\n\r\n", False),
    (HEAD + b"Content-Length: 5\r\n\r\nabc", False),
    (HEAD + b"content-length:5\r\n\r\nabcde", True),
    (HEAD + b"Content-Length: 5\r\n\r\nabcdeGET / HTTP/1.1\r\n", True),  # pipelined: the thread parses on
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n", True),  # the thread reads chunks under the deadline
    (HEAD + f"Content-Length: {PREFETCH_LIMIT + 1}\r\n\r\n".encode(), True),  # too big to buffer
    (HEAD + b"Content-Length: x\r\n\r\n", True),  # malformed: gunicorn answers 400
    (HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", True),
    (b"X" * (HEAD_LIMIT + 1), True),  # endless head: gunicorn refuses it
])
def test_request_ready(buf: bytes, ready: bool) -> None:
    assert request_ready(buf) is ready
    assert request_ready(bytearray(buf)) is ready


def test_deadline_reader_returns_data_then_eof_at_the_deadline() -> None:
    server, client = socket.socketpair()
    with server, client:
        reader = _DeadlineReader(server)
        reader.deadline = time.monotonic() + 0.3
        client.sendall(b"abc")
        assert reader.recv(10) == b"abc"
        started = time.monotonic()
        assert reader.recv(10) == b""  # nothing more came: EOF, the connection shut down
        assert 0.1 < time.monotonic() - started < 2
        assert server.gettimeout() is None  # blocking again, as gunicorn writes expect
        assert client.recv(10) == b""  # the client sees the close
        reader.deadline = time.monotonic() - 1
        assert reader.recv(10) == b""  # already past: no wait at all


# -- the gunicorn internals DeadlineThreadWorker relies on -------------------------------
# pyproject pins gunicorn to the range these were read from; a new gunicorn that moves
# any of them fails here, loudly, instead of as a worker that hangs or drops requests.

_THREADWORKER_METHODS = ("enqueue_req", "set_accept_enabled", "murder_pending", "accept", "init_process")
_TCONN_FIELDS = ("sock", "client", "server", "cfg", "parser", "initialized", "timeout")


@pytest.mark.parametrize("name", _THREADWORKER_METHODS)
def test_gunicorn_thread_worker_still_has(name: str) -> None:
    from gunicorn.workers.gthread import ThreadWorker

    assert callable(getattr(ThreadWorker, name, None)), f"gunicorn's ThreadWorker.{name} moved"


def test_gunicorn_connection_and_parser_hooks_are_where_the_worker_uses_them() -> None:
    import inspect

    from gunicorn import http
    from gunicorn import sock as gsock
    from gunicorn.workers.gthread import TConn, ThreadWorker

    left, right = socket.socketpair()
    try:
        conn = TConn(cfg=object(), sock=left, client=("127.0.0.1", 1), server=("127.0.0.1", 2))
        assert all(hasattr(conn, field) for field in _TCONN_FIELDS), vars(conn)
    finally:
        left.close()
        right.close()
    assert callable(http.get_parser) and callable(gsock.ssl_context)
    # The worker reads these set by ThreadWorker.__init__/init_process.
    init = inspect.getsource(ThreadWorker.__init__) + inspect.getsource(ThreadWorker.init_process)
    for attribute in ("worker_connections", "nr_conns", "poller"):
        assert f"self.{attribute}" in init, f"ThreadWorker no longer sets {attribute}"
