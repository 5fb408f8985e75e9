"""lockcore: per-object transaction locks stored as coordination.k8s.io/v1 Leases.

Example::

    >>> from lockcore import LeaseManager, ResourceKey, hold  # doctest: +SKIP
    >>> manager = LeaseManager()  # kubeconfig or in-cluster config  # doctest: +SKIP
    >>> key = ResourceKey(group="apps", kind="Deployment", namespace="shop", name="web")
    >>> with hold(manager, [key], txn="t42", ttl=60) as held:  # doctest: +SKIP
    ...     ...  # writes annotated with leasegate.io/transaction=t42 pass the webhook
"""

from lockcore.errors import (
    AlreadyLockedError,
    ClusterConfigError,
    ClusterUnreachableError,
    FenceError,
    LeaseOpError,
    LockError,
    LockExpiredError,
    NamespaceNotFoundError,
)
from lockcore.holding import HeldLocks, LockLostError, acquire_all, hold
from lockcore.lease import LeaseState, lease_seconds, txn_label
from lockcore.manager import LeaseManager, Manager
from lockcore.members import Members, MembersError
from lockcore.naming import (
    InvalidKeyError,
    LeaseRef,
    ResourceKey,
    lease_name,
    lease_ref,
    validate_txn,
)
from lockcore.settings import LockSettings, Profile, SettingsError

__all__ = [
    "AlreadyLockedError",
    "ClusterConfigError",
    "ClusterUnreachableError",
    "FenceError",
    "HeldLocks",
    "InvalidKeyError",
    "LeaseManager",
    "LeaseOpError",
    "LeaseRef",
    "LeaseState",
    "LockError",
    "LockExpiredError",
    "LockLostError",
    "LockSettings",
    "Manager",
    "Members",
    "MembersError",
    "NamespaceNotFoundError",
    "Profile",
    "ResourceKey",
    "SettingsError",
    "acquire_all",
    "hold",
    "lease_name",
    "lease_ref",
    "lease_seconds",
    "txn_label",
    "validate_txn",
]
