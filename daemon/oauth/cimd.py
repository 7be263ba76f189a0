"""Client ID Metadata Documents: a client id that is an https URL names a JSON document,
served by the client, with its RFC 7591 metadata (`client_id` equal to that URL).

Fetching a URL a stranger chose is a server-side request forgery risk, so:
- only `https://` URLs with a path, no userinfo, no fragment, at most 2000 characters;
- the host is resolved first and every address must be a public (global) one: private,
  loopback, link-local (cloud metadata at 169.254.169.254), multicast and reserved
  ranges are refused (loopback only when `allow_loopback`, for tests); the connection
  then goes to the address that was checked (the name is kept for TLS and `Host`), so a
  DNS answer that changes between check and use cannot move it;
- no redirects are followed; the answer must be 200 JSON of at most `max_bytes`, within
  `timeout_s` all told;
- the document is checked like a registration (`check_client_metadata`, auth method
  `none`, no secret) and cached per its `Cache-Control: max-age` (between 5 minutes and
  a day; an hour without one). Failures are cached for a minute, so one bad URL cannot
  make the daemon fetch it in a loop.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import ssl
from pathlib import Path

import attrs
import httpx
import trio

from deneva.oauth.model import Client, OAuthError
from deneva.oauth.server import check_client_metadata

log = logging.getLogger("deneva.oauth.cimd")

MAX_BYTES = 16 * 1024
TIMEOUT_S = 5.0
DEFAULT_TTL_S = 3600.0
MIN_TTL_S = 300.0
MAX_TTL_S = 86400.0
FAILURE_TTL_S = 60.0
MAX_CACHED = 1000
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _refused(description: str) -> OAuthError:
    return OAuthError("invalid_client", f"client metadata document: {description}", 401)


@attrs.frozen
class _Cached:
    client: Client | None
    error: OAuthError | None
    until: float  # trio time


def address_allowed(address: IpAddress, allow_loopback: bool) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return allow_loopback
    return address.is_global and not address.is_multicast


class ClientDocuments:
    """`await documents(url)`: the checked client the document at `url` describes."""

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        ca_file: Path | None = None,
        max_bytes: int = MAX_BYTES,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.allow_loopback = allow_loopback
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._tls = ssl.create_default_context()
        if ca_file is not None:
            self._tls.load_verify_locations(cafile=str(ca_file))
        self._cache: dict[str, _Cached] = {}
        self.fetches = 0

    async def __call__(self, url: str) -> Client:
        now = trio.current_time()
        cached = self._cache.get(url)
        if cached is not None and now < cached.until:
            if cached.client is None:
                assert cached.error is not None
                raise cached.error
            return cached.client
        try:
            client, ttl = await self._fetch(url)
        except OAuthError as exc:
            log.info("client metadata document refused", extra={"url": url[:200], "reason": exc.description})
            self._store(url, _Cached(None, exc, trio.current_time() + FAILURE_TTL_S))
            raise
        self._store(url, _Cached(client, None, trio.current_time() + ttl))
        return client

    def _store(self, url: str, entry: _Cached) -> None:
        if len(self._cache) >= MAX_CACHED:
            self._cache.pop(next(iter(self._cache)))
        self._cache[url] = entry

    async def _fetch(self, url: str) -> tuple[Client, float]:
        host, port, target = _split(url)
        address = await self._checked_address(host, port)
        self.fetches += 1
        pinned = f"https://{address if address.version == 4 else f'[{address}]'}:{port}{target}"
        host_header = host if port == 443 else f"{host}:{port}"
        try:
            with trio.fail_after(self.timeout_s):
                async with (
                    httpx.AsyncClient(
                        verify=self._tls, follow_redirects=False, timeout=self.timeout_s
                    ) as http,
                    http.stream(
                        "GET",
                        pinned,
                        headers={"host": host_header, "accept": "application/json"},
                        extensions={"sni_hostname": host},
                    ) as response,
                ):
                    if 300 <= response.status_code < 400:
                        raise _refused("the server answered with a redirect, which is not followed")
                    if response.status_code != 200:
                        raise _refused(f"the server answered HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                        raise _refused(f"larger than {self.max_bytes} bytes")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise _refused(f"larger than {self.max_bytes} bytes")
                    cache_control = response.headers.get("cache-control", "")
        except trio.TooSlowError:
            raise _refused(f"not fetched within {self.timeout_s:g} s") from None
        except httpx.HTTPError as exc:
            raise _refused(f"could not be fetched ({type(exc).__name__})") from None
        try:
            document = json.loads(bytes(body))
        except (ValueError, UnicodeDecodeError):
            raise _refused("not JSON") from None
        if not isinstance(document, dict) or document.get("client_id") != url:
            raise _refused("its client_id must be the document's own URL")
        try:
            client = check_client_metadata(document, client_id=url, kind="cimd")
        except OAuthError as exc:
            raise _refused(exc.description) from None
        return client, _ttl(cache_control)

    async def _checked_address(self, host: str, port: int) -> IpAddress:
        try:
            literal: IpAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                with trio.fail_after(self.timeout_s):
                    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
            except (OSError, trio.TooSlowError):
                raise _refused("its host name does not resolve") from None
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise _refused("its host name does not resolve")
        for address in addresses:
            if not address_allowed(address, self.allow_loopback):
                raise _refused("its host is a private, loopback or reserved address")
        return addresses[0]


def _split(url: str) -> tuple[str, int, str]:
    """(host, port, path and query) of an acceptable document URL; OAuthError otherwise."""
    if len(url) > 2000 or not url.isprintable() or not url.startswith("https://"):
        raise _refused("the client id must be an https URL")
    try:
        parts = httpx.URL(url)
    except httpx.InvalidURL:
        raise _refused("the client id is not a valid URL") from None
    if parts.userinfo or parts.fragment or "#" in url or not parts.host:
        raise _refused("the URL must not have userinfo or a fragment")
    raw_path = url[len("https://") :].partition("/")[2].split("?")[0]
    segments = raw_path.split("/")
    if parts.path in ("", "/") or "." in segments or ".." in segments:
        raise _refused("the URL must have a path (and no dot segments)")
    port = parts.port or 443
    target = parts.raw_path.decode("ascii")
    return parts.host, port, target


def _ttl(cache_control: str) -> float:
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_TTL_S
    return min(MAX_TTL_S, max(MIN_TTL_S, float(match[1])))
