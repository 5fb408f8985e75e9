"""Where the webhook reads a holding transaction's record: one consistent GET, when it can matter.

Under a profile whose operator records who its transactions write as
(:attr:`~lockcore.profiles.LockProfile.holder_record`: a Transaction object
and the ServiceAccount it names), a write by that identity belongs to the
transaction. :func:`webhook.decision.holder_for` asks for a record only for a
live Lease and a requester that could be its identity (a service account of
the Lease's namespace), so the operator's own steps pay one GET each and
everyone else none. The read is always consistent (no cache): a record is
read only for those few writes, and its answer is then exact, including a
Transaction just created or a ServiceAccount name just changed.

Example::

    source = HolderSource(api, lookups, record)
    source.lookup(HolderRef("shop", "t42"))   # HolderIdentity or LookupFailed
"""

from __future__ import annotations

from lockcore.profiles import HolderRecord, LockProfile
from webhook.apiserver import ApiServer, ApiServerError
from webhook.outcome import HolderIdentity, HolderLookupResult, HolderRef, LookupFailed
from webhook.settings import Lookups


class HolderSource:
    """Reads holder records with a GET bounded by ``lookup_timeout_seconds``."""

    def __init__(self, api: ApiServer, lookups: Lookups, record: HolderRecord) -> None:
        self._api = api
        self._timeout = lookups.lookup_timeout_seconds
        self._record = record

    def lookup(self, ref: HolderRef) -> HolderLookupResult:
        """The identity transaction ``ref`` writes as (empty if it has no record); never raises."""
        path = self._record.path(ref.namespace, ref.name)
        try:
            status, body = self._api.get_json(path, timeout=self._timeout)
        except ApiServerError as exc:
            return LookupFailed(str(exc))
        if status == 404:
            return HolderIdentity()  # no record: nobody writes as the holder
        if status != 200 or not isinstance(body, dict):
            message = body.get("message", "") if isinstance(body, dict) else ""
            return LookupFailed(f"GET {self._record.plural}.{self._record.group} {ref}: HTTP {status} {message}".strip())
        return HolderIdentity(self._record.username(ref.namespace, body))

    def close(self) -> None:
        self._api.close()


def make_holder_source(lookups: Lookups, profile: LockProfile, api: ApiServer) -> HolderSource | None:
    """The holder source ``profile`` needs (None when its Leases have no holder record)."""
    record = profile.holder_record
    return HolderSource(api, lookups, record) if record is not None else None
