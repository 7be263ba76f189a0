from __future__ import annotations

import json

import pytest

from deneva.mcp.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_MESSAGE_BYTES,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    ErrorObject,
    JsonRpcError,
    Notification,
    Request,
    Response,
    encode,
    error_response,
    parse_message,
    result_response,
)


def parse_error(raw: bytes | str) -> JsonRpcError:
    with pytest.raises(JsonRpcError) as info:
        parse_message(raw)
    return info.value


def test_standard_codes() -> None:
    assert (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR) == (
        -32700,
        -32600,
        -32601,
        -32602,
        -32603,
    )


@pytest.mark.parametrize("id", ["abc", "", 0, 7, -3, 2**70])
def test_request_ids_string_or_integer(id: str | int) -> None:
    msg = parse_message(json.dumps({"jsonrpc": "2.0", "id": id, "method": "ping"}))
    assert msg == Request(id=id, method="ping", params={})


@pytest.mark.parametrize("id", [None, 1.5, 1.0, True, False, [1], {"a": 1}])
def test_bad_request_ids(id: object) -> None:
    err = parse_error(json.dumps({"jsonrpc": "2.0", "id": id, "method": "ping"}))
    assert err.error.code == INVALID_REQUEST
    assert err.id is None


def test_bytes_and_params() -> None:
    msg = parse_message(b'{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"name":"x"}}')
    assert msg == Request(id="r1", method="tools/call", params={"name": "x"})


def test_notification() -> None:
    msg = parse_message('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    assert msg == Notification(method="notifications/initialized")


def test_responses() -> None:
    assert parse_message('{"jsonrpc":"2.0","id":3,"result":{}}') == Response(id=3, result={})
    msg = parse_message('{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"no"}}')
    assert msg == Response(id=None, error=ErrorObject(-1, "no"))


@pytest.mark.parametrize(
    "raw",
    [
        '{"jsonrpc":"2.0","id":3}',
        '{"jsonrpc":"2.0","id":3,"result":{},"error":{"code":1,"message":"x"}}',
        '{"jsonrpc":"2.0","id":3,"result":[]}',
        '{"jsonrpc":"2.0","result":{}}',
        '{"jsonrpc":"2.0","id":3,"error":{"code":"1","message":"x"}}',
        '{"jsonrpc":"2.0","id":3,"error":{"code":true,"message":"x"}}',
        '{"jsonrpc":"2.0","id":3,"error":"boom"}',
        '{"jsonrpc":"2.0","id":1.5,"error":{"code":1,"message":"x"}}',
    ],
)
def test_bad_responses(raw: str) -> None:
    assert parse_error(raw).error.code == INVALID_REQUEST


@pytest.mark.parametrize("raw", ["{", "", "nope", b"\xff\xfe", '{"a": NaN}', "[" * 100_000, "\ud800"])
def test_parse_errors(raw: str | bytes) -> None:
    err = parse_error(raw)
    assert err.error.code == PARSE_ERROR
    assert err.response().to_dict() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": PARSE_ERROR, "message": err.error.message},
    }


def test_batch_rejected() -> None:
    err = parse_error('[{"jsonrpc":"2.0","id":1,"method":"ping"}]')
    assert err.error.code == INVALID_REQUEST
    assert "batch" in err.error.message


@pytest.mark.parametrize("raw", ['"ping"', "1", "null", "true"])
def test_non_object(raw: str) -> None:
    assert parse_error(raw).error.code == INVALID_REQUEST


@pytest.mark.parametrize(
    "obj",
    [
        {"id": 1, "method": "ping"},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": ""},
        {"jsonrpc": "2.0", "id": 1, "method": 5},
    ],
)
def test_invalid_request_keeps_readable_id(obj: dict[str, object]) -> None:
    err = parse_error(json.dumps(obj))
    assert err.error.code == INVALID_REQUEST
    assert err.id == 1


@pytest.mark.parametrize("params", [[1, 2], "x", 3, None])
def test_params_must_be_object(params: object) -> None:
    err = parse_error(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": params}))
    assert err.error.code == INVALID_PARAMS
    assert err.id == 9


def test_size_limit() -> None:
    padding = "x" * MAX_MESSAGE_BYTES
    err = parse_error(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"p": padding}}))
    assert err.error.code == INVALID_REQUEST
    assert str(MAX_MESSAGE_BYTES) in err.error.message
    # Just under the limit is fine.
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"p": ""}})
    fill = "x" * (MAX_MESSAGE_BYTES - len(body))
    ok = body.replace('"p": ""', f'"p": "{fill}"')
    assert len(ok.encode()) == MAX_MESSAGE_BYTES
    assert isinstance(parse_message(ok), Request)


def test_serialisation() -> None:
    assert json.loads(encode(result_response(1, {"a": "é"}))) == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"a": "é"},
    }
    err = error_response("x", METHOD_NOT_FOUND, "Method not found: foo", data={"m": "foo"})
    assert json.loads(encode(err)) == {
        "jsonrpc": "2.0",
        "id": "x",
        "error": {"code": -32601, "message": "Method not found: foo", "data": {"m": "foo"}},
    }
    assert err.is_error
    assert json.loads(encode(Request(id=2, method="ping"))) == {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert json.loads(encode(Notification(method="n", params={"a": 1}))) == {
        "jsonrpc": "2.0",
        "method": "n",
        "params": {"a": 1},
    }
    with pytest.raises(ValueError):
        Response(id=1)
    with pytest.raises(ValueError):
        Response(id=1, result={}, error=ErrorObject(1, "x"))


def test_pre_encoded_members_are_written_once_and_parse_the_same() -> None:
    from deneva.mcp.jsonrpc import PreEncoded, Response, encode
    from deneva.mcp.tools import text_result

    structured = {"data": {"cost": 1.5, "name": 'é "quoted"'}, "cache": "hit"}
    result = text_result(structured)
    assert isinstance(result, PreEncoded)
    wire = encode(Response(id="r1", result=result))
    assert wire.count(b'"cost"') == 1 and wire.count(b"cost") == 2  # once as JSON, once escaped in the text
    parsed = json.loads(wire)
    assert parsed["id"] == "r1" and parsed["result"]["structuredContent"] == structured
    assert json.loads(parsed["result"]["content"][0]["text"]) == structured
    extended = result.with_fields(resultType="complete")
    assert json.loads(encode(Response(id=2, result=extended)))["result"]["resultType"] == "complete"
    only_raw = PreEncoded({"x": [1]}, raw={"x": "[1]"})
    assert json.loads(encode(Response(id=3, result=only_raw))) == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {"x": [1]},
    }
