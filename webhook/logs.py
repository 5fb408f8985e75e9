"""JSON log lines for everything the webhook process logs (gunicorn included).

Each record becomes one JSON object per line: time, level, logger, message,
plus the ``fields`` dict a caller passes in ``extra`` (the audit line uses it).

Example::

    >>> import logging
    >>> record = logging.LogRecord("x", logging.INFO, "f", 1, "hello %s", ("you",), None)
    >>> record.fields = {"uid": "u1"}
    >>> JsonFormatter().format(record).endswith('"msg": "hello you", "uid": "u1"}')
    True
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from gunicorn.glogging import Logger as GunicornLogger


class JsonFormatter(logging.Formatter):
    """Format a LogRecord as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (and gunicorn ``logconfig_dict``) for JSON lines on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "webhook.logs.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }


class AccessLogOnDemand(GunicornLogger):  # type: ignore[misc]
    """gunicorn's logger, without building access-log lines nobody writes.

    Given a logging config, gunicorn formats every request's access line (a
    dict of a dozen atoms, the date) before the ``gunicorn.access`` logger,
    at WARNING here, drops it: a few percent of each request's CPU.
    """

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)
