"""Writes flowing through the webhook during a drill, each judged against the answer it must get.

Three kinds of write, round-robin, on a real object locked by alice's
transaction (taken with lockcore's LeaseManager) in a namespace of its own:

* ``holder``: alice updates the locked ConfigMap stamping her transaction:
  must be allowed (the webhook proves membership);
* ``intruder``: bob updates the locked ConfigMap: must be refused *by the
  webhook* (the API server's "admission webhook ... denied the request" with
  the webhook's message), never by the API server failing to call it;
* ``create``: bob creates a fresh ConfigMap: every CREATE is judged, and an
  unlocked one must be allowed.

All three reach the webhook whatever the chart's objectSelector, so a
"failed calling webhook" in any of them is a failed admission (no pod
answered, a TLS handshake failed, a connection broke).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException

TXN_ANNOTATION = "leasegate.io/transaction"
FAILED_CALL = "failed calling webhook"
DENIED = "denied the request"


@dataclass
class Outcome:
    kind: str
    allowed: bool
    status: int
    message: str


@dataclass
class Traffic:
    """A background writer; :meth:`stop` returns what happened."""

    alice: client.ApiClient
    bob: client.ApiClient
    namespace: str
    locked: str
    txn: str
    expect_webhook_up: bool = True
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Traffic:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)
        return self

    def _run(self) -> None:
        tick = 0
        while not self._stop.is_set():
            tick += 1
            self.outcomes.append(self._write("holder", self.alice, tick))
            self.outcomes.append(self._write("intruder", self.bob, tick))
            self.outcomes.append(self._create(tick))
            time.sleep(0.02)

    def _write(self, kind: str, api: client.ApiClient, tick: int) -> Outcome:
        annotations = {"tick": str(tick)}
        if kind == "holder":
            annotations[TXN_ANNOTATION] = self.txn
        body = {"metadata": {"annotations": annotations}}
        try:
            client.CoreV1Api(api).patch_namespaced_config_map(self.locked, self.namespace, body,
                                                              _request_timeout=15)
        except ApiException as exc:
            return Outcome(kind, False, int(exc.status or 0), str(exc.body or exc.reason))
        return Outcome(kind, True, 200, "")

    def _create(self, tick: int) -> Outcome:
        body = {"metadata": {"name": f"traffic-{tick}-{uuid.uuid4().hex[:4]}"}, "data": {"tick": str(tick)}}
        try:
            client.CoreV1Api(self.bob).create_namespaced_config_map(self.namespace, body, _request_timeout=15)
        except ApiException as exc:
            return Outcome("create", False, int(exc.status or 0), str(exc.body or exc.reason))
        return Outcome("create", True, 201, "")

    # -- verdicts ----------------------------------------------------------------------------

    def failed_calls(self) -> list[Outcome]:
        """Writes the API server refused because it could not get the webhook's answer."""
        return [o for o in self.outcomes if FAILED_CALL in o.message]

    def wrong_answers(self) -> list[Outcome]:
        """Writes that got an answer the lock does not allow: an intruder let in, a holder or create refused."""
        wrong = []
        for o in self.outcomes:
            if FAILED_CALL in o.message:
                continue
            if (o.kind == "intruder") == o.allowed or (o.kind == "intruder" and DENIED not in o.message):
                wrong.append(o)
        return wrong

    def summary(self) -> dict[str, int]:
        counts = Counter(f"{o.kind}:{'allowed' if o.allowed else o.status}" for o in self.outcomes)
        counts["failed calls"] = len(self.failed_calls())
        return dict(counts)
