"""Structured logging (JSON or console) with secrets redacted before anything is written.

Three leaks are closed here: httpx logs full request URLs at INFO (API keys in query strings),
an access line prints the query string (webhook `?token=`), and any log call may carry a
credential-looking key.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE_KEYS = re.compile(
    r"(pass(word)?|secret|token|api_?key|apikey|authorization|private_?key|credential|cookie)", re.I
)
QUERY_SECRET = re.compile(
    r"([?&](?:token|apikey|api_key|key|secret|password|access_token|code)=)[^&\s\"']+", re.I
)
BEARER = re.compile(r"(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I)
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    return BEARER.sub(r"\1 " + REDACTED, QUERY_SECRET.sub(r"\1" + REDACTED, text))


def _redact_value(key: str, value: Any) -> Any:
    if SENSITIVE_KEYS.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    return value


def redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key == "event":
            event[key] = redact_text(str(event[key]))
        else:
            event[key] = _redact_value(key, event[key])
    return event


class _RedactingFilter(logging.Filter):
    """Applies the same redaction to records from stdlib loggers (uvicorn, httpx, alembic)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):  # a structlog event: `redact_event` already ran on it
            return True
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        record.msg = redact_text(str(record.msg))
        return True


def configure_logging(level: str = "INFO", fmt: str = "console") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_event,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx/httpcore log every URL at INFO/DEBUG; vendor keys can sit in query strings.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers[:] = []
        uv.propagate = True
    # The app writes the access log itself (`connector.infra.access`: failures in full, successes
    # summarised); a logger without handlers is how uvicorn, also when run as `uvicorn --factory`,
    # is told to skip its own line per request.
    access = logging.getLogger("uvicorn.access")
    access.handlers[:] = []
    access.propagate = False


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
