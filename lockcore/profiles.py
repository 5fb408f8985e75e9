"""Lock profiles: everything that differs between Lease layouts, in one object.

``leasegate`` is this project's own layout. ``janus`` reads and writes the
Leases of the Go operator whose API lockcore follows, so both can lock the
same objects. A :class:`LockProfile` says what a profile decides; the Lease
*name* scheme is in :func:`lockcore.naming.lease_name`, keyed by the same
:class:`Profile`. Adding a profile means one entry in :data:`PROFILES` (and a
name scheme if it has its own).

Example::

    >>> LockProfile.of(Profile.JANUS).fences
    False
    >>> LockProfile.of(Profile.LEASEGATE).txn_label
    'leasegate.io/transaction'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Profile(str, enum.Enum):
    """Which Lease layout to read and write (the ``profile`` setting)."""

    LEASEGATE = "leasegate"
    JANUS = "janus"


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
    """

    profile: Profile
    txn_label: str
    fences: bool
    records_principal: bool

    @classmethod
    def of(cls, profile: Profile) -> LockProfile:
        return PROFILES[profile]


PROFILES: dict[Profile, LockProfile] = {
    Profile.LEASEGATE: LockProfile(Profile.LEASEGATE, txn_label="leasegate.io/transaction",
                                   fences=True, records_principal=True),
    Profile.JANUS: LockProfile(Profile.JANUS, txn_label="janus.io/transaction", fences=False,
                               records_principal=False),
}
