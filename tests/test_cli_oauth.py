"""`deneva oauth`: a tenant's connect code (printed once, stored hashed), and the built-in
authorization server's clients and grants, listed and revoked, in text and `--json`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio

from deneva.clock import SystemClock
from deneva.db import Database
from deneva.oauth.model import hash_secret, normalize_connect_code
from deneva.oauth.server import AuthorizationServer
from tests.test_cli_engine import _cli


def test_connect_codes_clients_and_grants(tmp_path: Path, database_url: str, app_url: str) -> None:
    assert _cli(tmp_path, database_url, "tenant", "add", "acme").returncode == 0
    made = _cli(tmp_path, database_url, "oauth", "code", "--tenant", "acme", "--json")
    assert made.returncode == 0, made.stderr
    code = json.loads(made.stdout)
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code["code"]) and code["tenant"] == "acme"
    text = _cli(tmp_path, database_url, "oauth", "code", "--tenant", "acme")
    assert text.returncode == 0 and "single use" in text.stdout
    assert json.loads(_cli(tmp_path, database_url, "oauth", "clients", "--json").stdout) == []
    assert "no OAuth grants" in _cli(tmp_path, database_url, "oauth", "grants", "list").stdout

    async def grant() -> tuple[str, bool]:
        db = await Database.open(app_url)
        try:
            server = AuthorizationServer(db, SystemClock())
            registered = await server.register(
                {"client_name": "Claude", "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"]}
            )
            tenant = await server.redeem_connect_code(code["code"])
            assert tenant is not None
            request = await server.check_authorization(
                {
                    "response_type": "code",
                    "client_id": registered.client.client_id,
                    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    "code_challenge_method": "S256",
                },
                "https://deneva.example/mcp",
            )
            await server.approve(request, tenant, "connect-code")
            # The code is stored hashed only.
            stored = await db.fetchval(
                "SELECT count(*) FROM oauth_connect_codes WHERE code_hash = $1",
                hash_secret(normalize_connect_code(code["code"]) or ""),
            )
            return registered.client.client_id, stored == 1
        finally:
            await db.close()

    client_id, hashed = trio.run(grant)
    assert hashed
    clients = json.loads(_cli(tmp_path, database_url, "oauth", "clients", "list", "--json").stdout)
    assert [(c["clientId"], c["clientName"], c["activeGrants"]) for c in clients] == [
        (client_id, "Claude", 1)
    ]
    [listed] = json.loads(
        _cli(tmp_path, database_url, "oauth", "grants", "list", "--tenant", "acme", "--json").stdout
    )
    assert listed["scope"] == "reports:read reports:refresh" and listed["revokedAt"] is None
    assert (
        json.loads(_cli(tmp_path, database_url, "oauth", "grants", "--tenant", "ghost", "--json").stdout)
        == []
    )
    revoked = _cli(tmp_path, database_url, "oauth", "grants", "revoke", listed["grantId"], "--json")
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked"] is True
    [after] = json.loads(_cli(tmp_path, database_url, "oauth", "grants", "--json").stdout)
    assert after["revokedAt"] is not None and after["revokedReason"] == "revoked by the operator"
    gone = _cli(tmp_path, database_url, "oauth", "clients", "revoke", client_id)
    assert gone.returncode == 0 and f"revoked client {client_id}" in gone.stdout
    [client] = json.loads(_cli(tmp_path, database_url, "oauth", "clients", "--json").stdout)
    assert client["revokedAt"] is not None


def test_oauth_bad_input(tmp_path: Path, database_url: str) -> None:
    for args, message in [
        (("oauth", "code"), "give --tenant NAME"),
        (("oauth", "code", "--tenant", "ghost"), "no tenant named 'ghost'"),
        (("oauth", "grants", "revoke"), "give a GRANT_ID"),
        (("oauth", "grants", "revoke", "not-a-uuid"), "give a GRANT_ID"),
        (("oauth", "grants", "revoke", "00000000-0000-0000-0000-000000000000"), "no OAuth grant"),
        (("oauth", "clients", "revoke"), "give the CLIENT_ID"),
        (("oauth", "clients", "revoke", "dnv_client_nope"), "no OAuth client 'dnv_client_nope'"),
    ]:
        result = _cli(tmp_path, database_url, *args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
