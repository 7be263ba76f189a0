"""MCP tools: a registry, `tools/list`, `tools/call`, and a small JSON-Schema validator.

Per the tools spec (2025-06-18, 2025-11-25): an unknown tool is a protocol error
(JSON-RPC -32602), while bad arguments and failures inside a tool are tool execution
errors (`isError: true`) so the model can read the message and correct itself.

The validator covers the subset deneva's schemas use: `type` (object, array, string,
integer, number, boolean), `properties`, `required`, `additionalProperties: false`,
`items`, `enum`, `minimum`/`maximum`, `minLength`/`maxLength`, `pattern` and `default`.
A `pattern` must be anchored (^...$) and the whole string must match it (Python's `$`
alone would also match before a final newline), which is what a client's JSON Schema
search of an anchored pattern means too.
A schema using any other constraint is refused when the tool is registered, so a
constraint is never silently unenforced.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import attrs

from deneva.mcp.jsonrpc import INVALID_PARAMS, JsonObject, JsonRpcError, PreEncoded, RawJson, RequestId

log = logging.getLogger(__name__)

GENERIC_FAILURE = "The tool failed unexpectedly. Try again later."
MAX_NAME_SHOWN = 64  # of an unknown tool's name, quoted back in the error

_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "default",
    }
)
_ANNOTATIONS = frozenset({"description", "title", "examples", "$schema", "$comment"})
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})


# progress(done, total, message): report progress of a long call; the transport turns it
# into `notifications/progress` when the client asked for it (a `_meta.progressToken`).
ProgressFn = Callable[[float, "float | None", "str | None"], Awaitable[None]]


@attrs.frozen
class ToolContext:
    """Who is calling: handlers scope every read to `tenant_id`."""

    tenant_id: str
    session_id: str | None = None
    request_id: RequestId | None = None
    progress: ProgressFn | None = attrs.field(default=None, eq=False, repr=False)


Handler = Callable[[JsonObject, ToolContext], Awaitable[JsonObject]]


class ToolError(Exception):
    """Raised by a handler for a failure whose message is safe and useful to show the model."""


class SchemaError(ValueError):
    """A tool's schema uses something the built-in validator does not support."""


class ArgumentError(ValueError):
    """Arguments do not match the input schema; the message names the argument."""


def check_schema(schema: object, where: str = "schema") -> None:
    """Refuse schemas outside the supported subset."""
    if not isinstance(schema, dict):
        raise SchemaError(f"{where} must be an object")
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise SchemaError(f"{where} uses unsupported keywords: {', '.join(sorted(unknown))}")
    kind = schema.get("type")
    if kind not in _TYPES:
        raise SchemaError(f"{where} needs a type among {', '.join(sorted(_TYPES))}")
    if not isinstance(schema.get("additionalProperties", True), bool):
        raise SchemaError(f"{where}: additionalProperties must be a boolean")
    if not isinstance(schema.get("properties", {}), dict):
        raise SchemaError(f"{where}: properties must be an object")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise SchemaError(f"{where}: enum must be a non-empty list")
    if "pattern" in schema:
        pattern = schema["pattern"]
        try:
            re.compile(pattern)
        except (TypeError, re.error):
            raise SchemaError(f"{where}: pattern must be a valid regular expression") from None
        if not (pattern.startswith("^") and pattern.endswith("$")):
            raise SchemaError(f"{where}: pattern must be anchored with ^ and $")
    for name, sub in schema.get("properties", {}).items():
        check_schema(sub, f"{where}.properties.{name}")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    required = schema.get("required", [])
    if not isinstance(required, list) or not set(required) <= set(schema.get("properties", {})):
        raise SchemaError(f"{where}: required names must be declared properties")


def _label(path: str) -> str:
    return f"argument '{path}'" if path else "arguments"


