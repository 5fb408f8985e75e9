"""Loopback into the node's network namespace: host 127.0.0.1:PORT -> namespace 127.0.0.1:PORT.

The node's API server, etcd and kubelet live in a network namespace holding
only loopback and the pod bridge, so that pods can reach the API server and
nothing can reach out. Tests, helm and kubectl run in the host namespace; this
forwarder is their only way in, and it stays on loopback at both ends: it binds
its listening sockets on the host's loopback *before* entering the node
namespace (a socket stays in the namespace it was created in), then connects
each accepted stream to the same port on the namespace's loopback. The port
number is the same on both sides, so one kubeconfig (``https://127.0.0.1:P``)
serves the daemons inside and the tests outside.

    python -m tools.node.forward --netns /run/netns/NAME --ready FILE PORT...
"""

from __future__ import annotations

import argparse
import ctypes
import os
import selectors
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

CLONE_NEWNET = 0x40000000


def enter_netns(path: Path) -> None:
    """setns(2) this thread (and every thread it starts later) into a network namespace."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy one direction until EOF, then pass the EOF on (half-close keeps TLS shutdown intact)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve_connection(client: socket.socket, port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(netns: Path, ports: Sequence[int], ready: Path | None) -> None:
    """Listen on the host's loopback, enter the namespace, forward until killed."""
    selector = selectors.DefaultSelector()
    for port in ports:
        listener = socket.create_server(("127.0.0.1", port), backlog=128)
        selector.register(listener, selectors.EVENT_READ, port)
    enter_netns(netns)
    if ready is not None:
        ready.write_text(str(os.getpid()))
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            client, _ = sock.accept()
            threading.Thread(target=_serve_connection, args=(client, key.data), daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.node.forward", description=__doc__.split("\n")[0])
    parser.add_argument("--netns", type=Path, required=True)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("ports", type=int, nargs="+")
    args = parser.parse_args(argv)
    serve(args.netns, args.ports, args.ready)
    return 0


if __name__ == "__main__":
    sys.exit(main())
