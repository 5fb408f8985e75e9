"""The reference lock algorithm, for comparison only: GET then CREATE/UPDATE, GET then DELETE.

This is how the reference (Go) LeaseManager works, translated with the same
transport as :class:`lockcore.manager.LeaseManager` (the official client,
V1Lease models built from :func:`lockcore.lease.lease_body`, ``_preload_content=False``)
so that the benchmark compares algorithms, not HTTP stacks:

* acquire: GET the Lease; 404 -> POST it; held by this txn or expired ->
  PUT it (with the read resourceVersion); else AlreadyLocked;
* renew: GET, check the holder, PUT;
* release: GET; held by this txn -> DELETE.

It lives in bench/ only and is never used by leasegate itself.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lockcore.errors import AlreadyLockedError, LockExpiredError
from lockcore.lease import LeaseState, lease_body, lease_seconds, utcnow
from lockcore.naming import LeaseRef, ResourceKey, lease_ref
from lockcore.settings import LockSettings


class ReferenceLeaseManager:
    """GET-then-write lock manager (the comparison baseline of bench/lockbench.py)."""

    def __init__(self, api_client: client.ApiClient, settings: LockSettings, *, principal: str) -> None:
        self._leases = client.CoordinationV1Api(api_client)
        self.settings = settings
        self.principal = principal

    def _get(self, ref: LeaseRef) -> dict[str, Any] | None:
        try:
            resp: Any = self._leases.read_namespaced_lease(ref.name, ref.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data: dict[str, Any] = json.loads(resp.data)
        return data

    def _body(self, key: ResourceKey, ref: LeaseRef, txn: str, seconds: int,
              resource_version: str = "") -> client.V1Lease:
        """The Lease as a model, as lockcore sends it (same serialisation cost)."""
        body = lease_body(namespace=ref.namespace, name=ref.name, key=key, txn=txn,
                          duration_seconds=seconds, now=utcnow(), principal=self.principal,
                          profile=self.settings.profile, resource_version=resource_version)
        model = client.V1Lease.from_dict(body)
        assert model is not None
        return model

    def acquire(self, key: ResourceKey, txn: str, timeout: float) -> LeaseRef:
        ref = lease_ref(key, self.settings)
        seconds = lease_seconds(timeout)
        current = self._get(ref)
        if current is None:
            self._leases.create_namespaced_lease(ref.namespace, self._body(key, ref, txn, seconds),
                                                 _preload_content=False)
            return ref
        state = LeaseState.from_json(current)
        if not state.held_by(txn) and state.is_live(utcnow(), self.settings.clock_skew_seconds):
            raise AlreadyLockedError(ref.name, state.holder, namespace=ref.namespace)
        self._leases.replace_namespaced_lease(
            ref.name, ref.namespace, self._body(key, ref, txn, seconds, state.resource_version),
            _preload_content=False)
        return ref

    def renew(self, ref: LeaseRef, key: ResourceKey, txn: str, timeout: float) -> None:
        current = self._get(ref)
        if current is None:
            raise LockExpiredError(ref.name, namespace=ref.namespace)
        state = LeaseState.from_json(current)
        if not state.held_by(txn):
            raise AlreadyLockedError(ref.name, state.holder, namespace=ref.namespace)
        self._leases.replace_namespaced_lease(
            ref.name, ref.namespace,
            self._body(key, ref, txn, lease_seconds(timeout), state.resource_version),
            _preload_content=False)

    def release(self, ref: LeaseRef, txn: str) -> None:
        current = self._get(ref)
        if current is None or not LeaseState.from_json(current).held_by(txn):
            return
        try:
            self._leases.delete_namespaced_lease(ref.name, ref.namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise
