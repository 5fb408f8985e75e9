"""What every command needs, built lazily from the parsed arguments: settings, client, discovery.

>>> ctx = Context(build_parser("lockcore").parse_args(["status", "cm/x"]), "lockcore")  # doctest: +SKIP
>>> ctx.key()  # doctest: +SKIP
ResourceKey(group='', kind='ConfigMap', namespace='default', name='x')
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from lockcore.advice import Locked
from lockcore.cli.failures import KubectlError, UsageError
from lockcore.connect import api_client_from, default_namespace
from lockcore.manager import LeaseManager
from lockcore.naming import LeaseRef, ResourceKey
from lockcore.resources import Discovery, split_target
from lockcore.settings import LockSettings, Profile


class Context:
    """One invocation: its arguments, settings, and (once asked for) API client and discovery."""

    def __init__(self, args: argparse.Namespace, prog: str) -> None:
        self.args = args
        self.prog = prog
        self.settings = LockSettings.from_env().with_overrides(
            lock_namespace=args.lock_namespace,
            profile=Profile(args.profile) if args.profile else None,
        )
        self._api: Any = None
        self._discovery: Discovery | None = None

    def server(self) -> str:
        """The API server's URL, once a client exists ("" before)."""
        return str(self._api.configuration.host) if self._api is not None else ""

    @property
    def api(self) -> Any:
        if self._api is None:
            self._api = api_client_from(self.args.kubeconfig, self.args.context)
        return self._api

    @property
    def discovery(self) -> Discovery:
        """One discovery per invocation, shared with the manager's fence (each type asked once)."""
        if self._discovery is None:
            self._discovery = Discovery(self.api)
        return self._discovery

    def manager(self) -> LeaseManager:
        return LeaseManager(self.api, self.settings, discovery=self.discovery)

    def namespace(self) -> str:
        return str(self.args.namespace or default_namespace(self.args.kubeconfig, self.args.context))

    def key(self) -> ResourceKey:
        return self.discovery.key(self.args.target, self.namespace())

    def keys(self) -> list[ResourceKey]:
        """The objects named on the command line (several for acquire/release)."""
        return [item.key for item in self.resolved()]

    def resolved(self) -> list[Locked]:
        """The objects named on the command line with their types (discovery is asked once per type)."""
        discovery = self.discovery
        return [Locked(discovery.key(target, self.namespace()), discovery.resolve(split_target(target)[0]))
                for target in self.args.targets]

    def target(self) -> tuple[ResourceKey, LeaseManager, LeaseRef]:
        """The object named on the command line, the manager, and its lock's Lease."""
        key = self.key()
        manager = self.manager()
        return key, manager, manager.ref_for(key)

    def flags(self, *names: str) -> list[str]:
        """``--name=value`` for each of these options the user gave, to pass them on."""
        given = [(name, getattr(self.args, name.replace("-", "_"), None)) for name in names]
        return [f"--{name}={value}" for name, value in given if value]

    def emit(self, data: Any, human: str) -> None:
        print(json.dumps(data, indent=2, sort_keys=True) if self.args.output == "json" else human)

    def kubectl(self, *args: str, input: str | None = None,
                env: dict[str, str] | None = None, capture: bool = True) -> str:
        """Run the real kubectl with this invocation's cluster flags."""
        binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
        if not binary:
            raise UsageError("kubectl not found on PATH (or set $KUBECTL)")
        result = subprocess.run([binary, *self.flags("kubeconfig", "context", "namespace"), *args], input=input, text=True,
                                capture_output=capture, env=dict(os.environ, **(env or {})))
        if result.returncode != 0:
            if capture:
                sys.stderr.write(result.stderr)
            # kubectl's own error line is the one the user sees; nothing is added to it.
            said = not capture or bool(result.stderr.strip())
            raise KubectlError(result.returncode, ["kubectl", *args], reported=said)
        return result.stdout or ""
