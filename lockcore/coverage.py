"""Whether a registered webhook would judge a write: admission rules and selectors, as JSON.

A lock is only as strong as the ValidatingWebhookConfiguration that sends
writes to the webhook: a kind its rules leave out, or a namespace its
``namespaceSelector`` excludes, can be written by anyone however it is locked.
These pure functions answer "would the API server call this webhook for an
UPDATE of this object?" from the configurations' JSON, the way the API server
matches them (``k8s.io/apiserver`` ``pkg/admission/plugin/webhook``):
operations, apiGroups, apiVersions (only under ``matchPolicy: Exact``; the
default ``Equivalent`` sends every version of a matched resource), resources
(``*``, ``*/*``, a plural; ``x/*`` is subresources only), scope, and the
namespace and object label selectors. What cannot be judged from here
(``matchConditions``, labels the caller could not read) counts as matching, so
a warning is never given for a write the webhook might see.

Example::

    >>> rule = {"operations": ["UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
    ...         "resources": ["deployments"], "scope": "*"}
    >>> rule_matches(rule, Write(group="apps", version="v1", resource="deployments", namespaced=True))
    True
    >>> rule_matches(rule, Write(group="", version="v1", resource="configmaps", namespaced=True))
    False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MANAGED_BY_SELECTOR = "app.kubernetes.io/managed-by=leasegate"


@dataclass(frozen=True)
class Write:
    """A write a lock should stop: ``operation`` of ``group/version`` ``resource`` (a plural)."""

    group: str
    version: str
    resource: str
    namespaced: bool
    operation: str = "UPDATE"


def _listed(values: Sequence[str] | None, value: str) -> bool:
    return any(v in ("*", value) for v in values or ())


def _resource_listed(resources: Sequence[str] | None, resource: str) -> bool:
    # The object itself, never a subresource: "x/*" and "*/status" name subresources only.
    return any(r in ("*", "*/*", resource) for r in resources or ())


def rule_matches(rule: Mapping[str, Any], write: Write, *, exact: bool = False) -> bool:
    """Whether one ``RuleWithOperations`` matches ``write`` (``exact``: matchPolicy Exact)."""
    scope = rule.get("scope") or "*"
    return (
        _listed(rule.get("operations"), write.operation)
        and _listed(rule.get("apiGroups"), write.group)
        and (not exact or _listed(rule.get("apiVersions"), write.version))
        and _resource_listed(rule.get("resources"), write.resource)
        and scope in ("*", "Namespaced" if write.namespaced else "Cluster")
    )


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator", "")
    values = expression.get("values") or []
    verdicts = {
        "In": key in labels and labels[key] in values,
        "NotIn": key not in labels or labels[key] not in values,
        "Exists": key in labels,
        "DoesNotExist": key not in labels,
    }
    return verdicts.get(operator, True)  # an operator this does not know: assume it may match


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """A ``LabelSelector`` against ``labels``; ``None`` labels (unknown) or no selector match.

    >>> selector_matches({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["ops"]}]},
    ...                  {"team": "ops"})
    False
    """
    if labels is None or not selector:
        return True
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items()) and all(
        _expression_matches(e, labels) for e in selector.get("matchExpressions") or [])


def webhook_covers(webhook: Mapping[str, Any], write: Write, *, namespace_labels: Mapping[str, str] | None = None,
                   object_labels: Mapping[str, str] | None = None) -> bool:
    """Whether the API server would call ``webhook`` (one entry of ``webhooks``) for ``write``.

    ``namespace_labels`` are the labels of the object's namespace; for a
    Namespace itself the API server matches ``namespaceSelector`` against the
    object's own labels, and other cluster-scoped objects are never excluded by it.
    """
    exact = webhook.get("matchPolicy") == "Exact"
    if not any(rule_matches(rule, write, exact=exact) for rule in webhook.get("rules") or []):
        return False
    is_namespace = (write.group, write.resource) == ("", "namespaces")
    if write.namespaced or is_namespace:
        labels = object_labels if is_namespace else namespace_labels
        if not selector_matches(webhook.get("namespaceSelector"), labels):
            return False
    return selector_matches(webhook.get("objectSelector"), object_labels)


def covering_webhooks(configurations: Iterable[Mapping[str, Any]], write: Write, *,
                      namespace_labels: Mapping[str, str] | None = None,
                      object_labels: Mapping[str, str] | None = None) -> list[str]:
    """``configuration/webhook`` names of every webhook that would judge ``write``.

    >>> config = {"metadata": {"name": "leasegate"}, "webhooks": [{"name": "locks.leasegate.io", "rules": [
    ...     {"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]}]}
    >>> covering_webhooks([config], Write(group="", version="v1", resource="secrets", namespaced=True))
    ['leasegate/locks.leasegate.io']
    """
    return [
        f"{(config.get('metadata') or {}).get('name', '')}/{webhook.get('name', '')}"
        for config in configurations
        for webhook in config.get("webhooks") or []
        if webhook_covers(webhook, write, namespace_labels=namespace_labels, object_labels=object_labels)
    ]
