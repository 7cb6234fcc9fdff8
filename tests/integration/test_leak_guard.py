"""The leak guard itself: it must find a value that was said, or it proves nothing."""

from __future__ import annotations

import json
import logging

from azure.keyvault.secrets import SecretClient

from tests.support.leaks import CapturingHandler, Said, leaks, secret_material


def test_guard_finds_a_password_inside_a_json_value_when_it_is_logged(kv: SecretClient) -> None:
    kv.set_secret("guarded", json.dumps({"username": "u", "password": "Leaky-Passw0rd-123"}),
                  content_type="application/json")
    material = secret_material(kv)
    assert "Leaky-Passw0rd-123" in material

    handler = CapturingHandler()
    logger = logging.getLogger("rotation.leak-demo")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("harmless line", extra={"secret": "guarded"})
        assert leaks(Said(log_lines=handler.lines), material) == []
        logger.info("oops", extra={"detail": "pw was Leaky-Passw0rd-123"})
        assert leaks(Said(log_lines=handler.lines), material) == ["Leak..."]
    finally:
        logger.removeHandler(handler)


def test_guard_searches_http_bodies_too(kv: SecretClient) -> None:
    kv.set_secret("guarded-body", "Plain-Secret-Value-456")
    said = Said(log_lines=[], http_bodies=['{"value": "Plain-Secret-Value-456"}'])
    assert leaks(said, secret_material(kv)) == ["Plai..."]


def test_a_field_named_password_is_redacted_by_the_formatter() -> None:
    handler = CapturingHandler()
    record = logging.LogRecord("rotation.x", logging.INFO, __file__, 1, "msg", None, None)
    record.password = "Never-Rendered-789"
    handler.emit(record)
    assert "Never-Rendered-789" not in handler.lines[0]
    assert json.loads(handler.lines[0])["password"] == "<redacted>"
