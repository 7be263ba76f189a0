from __future__ import annotations

import pytest

from deneva.mcp.jsonrpc import INVALID_PARAMS, JsonRpcError
from deneva.mcp.protocol import (
    INSTRUCTIONS,
    LATEST_VERSION,
    SUPPORTED_VERSIONS,
    allowed_before_initialize,
    initialize_result,
    negotiate_version,
    parse_initialize_params,
    ping_result,
)


def test_versions() -> None:
    assert SUPPORTED_VERSIONS == ("2025-06-18", "2025-11-25")
    assert LATEST_VERSION == "2025-11-25"


@pytest.mark.parametrize(
    ("asked", "answer"),
    [
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("2099-01-01", "2025-11-25"),
        (None, "2025-11-25"),
        (5, "2025-11-25"),
    ],
)
def test_negotiate(asked: object, answer: str) -> None:
    assert negotiate_version(asked) == answer


def test_initialize_result() -> None:
    assert initialize_result("2025-06-18", "1.2.3") == {
        "protocolVersion": "2025-06-18",
        "capabilities": {"tools": {"listChanged": False}},
        "serverInfo": {"name": "deneva", "version": "1.2.3"},
        "instructions": INSTRUCTIONS,
    }


def test_parse_initialize_params() -> None:
    p = parse_initialize_params({"protocolVersion": "2025-06-18", "clientInfo": {"name": "c"}}, 1)
    assert (p.protocol_version, p.capabilities, p.client_info) == ("2025-06-18", {}, {"name": "c"})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "protocolVersion"),
        ({"protocolVersion": 3}, "protocolVersion"),
        ({"protocolVersion": "2025-06-18", "capabilities": []}, "capabilities"),
        ({"protocolVersion": "2025-06-18", "clientInfo": "x"}, "clientInfo"),
    ],
)
def test_bad_initialize_params(params: dict[str, object], field: str) -> None:
    with pytest.raises(JsonRpcError) as info:
        parse_initialize_params(params, 4)
    assert info.value.error.code == INVALID_PARAMS
    assert field in info.value.error.message
    assert info.value.id == 4


def test_lifecycle_rule() -> None:
    assert allowed_before_initialize("initialize")
    assert allowed_before_initialize("ping")
    assert not allowed_before_initialize("tools/list")
    assert not allowed_before_initialize("tools/call")
    assert ping_result() == {}
