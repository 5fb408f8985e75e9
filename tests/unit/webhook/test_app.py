"""webhook.app: an internal error is answered per policy, with the namespace's stricter mode too."""

from __future__ import annotations

import pytest

from lockcore.lease import LeaseState
from lockcore.naming import LeaseRef
from webhook.app import Judge, _judge_safely
from webhook.namespaces import NamespaceModes
from webhook.outcome import LeaseLookupResult, LookupFailed
from webhook.review import AdmissionRequest
from webhook.settings import DecisionPolicy, Enforcement, EnforcementMode, FailurePolicy


class Broken:
    """A lease source that raises, as a bug in a lookup would."""

    def lookup(self, ref: LeaseRef) -> LeaseLookupResult:
        raise RuntimeError("bug")

    def lookup_fresh(self, ref: LeaseRef) -> LeaseLookupResult:
        raise RuntimeError("bug")

    def lookup_target(self, target: str) -> list[LeaseState] | LookupFailed:
        raise RuntimeError("bug")

    def close(self) -> None:
        pass


class Labels(NamespaceModes):
    """The namespace label's mode, without the API server (``None``: reading it fails)."""

    def __init__(self, modes: dict[str, EnforcementMode | None]) -> None:
        self.modes = modes

    def get(self, namespace: str) -> EnforcementMode | None:
        mode = self.modes[namespace]
        if mode is None:
            raise OSError("namespace unreadable")
        return mode


def request(namespace: str) -> AdmissionRequest:
    return AdmissionRequest(uid="u1", operation="UPDATE", group="", version="v1", kind="ConfigMap",
                            resource="configmaps", resource_group="", namespace=namespace, name="cfg",
                            username="bob", groups=("developers",))


@pytest.mark.parametrize(("cluster", "label", "allowed", "mode"), [
    (EnforcementMode.WARN, EnforcementMode.DENY, False, EnforcementMode.DENY),  # the label's stricter mode holds
    (EnforcementMode.WARN, EnforcementMode.DRYRUN, True, EnforcementMode.WARN),  # a label never weakens
    (EnforcementMode.DRYRUN, None, True, EnforcementMode.DRYRUN),  # the label unreadable: the cluster mode
    (EnforcementMode.DENY, EnforcementMode.DRYRUN, False, EnforcementMode.DENY),
])
def test_an_internal_error_is_enforced_with_the_namespaces_mode(
        cluster: EnforcementMode, label: EnforcementMode | None, allowed: bool, mode: EnforcementMode) -> None:
    judge = Judge(DecisionPolicy(), Enforcement(mode=cluster, lookup_failure_policy=FailurePolicy.DENY), Broken(),
                  namespace_modes=Labels({"shop": label}))
    verdict = _judge_safely(judge, request("shop"))
    assert (verdict.allowed, verdict.mode, verdict.would_deny) == (allowed, mode, True)
    assert mode is EnforcementMode.DRYRUN or "internal error" in verdict.message + "".join(verdict.warnings)
