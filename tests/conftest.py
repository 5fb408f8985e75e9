"""The test suite's configuration: shared fixtures are plugins in tests/support/.

* tests/support/cluster.py: the session's real kube-apiserver (``cluster``),
  ``api_client(user)``, ``kubectl(...)``, a fresh ``namespace`` per test;
* tests/support/webhooks.py: real webhook processes (``webhook_factory``,
  ``deny_webhook``/``guarded``, ``shipped_webhook``/``locked_ns``);
* tests/support/locking.py: lockcore on clients that count their HTTP calls;
* tests/support/reliability.py: a control plane to break, the abused webhook;
* tests/support/figures.py: measured figures in the terminal summary.

Nothing here fakes the Kubernetes API.
"""

from __future__ import annotations

from hypothesis import settings as hypothesis_settings

pytest_plugins = [
    "tests.support.cluster",
    "tests.support.webhooks",
    "tests.support.locking",
    "tests.support.reliability",
    "tests.support.figures",
]

# Speed lives in bench/, not in tests: no per-example deadline, which a loaded CI
# machine would turn into flaky failures. print_blob lets a failure be replayed.
hypothesis_settings.register_profile("leasegate", deadline=None, print_blob=True)
hypothesis_settings.load_profile("leasegate")
