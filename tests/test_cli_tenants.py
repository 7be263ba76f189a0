"""`deneva tenant` and `deneva key`: the key is printed once and never again."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli_engine import _cli


def test_tenant_and_key_lifecycle(tmp_path: Path, database_url: str) -> None:
    added = _cli(tmp_path, database_url, "tenant", "add", "acme", "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["name"] == "acme"
    assert [
        t["name"] for t in json.loads(_cli(tmp_path, database_url, "tenant", "list", "--json").stdout)
    ] == ["acme"]
    created = json.loads(_cli(tmp_path, database_url, "key", "create", "--tenant", "acme", "--json").stdout)
    assert created["key"].startswith("dnv_" + created["prefix"])
    listing = _cli(tmp_path, database_url, "key", "list", "--json").stdout
    assert created["key"] not in listing and json.loads(listing)[0]["revokedAt"] is None
    revoked = _cli(tmp_path, database_url, "key", "revoke", created["prefix"])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert json.loads(_cli(tmp_path, database_url, "key", "list", "--json").stdout)[0]["revokedAt"]


def test_tenant_and_key_bad_input(tmp_path: Path, database_url: str) -> None:
    for args, message in [
        (("tenant", "add"), "give a NAME"),
        (("tenant", "add", "Not OK"), "tenant name 'Not OK'"),
        (("key", "create"), "give --tenant NAME"),
        (("key", "create", "--tenant", "ghost"), "no tenant named 'ghost'"),
        (("key", "revoke", "feedbeef"), "no API key with prefix 'feedbeef'"),
    ]:
        result = _cli(tmp_path, database_url, *args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
