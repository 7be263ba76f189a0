"""Random input to every endpoint of the authorization server, and random bearer
credentials on /mcp (hypothesis, over real HTTP): whatever the parameters, the answer is
never a 500, and junk grants nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deneva.db import Database
from deneva.oauth import store
from tests.http.oauth_fixtures import OAuthTestServer, oauth_test_server
from tests.mcp.oauth_flow import REDIRECT_URI, pkce

NAMES = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
    "grant_type",
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
    "client_secret",
    "csrf",
    "action",
    "connect_code",
    "admin_token",
    "tenant",
)


def _values(client_id: str, challenge: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            [
                client_id,
                challenge,
                REDIRECT_URI,
                "code",
                "S256",
                "plain",
                "authorization_code",
                "refresh_token",
                "reports:read",
                "approve",
                "deny",
                "sign_in",
                "approve_operator",
                "dnv_ac_0123456789abcdef_" + "a" * 43,
                "dnv_rt_0123456789abcdef_" + "a" * 43,
                "https://10.0.0.1/client.json",
                "javascript:alert(1)",
                "\x00",
                "x" * 5000,
            ]
        ),
    )


@pytest.fixture
async def srv(db: Database) -> AsyncIterator[OAuthTestServer]:
    async with oauth_test_server(db) as running:
        yield running


async def test_random_requests_never_get_a_500_and_grant_nothing(srv: OAuthTestServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        registered = await http.post(
            f"{srv.base}/register",
            json={"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"},
        )
        client_id = registered.json()["client_id"]
        _, challenge = pkce()
        statuses: dict[int, int] = {}

        async def send(
            endpoint: str, params: list[tuple[str, str]], as_json: bool, basic: str | None
        ) -> None:
            headers = {} if basic is None else {"authorization": f"Basic {basic}"}
            if endpoint == "POST /mcp":  # a random bearer credential
                token = "".join(v for _, v in params)[:8000]
                call = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "tools/call",
                    "params": {"name": "whoami", "arguments": {}},
                }
                try:
                    answer = await http.post(srv.url, json=call, headers={"authorization": f"Bearer {token}"})
                except httpx.LocalProtocolError:
                    return  # not sendable as a header at all
                assert answer.status_code in (400, 401), (token, answer.status_code)
            elif endpoint == "GET /authorize":
                answer = await http.get(f"{srv.base}/authorize?{urlencode(params)}", headers=headers)
            elif endpoint == "POST /register" and as_json:
                body: Any = {k: v for k, v in params}
                if params and params[0][0] == "redirect_uris":
                    body["redirect_uris"] = [v for _, v in params]
                answer = await http.post(f"{srv.base}/register", content=json.dumps(body), headers=headers)
            else:
                path = endpoint.split(" ", 1)[1]
                form = {**headers, "content-type": "application/x-www-form-urlencoded"}
                answer = await http.post(f"{srv.base}{path}", content=urlencode(params), headers=form)
            assert answer.status_code < 500, (endpoint, params, answer.status_code, answer.text[:500])
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        endpoints = st.sampled_from(
            ["GET /authorize", "POST /authorize", "POST /token", "POST /revoke", "POST /register"]
        )
        pairs = st.lists(
            st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=10)), _values(client_id, challenge)),
            max_size=10,
        )

        @settings(
            max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
        )
        @given(
            endpoint=endpoints,
            params=pairs,
            as_json=st.booleans(),
            basic=st.one_of(
                st.none(),
                st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20),
                st.just("ZG52X2NsaWVudF94OnNlY3JldA=="),
            ),
        )
        def never_500(endpoint: str, params: list[tuple[str, str]], as_json: bool, basic: str | None) -> None:
            trio.from_thread.run(send, endpoint, params, as_json, basic)

        await trio.to_thread.run_sync(never_500)
    assert sum(statuses.values()) <= 300 and set(statuses) - {500}
    assert await srv.db.run(lambda conn: store.list_grants(conn)) == []
