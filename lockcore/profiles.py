"""Lock profiles: everything that differs between Lease layouts, in one object.

``leasegate`` is this project's own layout. ``janus`` reads and writes the
Leases of the janus saga operator (aalpar/janus, v0.2.3), whose lock API
lockcore follows, so both can lock the same objects. A :class:`LockProfile`
says what a profile decides: its Lease label, whether it fences, whether its
Leases record a principal, its operator's Lease *name scheme*
(:class:`NameScheme`; None means leasegate's own, in
:func:`lockcore.naming.lease_name`) and where its operator records the
identity a holding transaction writes as (:class:`HolderRecord`). Adding a
profile means one entry in :data:`PROFILES`; nothing outside this module
names a profile.

Example::

    >>> LockProfile.of(Profile.JANUS).fences
    False
    >>> LockProfile.of(Profile.LEASEGATE).txn_label
    'leasegate.io/transaction'
    >>> LockProfile.of(Profile.JANUS).names.name("shop", "ConfigMap", "web")
    'janus-lock-shop-configmap-web'
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lockcore.kube import object_path
from lockcore.members import SERVICE_ACCOUNT_PREFIX


class Profile(str, enum.Enum):
    """Which Lease layout to read and write (the ``profile`` setting)."""

    LEASEGATE = "leasegate"
    JANUS = "janus"


@dataclass(frozen=True)
class NameScheme:
    """An operator's Lease names: ``<prefix>-<namespace>-<kind>-<name>``, lowercased.

    ``namespace`` is the Lease's own namespace: the object's for a namespaced
    object; for a cluster-scoped one, the namespace of the transaction that
    holds it (the operator keeps such a Lease next to its Transaction; lock
    clients use their lock namespace). A kind has no ``-``, so within one
    Lease namespace the rest of the name, ``<kind>-<name>`` (the *target*),
    names one kind and object name; the scheme ignores the API group and
    folds letter case, which is where it is ambiguous.

    >>> NameScheme("op-lock").target_of("shop", "op-lock-shop-clusterrole-x")
    'clusterrole-x'
    """

    prefix: str

    def name(self, namespace: str, kind: str, name: str) -> str:
        """The Lease name for ``kind``/``name`` kept in ``namespace`` (not validated)."""
        return f"{self.prefix}-{namespace}-{kind}-{name}".lower()

    def target(self, kind: str, name: str) -> str:
        """The part of the name that identifies the object: ``<kind>-<name>``."""
        return f"{kind}-{name}".lower()

    def target_of(self, lease_namespace: str, lease_name: str) -> str | None:
        """The target of Lease ``lease_namespace/lease_name``, or None if the name is not of this scheme there."""
        head = f"{self.prefix}-{lease_namespace}-".lower()
        rest = lease_name[len(head):] if lease_name.startswith(head) else ""
        return rest if "-" in rest.strip("-") else None


@dataclass(frozen=True)
class HolderRecord:
    """Where an operator records the identity a transaction's writes run as.

    A namespaced object named after the transaction (a lock Lease's
    ``holderIdentity``), kept in the Lease's namespace, whose ``field`` names
    a ServiceAccount of that namespace: the operator impersonates
    ``system:serviceaccount:<namespace>:<that name>`` for every step.

    >>> record = HolderRecord("tx.example.io", "v1", "transactions")
    >>> record.username("shop", {"spec": {"serviceAccountName": "deployer"}})
    'system:serviceaccount:shop:deployer'
    """

    group: str
    version: str
    plural: str
    field: tuple[str, ...] = ("spec", "serviceAccountName")

    def path(self, namespace: str, name: str) -> str:
        """The REST path of the record of transaction ``name`` in ``namespace``."""
        return object_path(self.group, self.version, self.plural, namespace, name)

    def username(self, namespace: str, record: Mapping[str, Any]) -> str:
        """The username the record's transaction writes as; empty if the record names no account."""
        value: Any = record
        for step in self.field:
            value = value.get(step) if isinstance(value, Mapping) else None
        if not isinstance(value, str) or not value or ":" in value:
            return ""
        return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{value}"

    @staticmethod
    def may_be(username: str, namespace: str) -> bool:
        """Whether ``username`` could be the identity of a transaction in ``namespace`` (worth a lookup)."""
        return username.startswith(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:")


@dataclass(frozen=True)
class LockProfile:
    """What a Lease layout decides.

    Attributes:
        profile: the setting's value.
        txn_label: the Lease label holding the transaction name (lock Leases
            are found by its existence).
        fences: acquire stamps ``leasegate.io/locked`` on the locked object,
            so the registration calls the webhook only for marked objects.
            A profile whose other writers (the janus operator) never stamp
            cannot rely on markers: its registration calls the webhook for
            every covered write.
        records_principal: the Lease records who acquired it. Without it a
            DELETE is proved by the stored annotation alone (a delete has no
            other way to declare itself), and a live Lease is not protected
            against writes by other identities.
        names: the operator's Lease name scheme; None for leasegate's own
            (:func:`lockcore.naming.lease_name`). A profile with a scheme keeps
            a cluster-scoped object's Lease in its holder's namespace, so such
            a Lease is looked for in every namespace (:meth:`NameScheme.target_of`).
        holder_record: where the operator records the identity a holding
            transaction writes as; a write by that identity belongs to the
            transaction (None: no such proof).
    """

    profile: Profile
    txn_label: str
    fences: bool
    records_principal: bool
    names: NameScheme | None = None
    holder_record: HolderRecord | None = None

    @classmethod
    def of(cls, profile: Profile) -> LockProfile:
        return PROFILES[profile]

    @property
    def cluster_leases_anywhere(self) -> bool:
        """A cluster-scoped object's Lease may live in any namespace (its holder's)."""
        return self.names is not None


PROFILES: dict[Profile, LockProfile] = {
    Profile.LEASEGATE: LockProfile(Profile.LEASEGATE, txn_label="leasegate.io/transaction",
                                   fences=True, records_principal=True),
    # janus v0.2.3: internal/lock (LeaseName, createLease), api/v1alpha1
    # (tx.janus.io/v1alpha1 Transaction, spec.serviceAccountName), and its
    # controller, which impersonates that ServiceAccount for every step.
    Profile.JANUS: LockProfile(Profile.JANUS, txn_label="janus.io/transaction", fences=False,
                               records_principal=False, names=NameScheme("janus-lock"),
                               holder_record=HolderRecord("tx.janus.io", "v1alpha1", "transactions")),
}
