"""JSON-RPC 2.0 for MCP: parse one untrusted message, build and serialise replies.

MCP sends one JSON-RPC message at a time (revision 2025-06-18 removed batching), so
a JSON array is rejected as an invalid request. Request ids are strings or integers;
MCP forbids null, and floats and booleans are refused too. Params, when present, must
be an object (MCP never uses positional params).
"""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import attrs

JSONRPC_VERSION = "2.0"
# The largest message accepted, in UTF-8 bytes.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

RequestId: TypeAlias = str | int
JsonObject: TypeAlias = dict[str, Any]


@attrs.frozen
class ErrorObject:
    code: int
    message: str
    data: Any = None

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"code": self.code, "message": self.message}
        if self.data is not None:
            out["data"] = self.data
        return out


class JsonRpcError(Exception):
    """A message could not be accepted; `id` is the request id when it was readable."""

    def __init__(self, code: int, message: str, id: RequestId | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.error = ErrorObject(code, message, data)
        self.id = id

    def response(self) -> Response:
        return Response(id=self.id, error=self.error)


@attrs.frozen
class Request:
    id: RequestId
    method: str
    params: JsonObject = attrs.field(factory=dict)


@attrs.frozen
class Notification:
    method: str
    params: JsonObject = attrs.field(factory=dict)


@attrs.frozen
class Response:
    """A result or an error reply. `id` is None only for errors about unreadable requests."""

    id: RequestId | None
    result: JsonObject | None = None
    error: ErrorObject | None = None

    def __attrs_post_init__(self) -> None:
        if (self.result is None) == (self.error is None):
            raise ValueError("a response has exactly one of result and error")

    @property
    def is_error(self) -> bool:
        return self.error is not None

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"jsonrpc": JSONRPC_VERSION, "id": self.id}
        if self.error is not None:
            out["error"] = self.error.to_dict()
        else:
            out["result"] = self.result
        return out


Message: TypeAlias = Request | Notification | Response


def result_response(id: RequestId, result: JsonObject) -> Response:
    return Response(id=id, result=result)


def error_response(id: RequestId | None, code: int, message: str, data: Any = None) -> Response:
    return Response(id=id, error=ErrorObject(code, message, data))


class PreEncoded(dict[str, Any]):
    """A JSON object some of whose members are already encoded: `raw[key]` is the JSON
    text of `self[key]`, written as is by `encode` (a tool result's structuredContent is
    serialised once for its text content, not twice)."""

    def __init__(self, *args: Any, raw: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw: dict[str, str] = dict(raw or {})

    def with_fields(self, **fields: Any) -> PreEncoded:
        out = PreEncoded(self, raw=self.raw)
        out.update(fields)
        return out


class RawJson(str):
    """JSON text written as is where it stands as a member of a tool's structured result
    (a cached report that Postgres already serialised: see tools.text_result)."""

    __slots__ = ()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encode_pre(id: RequestId | None, result: PreEncoded) -> bytes:
    plain = _dumps({k: v for k, v in result.items() if k not in result.raw})
    spliced = "".join(f",{_dumps(k)}:{text}" for k, text in result.raw.items() if k in result)
    body = plain[:-1] + spliced + "}" if plain != "{}" else "{" + spliced[1:] + "}"
    return f'{{"jsonrpc":"2.0","id":{_dumps(id)},"result":{body}}}'.encode()


def encode(message: Response | Request | Notification | JsonObject) -> bytes:
    """Compact UTF-8 JSON for one message."""
    if isinstance(message, Response) and isinstance(message.result, PreEncoded):
        return _encode_pre(message.id, message.result)
    if isinstance(message, Response):
        obj: JsonObject = message.to_dict()
    elif isinstance(message, Request):
        obj = {"jsonrpc": JSONRPC_VERSION, "id": message.id, "method": message.method}
        if message.params:
            obj["params"] = message.params
    elif isinstance(message, Notification):
        obj = {"jsonrpc": JSONRPC_VERSION, "method": message.method}
        if message.params:
            obj["params"] = message.params
    else:
        obj = message
    return _dumps(obj).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _is_valid_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def parse_message(raw: bytes | str) -> Message:
    """Parse one JSON-RPC 2.0 message; raise JsonRpcError with the code to answer."""
    if isinstance(raw, str):
        try:
            data = raw.encode()
        except UnicodeEncodeError:
            raise JsonRpcError(PARSE_ERROR, "Parse error: message is not valid UTF-8") from None
    else:
        data = raw
    if len(data) > MAX_MESSAGE_BYTES:
        raise JsonRpcError(
            INVALID_REQUEST, f"Invalid request: message is larger than the limit of {MAX_MESSAGE_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        # UnicodeDecodeError and JSONDecodeError are ValueErrors.
        raise JsonRpcError(PARSE_ERROR, "Parse error: message is not valid JSON") from None
    return _from_object(obj)


def _from_object(obj: object) -> Message:
    if isinstance(obj, list):
        raise JsonRpcError(INVALID_REQUEST, "Invalid request: batches (JSON arrays) are not supported")
    if not isinstance(obj, dict):
        raise JsonRpcError(INVALID_REQUEST, "Invalid request: a message must be a JSON object")
    raw_id = obj.get("id")
    id: RequestId | None = raw_id if _is_valid_id(raw_id) else None
    if obj.get("jsonrpc") != JSONRPC_VERSION:
        raise JsonRpcError(INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"', id)
    if "method" in obj:
        return _request_or_notification(obj, id)
    return _response(obj, id)


def _request_or_notification(obj: JsonObject, id: RequestId | None) -> Request | Notification:
    method = obj["method"]
    if not isinstance(method, str) or not method:
        raise JsonRpcError(INVALID_REQUEST, 'Invalid request: "method" must be a non-empty string', id)
    if "id" in obj and id is None:
        raise JsonRpcError(INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer')
    params = obj.get("params", {})
    if not isinstance(params, dict):
        raise JsonRpcError(INVALID_PARAMS, 'Invalid params: "params" must be an object', id)
    if id is None:
        return Notification(method=method, params=params)
    return Request(id=id, method=method, params=params)


def _response(obj: JsonObject, id: RequestId | None) -> Response:
    has_result, has_error = "result" in obj, "error" in obj
    if has_result == has_error:
        raise JsonRpcError(
            INVALID_REQUEST,
            'Invalid request: a message needs "method", or exactly one of "result" and "error"',
            id,
        )
    if has_result:
        if id is None:
            raise JsonRpcError(INVALID_REQUEST, 'Invalid request: "id" must be a string or an integer')
        result = obj["result"]
        if not isinstance(result, dict):
            raise JsonRpcError(INVALID_REQUEST, 'Invalid request: "result" must be an object', id)
        return Response(id=id, result=result)
    if obj.get("id") is not None and id is None:
        raise JsonRpcError(INVALID_REQUEST, 'Invalid request: "id" must be a string, an integer or null')
    error = obj["error"]
    if (
        not isinstance(error, dict)
        or not isinstance(error.get("code"), int)
        or isinstance(error.get("code"), bool)
        or not isinstance(error.get("message"), str)
    ):
        raise JsonRpcError(
            INVALID_REQUEST,
            'Invalid request: "error" must be an object with integer "code" and string "message"',
            id,
        )
    return Response(id=id, error=ErrorObject(error["code"], error["message"], error.get("data")))
