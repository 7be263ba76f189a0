"""A small HTTPS server on loopback for Client ID Metadata Documents (and an OIDC issuer):
a test CA made with `cryptography`, a certificate for 127.0.0.1 and localhost, hypercorn
serving whatever answers the test puts in `routes`."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve


@attrs.define
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=lambda: {"content-type": "application/json"})
    hang: bool = False  # never answer (a slow server)


def json_answer(value: Any, **headers: str) -> Answer:
    return Answer(200, json.dumps(value).encode(), {"content-type": "application/json", **headers})


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) files for 127.0.0.1 and localhost."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("deneva test CA"))
        .issuer_name(_name("deneva test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_file, cert_file, key_file


@attrs.define
class TlsServer:
    base: str  # https://127.0.0.1:PORT
    ca_file: Path
    routes: dict[str, Answer | Callable[[], Awaitable[Answer]]]
    hits: dict[str, int] = attrs.field(factory=dict)

    def url(self, path: str) -> str:
        return self.base + path


@asynccontextmanager
async def tls_server(directory: Path, *, tls: bool = True) -> AsyncIterator[TlsServer]:
    """The server; with `tls=False` plain HTTP (a native client's loopback callback)."""
    ca_file, cert_file, key_file = make_certificates(directory)
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    if tls:
        config.certfile = str(cert_file)
        config.keyfile = str(key_file)
    config.accesslog = None
    config.graceful_timeout = 0.5
    routes: dict[str, Answer | Callable[[], Awaitable[Answer]]] = {}
    hits: dict[str, int] = {}
    forever = trio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        hits[path] = hits.get(path, 0) + 1
        route = routes.get(path)
        answer = (
            Answer(404, b'{"error": "not found"}')
            if route is None
            else route
            if isinstance(route, Answer)
            else await route()
        )
        if answer.hang:
            await forever.wait()
        headers = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(app, config, task_status=task_status)  # type: ignore[arg-type]
        )
        port = binds[0].rsplit(":", 1)[1]
        yield TlsServer(f"{'https' if tls else 'http'}://127.0.0.1:{port}", ca_file, routes, hits)
        nursery.cancel_scope.cancel()
