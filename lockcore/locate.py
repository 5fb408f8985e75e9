"""Find the lock on an object wherever its profile keeps the Lease (``kubectl lock status``).

Under leasegate's own layout a key names exactly one Lease
(:func:`lockcore.naming.lease_ref`). A profile with an operator's name scheme
keeps a cluster-scoped object's Lease in the namespace of the transaction
that holds it (:attr:`~lockcore.profiles.LockProfile.cluster_leases_anywhere`):
there the lock is every lock Lease whose name is the scheme's for the object
in that Lease's own namespace, found with one label-selected LIST.

Example::

    >>> ref, state = find_lock(manager, ResourceKey("rbac.authorization.k8s.io", "ClusterRole", "", "x"))  # doctest: +SKIP
    >>> str(ref), state.holder  # doctest: +SKIP
    ('ops/<the profile's name for it in ops>', 'deploy-rbac')
"""

from __future__ import annotations

from lockcore.errors import LeaseOpError
from lockcore.lease import LeaseState
from lockcore.manager import LeaseManager
from lockcore.naming import LeaseRef, ResourceKey

_UNSEEN = (401, 403)


def find_lock(manager: LeaseManager, key: ResourceKey) -> tuple[LeaseRef, LeaseState | None]:
    """The Lease of ``key``'s lock and its state (None: no Lease).

    Of several Leases (transactions of several namespaces), a live one wins,
    the first by namespace. A caller who may not list Leases everywhere gets
    the Lease in the lock namespace only.
    """
    ref = manager.ref_for(key)
    scheme = manager.settings.lock_profile.names
    if scheme is None or not key.cluster_scoped:
        return ref, manager.get_lock(ref)
    try:
        everywhere = manager.list_locks()
    except LeaseOpError as exc:
        if exc.status not in _UNSEEN:
            raise
        return ref, manager.get_lock(ref)
    target = scheme.target(key.kind, key.name)
    found = [state for state in everywhere if scheme.target_of(state.namespace, state.name) == target]
    now, skew = manager.clock.now(), manager.settings.clock_skew_seconds
    found.sort(key=lambda state: (not state.is_live(now, skew), state.namespace))
    if not found:
        return ref, None
    return LeaseRef(found[0].namespace, found[0].name), found[0]
