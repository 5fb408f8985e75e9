"""The physical limit of the stack: the webhook's own gunicorn + Flask + TLS serving allow-everything.

Same gunicorn options as ``leasegate-webhook`` (:func:`webhook.serve.gunicorn_options`,
from the same ``LEASEGATE_*`` environment), same certificate handling, same
``POST /validate`` route; the handler reads and decodes the AdmissionReview
(any webhook must, to echo the uid) and allows it, with
:func:`webhook.review.build_response`. What leasegate adds on top of this is
what the benchmark's ours/baseline ratio measures.

Run: ``python -m bench.baseline`` (configured by the environment, like the webhook).
"""

from __future__ import annotations

import json
import logging.config
import os
import tempfile
from pathlib import Path

from flask import Flask, Response, request

from webhook.review import build_response


def allow_all_app(*, count: bool = False) -> Flask:
    """``POST /validate``: decode the review, allow it.

    With ``count`` (``BENCH_BASELINE_COUNT=1``, used only by the end-to-end
    section) each answer also increments the webhook's decisions counter, so
    :func:`tools.localwebhook.register_webhook` can see the API server call it.
    """
    app = Flask("leasegate-baseline")
    decisions = None
    if count:
        from webhook.metrics import DECISIONS

        decisions = DECISIONS.labels("allow", "unlocked", "deny")

    @app.post("/validate")
    def validate() -> Response:
        if decisions is not None:
            decisions.inc()
        review = json.loads(request.get_data())
        uid = str(review["request"]["uid"])
        return app.response_class(json.dumps(build_response(uid, allowed=True)), 200,
                                  mimetype="application/json")

    return app


def main() -> int:
    from webhook.certs import generate
    from webhook.logs import log_config
    from webhook.serve import gunicorn_options, hooks_from_settings, parse_settings, run_gunicorn

    settings = parse_settings([])
    serving = settings.serving
    logging.config.dictConfig(log_config(serving.log_level))
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-baseline-metrics-"))
    paths = generate(Path(serving.cert_dir), serving.service_name, serving.service_namespace)
    options = gunicorn_options(serving, str(paths.cert_file), str(paths.key_file), hooks_from_settings(settings, None))
    options["proc_name"] = "leasegate-baseline"
    run_gunicorn(serving, options, lambda: allow_all_app(count=os.environ.get("BENCH_BASELINE_COUNT") == "1"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
