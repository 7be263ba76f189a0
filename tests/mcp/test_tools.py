from __future__ import annotations

import json
from typing import Any

import pytest

from deneva.mcp.jsonrpc import INVALID_PARAMS, JsonRpcError
from deneva.mcp.tools import (
    GENERIC_FAILURE,
    MAX_NAME_SHOWN,
    ArgumentError,
    SchemaError,
    Tool,
    ToolContext,
    ToolError,
    ToolRegistry,
    check_schema,
    validate,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "platform": {"type": "string", "enum": ["google", "meta"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 90, "default": 7},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "wait": {"type": "boolean", "default": False},
        "name": {"type": "string", "minLength": 2, "maxLength": 4},
        "range": {
            "type": "object",
            "properties": {"start": {"type": "string"}, "end": {"type": "string"}},
            "required": ["start"],
            "additionalProperties": False,
        },
        "ids": {"type": "array", "items": {"type": "integer"}},
        "code": {"type": "string", "pattern": "^[0-9]{1,4}$|^x$"},
    },
    "required": ["platform"],
    "additionalProperties": False,
}

CTX = ToolContext(tenant_id="t1", session_id="s1", request_id=1)


def test_valid_fills_defaults() -> None:
    assert validate(SCHEMA, {"platform": "google"}) == {"platform": "google", "days": 7, "wait": False}
    out = validate(
        SCHEMA,
        {
            "platform": "meta",
            "days": 30.0,
            "ratio": 0.5,
            "wait": True,
            "range": {"start": "a"},
            "ids": [1, 2],
        },
    )
    assert out == {
        "platform": "meta",
        "days": 30,
        "ratio": 0.5,
        "wait": True,
        "range": {"start": "a"},
        "ids": [1, 2],
    }
    assert isinstance(out["days"], int)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({}, "missing required argument 'platform'"),
        ({"platform": "tiktok"}, 'argument \'platform\' must be one of "google", "meta"'),
        ({"platform": 3}, "argument 'platform' must be a string"),
        ({"platform": "google", "days": 0}, "argument 'days' must be >= 1"),
        ({"platform": "google", "days": 91}, "argument 'days' must be <= 90"),
        ({"platform": "google", "days": 1.5}, "argument 'days' must be an integer"),
        ({"platform": "google", "days": True}, "argument 'days' must be an integer"),
        ({"platform": "google", "days": "7"}, "argument 'days' must be an integer"),
        ({"platform": "google", "ratio": "x"}, "argument 'ratio' must be a number"),
        ({"platform": "google", "ratio": False}, "argument 'ratio' must be a number"),
        ({"platform": "google", "ratio": 1.5}, "argument 'ratio' must be <= 1"),
        ({"platform": "google", "wait": 1}, "argument 'wait' must be a boolean"),
        ({"platform": "google", "name": "x"}, "argument 'name' must be at least 2"),
        ({"platform": "google", "name": "xxxxx"}, "argument 'name' must be at most 4"),
        ({"platform": "google", "extra": 1}, "unknown argument 'extra'"),
        ({"platform": "google", "range": {}}, "missing required argument 'range.start'"),
        ({"platform": "google", "range": {"start": "a", "x": 1}}, "unknown argument 'range.x'"),
        ({"platform": "google", "range": "2024"}, "argument 'range' must be an object"),
        ({"platform": "google", "ids": 1}, "argument 'ids' must be an array"),
        ({"platform": "google", "ids": [1, "a"]}, "argument 'ids[1]' must be an integer"),
        ({"platform": "google", "code": "12a"}, "argument 'code' must match the pattern ^[0-9]{1,4}$|^x$"),
        ({"platform": "google", "code": "12\n"}, "argument 'code' must match the pattern"),  # not before a \n
        ({"platform": "google", "code": "1\x002"}, "argument 'code' must match the pattern"),
        ({"platform": "google", "code": "xx"}, "argument 'code' must match the pattern"),
    ],
)
def test_invalid(args: dict[str, Any], needle: str) -> None:
    with pytest.raises(ArgumentError) as info:
        validate(SCHEMA, args)
    assert needle in str(info.value)


def test_an_anchored_pattern_is_supported_and_a_string_matching_it_valid() -> None:
    check_schema(SCHEMA)
    assert validate(SCHEMA, {"platform": "google", "code": "0042"})["code"] == "0042"
    assert validate(SCHEMA, {"platform": "google", "code": "x"})["code"] == "x"


def test_not_an_object() -> None:
    with pytest.raises(ArgumentError, match="arguments must be an object"):
        validate(SCHEMA, [1])


