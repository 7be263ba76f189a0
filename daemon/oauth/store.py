"""The authorization server's rows (migration 0011), each statement a named file in sql/queries.

Every function takes a connection inside the caller's transaction. Revocations send
`NOTIFY deneva_oauth_grants` with the grant's id in that transaction, so every daemon's
token cache (`deneva.mcp.auth.KeyCache`) forgets the grant's tokens once it commits.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from deneva.db import Connection
from deneva.oauth.model import Client
from deneva.sql import query

GRANTS_CHANNEL = "deneva_oauth_grants"


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _client(row: Any) -> Client:
    return Client(
        row["client_id"],
        row["kind"],
        row["client_name"],
        tuple(row["redirect_uris"]),
        row["auth_method"],
        None if row["secret_hash"] is None else bytes(row["secret_hash"]),
        row["metadata"],
        row["revoked_at"] is not None,
    )


async def save_client(conn: Connection, client: Client) -> bool:
    """Insert a client, or refresh a metadata document's copy; False if it was revoked."""
    saved = await conn.fetchval(
        query("oauth_client_upsert"),
        client.client_id,
        client.kind,
        client.client_name,
        list(client.redirect_uris),
        client.auth_method,
        client.secret_hash,
        client.metadata,
    )
    return saved is not None


async def get_client(conn: Connection, client_id: str) -> Client | None:
    row = await conn.fetchrow(query("oauth_client_get"), client_id)
    return None if row is None else _client(row)


async def list_clients(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(query("oauth_clients_list"))
    return [
        {
            "clientId": r["client_id"],
            "kind": r["kind"],
            "clientName": r["client_name"],
            "redirectUris": list(r["redirect_uris"]),
            "authMethod": r["auth_method"],
            "createdAt": r["created_at"].isoformat(),
            "revokedAt": None if r["revoked_at"] is None else r["revoked_at"].isoformat(),
            "activeGrants": r["active_grants"],
        }
        for r in rows
    ]


async def audit(
    conn: Connection, tenant_id: uuid.UUID | None, event: str, actor: str, details: dict[str, Any]
) -> None:
    await conn.execute(query("oauth_audit"), tenant_id, event, actor, details)


async def revoke_client(conn: Connection, client_id: str, now: float, actor: str) -> list[str] | None:
    """Revoke a client and every grant it holds; the grants' ids, None for an unknown client."""
    if await conn.fetchval(query("oauth_client_revoke"), client_id, at(now)) is None:
        return None
    grants = await conn.fetch(query("oauth_grants_revoke_of_client"), client_id, at(now), "client revoked")
    for grant in grants:
        await conn.execute(query("oauth_notify"), str(grant["id"]))
    await audit(conn, None, "oauth.client_revoked", actor, {"clientId": client_id, "grants": len(grants)})
    return [str(g["id"]) for g in grants]


async def insert_connect_code(
    conn: Connection, code_hash: bytes, tenant_id: uuid.UUID, expires: float
) -> None:
    await conn.execute(query("oauth_connect_code_insert"), code_hash, tenant_id, at(expires))


async def redeem_connect_code(conn: Connection, code_hash: bytes, now: float) -> uuid.UUID | None:
    tenant: uuid.UUID | None = await conn.fetchval(query("oauth_connect_code_redeem"), code_hash, at(now))
    return tenant


async def insert_grant(
    conn: Connection, tenant_id: uuid.UUID, client_id: str, scope: str, resource: str, granted_by: str
) -> uuid.UUID:
    grant: uuid.UUID = await conn.fetchval(
        query("oauth_grant_insert"), tenant_id, client_id, scope, resource, granted_by
    )
    await audit(
        conn,
        tenant_id,
        "oauth.granted",
        granted_by,
        {"grantId": str(grant), "clientId": client_id, "scope": scope, "resource": resource},
    )
    return grant


async def revoke_grant(conn: Connection, grant_id: uuid.UUID, now: float, reason: str, actor: str) -> bool:
    row = await conn.fetchrow(query("oauth_grant_revoke"), grant_id, at(now), reason)
    if row is None:
        return False
    await conn.execute(query("oauth_notify"), str(grant_id))
    await audit(
        conn, row["tenant_id"], "oauth.grant_revoked", actor, {"grantId": str(grant_id), "reason": reason}
    )
    return True


async def list_grants(conn: Connection, tenant: str | None = None) -> list[dict[str, Any]]:
    rows = await conn.fetch(query("oauth_grants_list"), tenant)
    return [
        {
            "grantId": str(r["id"]),
            "tenant": r["tenant"],
            "clientId": r["client_id"],
            "clientName": r["client_name"],
            "scope": r["scope"],
            "resource": r["resource"],
            "grantedBy": r["granted_by"],
            "createdAt": r["created_at"].isoformat(),
            "revokedAt": None if r["revoked_at"] is None else r["revoked_at"].isoformat(),
            "revokedReason": r["revoked_reason"],
        }
        for r in rows
    ]


async def insert_code(
    conn: Connection,
    ident: str,
    code_hash: bytes,
    grant_id: uuid.UUID,
    redirect_uri: str,
    challenge: str,
    expires: float,
) -> None:
    await conn.execute(
        query("oauth_code_insert"), ident, code_hash, grant_id, redirect_uri, challenge, at(expires)
    )


async def lock_code(conn: Connection, ident: str) -> Any:
    return await conn.fetchrow(query("oauth_code_lock"), ident)


async def mark_code_used(conn: Connection, ident: str, now: float) -> None:
    await conn.execute(query("oauth_code_mark_used"), ident, at(now))


async def insert_token(
    conn: Connection, ident: str, kind: str, token_hash: bytes, grant_id: uuid.UUID, expires: float
) -> None:
    await conn.execute(query("oauth_token_insert"), ident, kind, token_hash, grant_id, at(expires))


async def lookup_token(conn: Connection, ident: str) -> Any:
    return await conn.fetchrow(query("oauth_token_lookup"), ident)


async def lock_token(conn: Connection, ident: str) -> Any:
    return await conn.fetchrow(query("oauth_token_lock"), ident)


async def mark_token_used(conn: Connection, ident: str, now: float) -> None:
    await conn.execute(query("oauth_token_mark_used"), ident, at(now))


async def revoke_token(conn: Connection, ident: str, grant_id: uuid.UUID, now: float) -> None:
    await conn.execute(query("oauth_token_revoke"), ident, at(now))
    await conn.execute(query("oauth_notify"), str(grant_id))