def validate(schema: JsonObject, value: Any, path: str = "") -> Any:
    """Return `value` with defaults filled in, or raise ArgumentError naming the bad argument."""
    kind = schema["type"]
    if kind == "object":
        if not isinstance(value, dict):
            raise ArgumentError(f"{_label(path)} must be an object")
        properties: JsonObject = schema.get("properties", {})
        out: JsonObject = {}
        for name in schema.get("required", []):
            if name not in value:
                raise ArgumentError(f"missing required argument '{_join(path, name)}'")
        if schema.get("additionalProperties", True) is False:
            for name in value:
                if name not in properties:
                    allowed = ", ".join(sorted(properties)) or "none"
                    raise ArgumentError(f"unknown argument '{_join(path, name)}' (accepted: {allowed})")
        for name, sub in properties.items():
            if name in value:
                out[name] = validate(sub, value[name], _join(path, name))
            elif "default" in sub:
                out[name] = sub["default"]
        for name in value:
            if name not in properties:
                out[name] = value[name]
        return out
    if kind == "array":
        if not isinstance(value, list):
            raise ArgumentError(f"{_label(path)} must be an array")
        items = schema.get("items")
        return [validate(items, v, f"{path}[{i}]") if items else v for i, v in enumerate(value)]
    if kind == "string":
        if not isinstance(value, str):
            raise ArgumentError(f"{_label(path)} must be a string")
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise ArgumentError(f"{_label(path)} must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ArgumentError(f"{_label(path)} must be at most {schema['maxLength']} characters")
        if "pattern" in schema and re.fullmatch(schema["pattern"], value) is None:
            raise ArgumentError(f"{_label(path)} must match the pattern {schema['pattern']}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ArgumentError(f"{_label(path)} must be a boolean")
    else:  # integer or number
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ArgumentError(f"{_label(path)} must be {'an integer' if kind == 'integer' else 'a number'}")
        if kind == "integer" and isinstance(value, float):
            if not value.is_integer():
                raise ArgumentError(f"{_label(path)} must be an integer")
            value = int(value)
        if "minimum" in schema and value < schema["minimum"]:
            raise ArgumentError(f"{_label(path)} must be >= {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ArgumentError(f"{_label(path)} must be <= {schema['maximum']}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(v) for v in schema["enum"])
        raise ArgumentError(f"{_label(path)} must be one of {choices}")
    return value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _shown(name: str) -> str:
    """A name the client sent, to quote in an error: as is when short and printable, else
    escaped and cut to MAX_NAME_SHOWN characters."""
    if len(name) <= MAX_NAME_SHOWN and name.isprintable():
        return name
    escaped = json.dumps(name[:MAX_NAME_SHOWN])[1:-1]
    return escaped + ("..." if len(name) > MAX_NAME_SHOWN else "")


@attrs.frozen
class ToolAnnotations:
    """Hints about a tool's behaviour for clients (MCP `ToolAnnotations`): deneva's tools
    read and never change an ad account; `open_world` when a call may reach a platform."""

    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = True
    title: str | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = {} if self.title is None else {"title": self.title}
        out.update(
            readOnlyHint=self.read_only,
            destructiveHint=self.destructive,
            idempotentHint=self.idempotent,
            openWorldHint=self.open_world,
        )
        return out


@attrs.frozen
class Tool:
    name: str
    description: str
    input_schema: JsonObject
    output_schema: JsonObject | None
    handler: Handler = attrs.field(eq=False, repr=False)
    # May wait a long time (refresh_report with wait): a client hanging up should cancel it.
    # Other calls are short and finish even if their client is gone.
    waits: bool = attrs.field(default=False, kw_only=True)
    annotations: ToolAnnotations = attrs.field(factory=ToolAnnotations, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not self.name:
            raise SchemaError("a tool needs a name")
        check_schema(self.input_schema, f"{self.name}.inputSchema")
        if self.input_schema["type"] != "object":
            raise SchemaError(f"{self.name}.inputSchema must have type object")
        if self.output_schema is not None and self.output_schema.get("type") != "object":
            raise SchemaError(f"{self.name}.outputSchema must have type object")

    def describe(self) -> JsonObject:
        out: JsonObject = {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }
        if self.output_schema is not None:
            out["outputSchema"] = self.output_schema
        out["annotations"] = self.annotations.to_json()
        return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)


def structured_text(structured: JsonObject) -> str:
    """Compact JSON for a structured result; RawJson members go in as they are."""
    if not any(isinstance(value, RawJson) for value in structured.values()):
        return _dumps(structured)
    members = (
        f"{_dumps(name)}:{value if isinstance(value, RawJson) else _dumps(value)}"
        for name, value in structured.items()
    )
    return "{" + ",".join(members) + "}"


def text_result(structured: JsonObject) -> JsonObject:
    """structuredContent plus the same JSON as text, serialised once (see PreEncoded)."""
    text = structured_text(structured)
    return PreEncoded(
        {"content": [{"type": "text", "text": text}], "structuredContent": structured, "isError": False},
        raw={"structuredContent": text},
    )


def error_result(message: str) -> JsonObject:
    return {"content": [{"type": "text", "text": message}], "isError": True}


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def may_wait(self, name: object) -> bool:
        tool = self._tools.get(name) if isinstance(name, str) else None
        return tool is None or tool.waits

    def list_tools(self) -> JsonObject:
        """The `tools/list` result (one page: deneva has a handful of tools)."""
        return {"tools": [tool.describe() for tool in self._tools.values()]}

    async def call_tool(self, name: str, arguments: JsonObject, ctx: ToolContext) -> JsonObject:
        """The `tools/call` result; JsonRpcError(-32602) only for an unknown tool."""
        tool = self._tools.get(name)
        if tool is None:
            raise JsonRpcError(INVALID_PARAMS, f"Unknown tool: {_shown(name)}", ctx.request_id)
        try:
            args = validate(tool.input_schema, arguments)
        except ArgumentError as exc:
            return error_result(f"Invalid arguments for tool {name}: {exc}")
        try:
            result = await tool.handler(args, ctx)
        except ToolError as exc:
            return error_result(str(exc))
        except Exception:
            log.exception("MCP tool %s failed (tenant %s)", name, ctx.tenant_id)
            return error_result(GENERIC_FAILURE)
        if not isinstance(result, dict):
            log.error("MCP tool %s returned %s, not an object", name, type(result).__name__)
            return error_result(GENERIC_FAILURE)
        return text_result(result)
