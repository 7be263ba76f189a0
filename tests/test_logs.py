"""Logging: JSON lines for machines, readable lines for people, secrets never shown."""

from __future__ import annotations

import io
import json
import logging

import pytest

from deneva.logs import register_secret, setup_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_context_fields() -> None:
    out = io.StringIO()
    setup_logging("json", "info", stream=out)
    logging.getLogger("deneva.test").info("actor crashed", extra={"actor": "heartbeat", "restarts": 2})
    entry = json.loads(out.getvalue())
    assert entry["msg"] == "actor crashed" and entry["level"] == "info" and entry["logger"] == "deneva.test"
    assert entry["actor"] == "heartbeat" and entry["restarts"] == 2
    assert entry["ts"].endswith("Z")


def test_text_lines_are_readable() -> None:
    out = io.StringIO()
    setup_logging("text", "info", stream=out)
    logging.getLogger("deneva.test").warning("listen connection lost", extra={"retry_s": 0.5})
    line = out.getvalue().strip()
    assert "WARNING" in line and "deneva.test: listen connection lost" in line and "retry_s=0.5" in line


def test_auto_picks_json_when_not_a_terminal() -> None:
    out = io.StringIO()
    setup_logging("auto", "info", stream=out)
    logging.getLogger("deneva.test").info("hello")
    assert json.loads(out.getvalue())["msg"] == "hello"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secrets_are_redacted_everywhere(fmt: str) -> None:
    secret = "tok_9f8e7d6c5b4a3210"
    register_secret(secret)
    out = io.StringIO()
    setup_logging(fmt, "debug", stream=out)
    log = logging.getLogger("deneva.test")
    log.info("token is %s", secret, extra={"header": f"Bearer {secret}"})
    try:
        raise ValueError(f"bad token {secret}")
    except ValueError:
        log.exception("failed")
    text = out.getvalue()
    assert secret not in text
    assert "[redacted]" in text