def test_additional_allowed_by_default() -> None:
    assert validate({"type": "object"}, {"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    "schema",
    [
        [],
        {"properties": {}},
        {"type": "null"},
        {"type": "string", "pattern": "^a"},  # not anchored at the end
        {"type": "string", "pattern": "a$"},  # nor at the start
        {"type": "string", "pattern": "^(a$"},
        {"type": "string", "pattern": 3},
        {"type": "object", "properties": {"a": {"type": "string", "format": "date"}}},
        {"type": "object", "additionalProperties": {"type": "string"}},
        {"type": "object", "properties": []},
        {"type": "string", "enum": []},
        {"type": "object", "properties": {}, "required": ["x"]},
        {"type": "array", "items": {"type": "weird"}},
    ],
)
def test_unsupported_schemas_refused(schema: Any) -> None:
    with pytest.raises(SchemaError):
        check_schema(schema)


async def echo(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"args": args, "tenant": ctx.tenant_id}


async def boom(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    raise RuntimeError("secret connection string postgres://x")


async def refuse(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    raise ToolError("report not ready yet")


async def not_a_dict(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return [1]  # type: ignore[return-value]


def make_registry() -> ToolRegistry:
    out = {"type": "object", "properties": {"args": {"type": "object"}}}
    return ToolRegistry(
        [
            Tool("echo", "Echo the arguments.", SCHEMA, out, echo),
            Tool("boom", "Fails.", {"type": "object"}, None, boom),
            Tool("refuse", "Refuses.", {"type": "object"}, None, refuse),
            Tool("bad", "Returns a list.", {"type": "object"}, None, not_a_dict),
        ]
    )


def test_list_tools_is_sorted_by_name_whatever_the_registration_order() -> None:
    tools = make_registry().list_tools()["tools"]
    assert [t["name"] for t in tools] == ["bad", "boom", "echo", "refuse"]
    shuffled = ToolRegistry(
        [Tool(name, name, {"type": "object"}, None, echo) for name in ("zeta", "alpha", "mid", "beta")]
    )
    assert [t["name"] for t in shuffled.list_tools()["tools"]] == ["alpha", "beta", "mid", "zeta"]
    assert tools[2] == {
        "name": "echo",
        "description": "Echo the arguments.",
        "inputSchema": SCHEMA,
        "outputSchema": {"type": "object", "properties": {"args": {"type": "object"}}},
    }  # no title or hints given: none listed
    assert "outputSchema" not in tools[1]
    assert "annotations" not in tools[1] and "title" not in tools[1]


def test_a_tools_title_and_hints_are_listed_as_annotations_and_bad_hints_refused() -> None:
    tool = Tool(
        "t", "d", {"type": "object"}, None, echo, title="A title", hints={"readOnlyHint": True}, scope="x:y"
    )
    described = ToolRegistry([tool]).list_tools()["tools"][0]
    assert described["title"] == "A title"
    assert described["annotations"] == {"title": "A title", "readOnlyHint": True}
    assert ToolRegistry([tool]).scope_of("t") == "x:y" and ToolRegistry([tool]).scope_of("nope") is None
    with pytest.raises(SchemaError, match="hints"):
        Tool("t", "d", {"type": "object"}, None, echo, hints={"readOnly": True})
    with pytest.raises(SchemaError, match="hints"):
        Tool("t", "d", {"type": "object"}, None, echo, hints={"readOnlyHint": "yes"})  # type: ignore[dict-item]


def test_registry_rules() -> None:
    reg = make_registry()
    assert "echo" in reg
    with pytest.raises(ValueError, match="already registered"):
        reg.register(Tool("echo", "again", {"type": "object"}, None, echo))
    with pytest.raises(SchemaError):
        Tool("s", "string input", {"type": "string"}, None, echo)
    with pytest.raises(SchemaError):
        Tool("o", "bad output", {"type": "object"}, {"type": "string"}, echo)
    with pytest.raises(SchemaError):
        Tool("", "no name", {"type": "object"}, None, echo)


async def test_call_ok() -> None:
    result = await make_registry().call_tool("echo", {"platform": "google"}, CTX)
    structured = {"args": {"platform": "google", "days": 7, "wait": False}, "tenant": "t1"}
    assert result == {
        "content": [{"type": "text", "text": json.dumps(structured, separators=(",", ":"))}],
        "structuredContent": structured,
        "isError": False,
    }


async def test_call_bad_arguments_is_tool_error() -> None:
    result = await make_registry().call_tool("echo", {"platform": "google", "days": 0}, CTX)
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "echo" in text and "'days'" in text
    assert "structuredContent" not in result


async def test_call_unknown_tool_is_protocol_error() -> None:
    with pytest.raises(JsonRpcError) as info:
        await make_registry().call_tool("nope", {}, ToolContext("t1", "s1", 5))
    assert info.value.error.code == INVALID_PARAMS
    assert info.value.error.message == "Unknown tool: nope"
    assert info.value.id == 5


async def test_an_unknown_tools_name_is_quoted_back_escaped_and_cut() -> None:
    with pytest.raises(JsonRpcError) as info:
        await make_registry().call_tool("get_\x00" + "x" * 100_000, {}, CTX)
    message = info.value.error.message
    assert message == "Unknown tool: get_\\u0000" + "x" * (MAX_NAME_SHOWN - 5) + "..."
    with pytest.raises(JsonRpcError) as info:
        await make_registry().call_tool("bad\nname", {}, CTX)
    assert info.value.error.message == "Unknown tool: bad\\nname"


async def test_call_handler_exception_is_generic() -> None:
    reg = make_registry()
    result = await reg.call_tool("boom", {}, CTX)
    assert result == {"content": [{"type": "text", "text": GENERIC_FAILURE}], "isError": True}
    assert "postgres" not in json.dumps(result)
    assert (await reg.call_tool("bad", {}, CTX))["isError"] is True


async def test_call_tool_error_message_shown() -> None:
    result = await make_registry().call_tool("refuse", {}, CTX)
    assert result == {"content": [{"type": "text", "text": "report not ready yet"}], "isError": True}
