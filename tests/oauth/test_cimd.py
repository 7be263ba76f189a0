"""Client ID Metadata Documents (daemon/oauth/cimd.py) fetched from a real HTTPS server on
loopback: checked, cached, and every way a document URL can be abused refused before or
while fetching (private and loopback addresses, redirects, size, time, a wrong client_id,
secrets in the document)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from deneva.oauth.cimd import ClientDocuments
from deneva.oauth.model import OAuthError
from tests.http.tls_docs import Answer, TlsServer, json_answer, tls_server

REDIRECT = "http://127.0.0.1:48123/callback"


@pytest.fixture
async def docs(tmp_path: Path) -> AsyncIterator[TlsServer]:
    async with tls_server(tmp_path) as server:
        yield server


def document(server: TlsServer, path: str = "/client.json", **extra: Any) -> dict[str, Any]:
    return {
        "client_id": server.url(path),
        "client_name": "Metadata client",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        **extra,
    }


def resolver(server: TlsServer, **options: Any) -> ClientDocuments:
    return ClientDocuments(allow_loopback=True, ca_file=server.ca_file, **options)


async def refused(documents: ClientDocuments, url: str, needle: str) -> None:
    with pytest.raises(OAuthError) as caught:
        await documents(url)
    assert caught.value.error == "invalid_client" and needle in caught.value.description, (
        caught.value.description
    )


async def test_a_document_is_fetched_checked_and_cached(docs: TlsServer) -> None:
    docs.routes["/client.json"] = json_answer(document(docs), **{"cache-control": "max-age=600"})
    documents = resolver(docs)
    client = await documents(docs.url("/client.json"))
    assert client.client_id == docs.url("/client.json") and client.kind == "cimd"
    assert client.redirect_uris == (REDIRECT,) and client.auth_method == "none"
    assert client.display_name == "Metadata client"
    again = await documents(docs.url("/client.json"))
    assert again == client and docs.hits["/client.json"] == 1 and documents.fetches == 1


async def test_private_loopback_and_reserved_addresses_are_refused_without_a_connection(
    docs: TlsServer,
) -> None:
    docs.routes["/client.json"] = json_answer(document(docs))
    strict = ClientDocuments(ca_file=docs.ca_file)  # the daemon's default: no loopback
    port = docs.base.rsplit(":", 1)[1]
    for url in (
        docs.url("/client.json"),
        f"https://localhost:{port}/client.json",  # a name that resolves to loopback
        f"https://[::1]:{port}/client.json",
        "https://10.1.2.3/client.json",
        "https://192.168.1.20/client.json",
        "https://172.16.0.5/client.json",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata
        "https://100.64.0.1/client.json",  # shared address space
        "https://0.0.0.0/client.json",
        "https://[fd00::1]/client.json",
        "https://[::ffff:10.0.0.1]/client.json",
        "https://224.0.0.1/client.json",
    ):
        await refused(strict, url, "private, loopback or reserved")
    assert docs.hits == {} and strict.fetches == 0


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://example.com/client.json", "https URL"),
        ("https://example.com", "must have a path"),
        ("https://example.com/", "must have a path"),
        ("https://user:pw@example.com/client.json", "userinfo"),
        ("https://example.com/client.json#frag", "fragment"),
        ("https://example.com/a/../client.json", "dot segments"),
        ("https://example.com/" + "a" * 2000, "https URL"),
    ],
)
async def test_malformed_document_urls_are_refused(url: str, needle: str) -> None:
    documents = ClientDocuments()
    await refused(documents, url, needle)
    assert documents.fetches == 0


async def test_redirects_are_not_followed(docs: TlsServer) -> None:
    docs.routes["/moved.json"] = Answer(302, b"", {"location": "https://10.0.0.1/client.json"})
    await refused(resolver(docs), docs.url("/moved.json"), "redirect")
    assert docs.hits == {"/moved.json": 1}


async def test_an_oversized_document_is_refused(docs: TlsServer) -> None:
    big = document(docs, "/big.json", client_name="x" * 100, padding="y" * 20_000)
    docs.routes["/big.json"] = json_answer(big)
    await refused(resolver(docs), docs.url("/big.json"), "larger than 16384 bytes")
    small = resolver(docs, max_bytes=100)
    docs.routes["/client.json"] = json_answer(document(docs))
    await refused(small, docs.url("/client.json"), "larger than 100 bytes")


async def test_a_server_that_does_not_answer_in_time_is_refused(docs: TlsServer) -> None:
    docs.routes["/slow.json"] = Answer(hang=True)
    documents = resolver(docs, timeout_s=0.5)
    with trio.fail_after(5):
        await refused(documents, docs.url("/slow.json"), "not fetched within 0.5 s")


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"client_id": "https://other.example/client.json"}, "own URL"),
        ({"redirect_uris": ["https://evil.example/cb#x"]}, "fragment"),
        ({"redirect_uris": []}, "redirect_uris"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "token_endpoint_auth_method"),
        ({"client_secret": "s3cret"}, "client secret"),
        ({"grant_types": ["implicit"]}, "grant_types"),
    ],
)
async def test_a_bad_document_is_refused(docs: TlsServer, change: dict[str, Any], needle: str) -> None:
    docs.routes["/client.json"] = json_answer({**document(docs), **change})
    await refused(resolver(docs), docs.url("/client.json"), needle)


async def test_not_json_or_not_found_is_refused_and_the_failure_is_cached(docs: TlsServer) -> None:
    docs.routes["/junk.json"] = Answer(200, b"<html>not json</html>", {"content-type": "text/html"})
    documents = resolver(docs)
    await refused(documents, docs.url("/junk.json"), "not JSON")
    await refused(documents, docs.url("/junk.json"), "not JSON")
    assert docs.hits["/junk.json"] == 1  # the second refusal came from the cache
    await refused(documents, docs.url("/missing.json"), "HTTP 404")


async def test_a_certificate_the_daemon_does_not_trust_is_refused(docs: TlsServer) -> None:
    docs.routes["/client.json"] = json_answer(document(docs))
    await refused(ClientDocuments(allow_loopback=True), docs.url("/client.json"), "could not be fetched")
