"""webhook/logs.py: JSON lines, and no access-log line built that nobody writes."""

from __future__ import annotations

import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.config import Config

from webhook.logs import AccessLogOnDemand, JsonFormatter, log_config


def test_json_line_carries_the_callers_fields() -> None:
    record = logging.LogRecord("leasegate.audit", logging.INFO, "f", 1, "denied %s", ("x",), None)
    record.fields = {"uid": "u1", "holder": "t1"}
    line = JsonFormatter().format(record)
    assert line.startswith('{"time": ') and line.endswith('"msg": "denied x", "uid": "u1", "holder": "t1"}')


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """gunicorn's logger applies its logging config process-wide: undo it afterwards."""
    names = ("", "gunicorn.error", "gunicorn.access")
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in map(logging.getLogger, names)]
    yield
    for lg, level, handlers, propagate in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


@pytest.mark.parametrize(("level", "built"), [("WARNING", False), ("INFO", True)])
@pytest.mark.usefixtures("logging_restored")
def test_access_line_is_built_only_when_it_would_be_written(
        level: str, built: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    config = log_config()
    config["loggers"]["gunicorn.access"]["level"] = level
    cfg = Config()
    cfg.set("logconfig_dict", config)
    logger = AccessLogOnDemand(cfg)
    calls: list[Any] = []
    monkeypatch.setattr(logger, "atoms", lambda *args: calls.append(args) or {})
    logger.access(None, None, {}, None)
    assert bool(calls) is built
