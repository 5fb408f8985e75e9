"""python -m tools.node run [--dir DIR] -- CMD...: a real single-node cluster for the duration of CMD.

CMD runs with KUBECONFIG set to the admin kubeconfig (contexts alice, bob)
and PATH including .cache/bin; the node is torn down afterwards, whatever CMD's
outcome (tools/node/cluster.py). Needs root and `make node-tools`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tools.localcluster import BIN_DIR
from tools.node.cluster import LocalNode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.node", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, help="state directory (default: a fresh temporary one)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start, run a command with KUBECONFIG set, tear down")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = [c for c in args.cmd if c != "--"]
    if not cmd:
        parser.error("run needs a command")
    # SIGTERM (a CI timeout, `kill`) must tear the node down too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="leasegate-node-"))
    node = LocalNode(workdir=workdir)
    try:
        node.start()
        print(f"node ready: {json.dumps(node.timings)}", flush=True)
        env = dict(os.environ, KUBECONFIG=str(node.cluster.kubeconfig), PATH=f"{BIN_DIR}:{os.environ['PATH']}")
        child = subprocess.Popen(cmd, env=env)
        try:
            return child.wait()
        finally:
            if child.poll() is None:  # we were signalled: the command goes down with the node
                child.terminate()
                child.wait(timeout=30)
    finally:
        print(f"node stopped: {json.dumps(node.stop())}", flush=True)
        left = node.leftovers()
        if left:
            print(f"left behind: {left}", file=sys.stderr)
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
