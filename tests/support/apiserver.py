"""An API server answering from a table, for the webhook's clients of it without a cluster.

:class:`AnsweringApiServer` is a :class:`webhook.apiserver.ApiServer` whose
GETs are answered from ``answers`` (path -> (status, body), or an exception to
raise) and recorded with their query and timeout, so a test checks what a
Lease source, holder source or probe asked, and with which of its section's
settings. Other methods are recorded with their body and answered
``write_status`` (the body sent back).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.apiserver import ApiServer

Answer = tuple[int, Any] | Exception


@dataclass(frozen=True)
class Call:
    path: str
    timeout: float
    query: Mapping[str, str] | None = None
    method: str = "GET"
    body: Any = None


class AnsweringApiServer(ApiServer):
    """GETs answered from a table (an unknown path: 404); nothing is sent anywhere."""

    def __init__(self, answers: Mapping[str, Answer] | None = None, write_status: int = 200) -> None:
        # No ApiClient: there is nothing to reach.
        self.answers = dict(answers or {})
        self.write_status = write_status
        self.calls: list[Call] = []
        self.closed = False

    def get_json(self, path: str, *, timeout: float, query: dict[str, str] | None = None) -> tuple[int, Any]:
        self.calls.append(Call(path, timeout, query))
        answer = self.answers.get(path, (404, {"kind": "Status", "code": 404}))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def request_json(self, method: str, path: str, *, timeout: float, body: Any = None,
                     query: dict[str, str] | None = None,
                     content_type: str = "application/json") -> tuple[int, Any]:
        if method == "GET":
            return self.get_json(path, timeout=timeout, query=query)
        self.calls.append(Call(path, timeout, query, method, body))
        return self.write_status, body

    def status(self, path: str, *, timeout: float) -> int:
        return self.get_json(path, timeout=timeout)[0]

    def close(self) -> None:
        self.closed = True
