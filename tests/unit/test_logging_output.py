"""Log lines from structlog and from stdlib loggers both render, redacted, through one handler."""

from __future__ import annotations

import logging

import pytest

from connector.infra.logs import configure_logging, get_logger


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_structlog_and_stdlib_records_render_redacted(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", fmt)
    try:
        get_logger("connector.test").info("worker started", owner="w1", api_key="ck_0123456789ab_secret")
        logging.getLogger("tests.stdlib").info('"POST /webhooks/abc?token=%s HTTP/1.1" 202', "s3cr3t-token")
        err = capsys.readouterr().err
    finally:
        logging.getLogger().handlers[:] = []
    assert "Logging error" not in err
    assert "worker started" in err and "w1" in err
    assert "ck_0123456789ab_secret" not in err
    assert "s3cr3t-token" not in err and "/webhooks/abc" in err
