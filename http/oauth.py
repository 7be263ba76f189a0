"""MCP authorization over HTTP: protected resource metadata (RFC 9728), and the built-in
authorization server's endpoints (`deneva.oauth.server` does the work).

- `GET /.well-known/oauth-protected-resource[/mcp]`: the resource (this daemon's MCP
  URL), its authorization server (this daemon, or the configured external issuer), the
  scopes.
- `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata (built-in server).
- `POST /register`: RFC 7591 Dynamic Client Registration.
- `GET /authorize`: the consent page (Jinja2, autoescaped): the client's name, the host
  it sends you back to, the scopes; a tenant's connect code or the operator's admin
  token says who grants. `POST /authorize`: the decision, behind a CSRF token (a
  cookie and a form field that must match). Errors about the client or its redirect URI
  are shown on a page, never redirected (no open redirect); the others go back to the
  registered redirect URI with `state` and `iss` (RFC 9207). Every page forbids framing
  (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`).
- `POST /token`: authorization_code and refresh_token grants (`no-store`).
- `POST /revoke`: RFC 7009.

Bad input gets the RFC's error (JSON `{error, error_description}`), never a 500; the
log names the client and the error, never a token, code or secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import jinja2
from quart import Blueprint, Response, jsonify, request
from werkzeug.datastructures import MultiDict

from deneva.errors import DatabaseError
from deneva.http.mcp import HostPolicy
from deneva.oauth.model import SCOPES, AuthorizationRequest, OAuthError
from deneva.oauth.resource import MCP_PATH, METADATA_PATH, ProtectedResource
from deneva.oauth.server import (
    AuthorizationServer,
    ClientCredentials,
    RedirectError,
)
from deneva.secrets import Secret

log = logging.getLogger("deneva.http.oauth")

CSRF_COOKIE = "deneva_csrf"
OPERATOR_COOKIE = "deneva_operator"
OPERATOR_TTL_S = 15 * 60
MAX_FORM_FIELD = 4096
REQUEST_FIELDS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)
SCOPE_TEXT = {
    "reports:read": "read the cached ad reports and the sync status of the tenant's accounts",
    "reports:refresh": "ask for a report to be refreshed from the ad platform now",
}
PAGE_HEADERS = {
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "cache-control": "no-store",
    "pragma": "no-cache",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)


def _page(name: str, status: int = 200, **values: Any) -> Response:
    body = _templates.get_template(name).render(**values)
    return Response(body, status=status, content_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def _oauth_error(exc: OAuthError, extra: dict[str, str] | None = None) -> Any:
    response = jsonify(exc.as_json())
    response.status_code = exc.status
    response.headers.update({**NO_STORE, **(extra or {})})
    return response


def with_query(uri: str, params: dict[str, str | None]) -> str:
    """`uri` with `params` appended to its query (the URI's own query kept, RFC 6749 §3.1.2)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{uri}{'&' if urlsplit(uri).query else '?'}{query}"


def _single(values: MultiDict[str, str], names: tuple[str, ...] | None = None) -> dict[str, str]:
    """The parameters, each at most once (RFC 6749 §3.1) and bounded; OAuthError otherwise."""
    out: dict[str, str] = {}
    for name in values:
        if names is not None and name not in names:
            continue
        listed = values.getlist(name)
        if len(listed) > 1:
            raise OAuthError("invalid_request", f"parameter {name} given more than once")
        if len(listed[0]) > MAX_FORM_FIELD:
            raise OAuthError("invalid_request", f"parameter {name} is too long")
        out[name] = listed[0]
    return out


def _client_credentials(form: dict[str, str]) -> ClientCredentials:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "only HTTP Basic client authentication is accepted", 401)
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "malformed Basic credentials", 401)
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        return ClientCredentials(unquote(client_id), unquote(secret), "client_secret_basic")
    posted = form.get("client_secret")
    return ClientCredentials(
        form.get("client_id"), posted, "none" if posted is None else "client_secret_post"
    )


class OperatorSessions:
    """The operator's sign-in on the authorize page: a cookie `expiry.mac`, the MAC keyed by
    the admin token, so it stops working when the token changes."""

    def __init__(self, admin_token: Secret) -> None:
        self._token = admin_token.reveal().encode()
        self._key = hashlib.sha256(b"deneva operator session\0" + self._token).digest()

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def issue(self, now: float) -> str:
        expiry = str(int(now + OPERATOR_TTL_S))
        return f"{expiry}.{hmac.new(self._key, expiry.encode(), 'sha256').hexdigest()}"

    def valid(self, cookie: str | None, now: float) -> bool:
        if not cookie or "." not in cookie:
            return False
        expiry, mac = cookie.split(".", 1)
        expected = hmac.new(self._key, expiry.encode(), "sha256").hexdigest()
        return hmac.compare_digest(mac, expected) and expiry.isdigit() and int(expiry) > now


def oauth_blueprint(
    protected: ProtectedResource,
    server: AuthorizationServer | None,
    policy: HostPolicy,
    admin_token: Secret | None = None,
) -> Blueprint:
    """Protected resource metadata; with `server`, the built-in authorization server too."""
    blueprint = Blueprint("oauth", __name__)
    operators = None if admin_token is None else OperatorSessions(admin_token)

    @blueprint.before_request
    async def check_host() -> Any:
        if not policy.host_ok(request.headers.get("host")):
            return jsonify({"error": "misdirected request: this server does not answer for that Host"}), 421
        return None

    def base() -> str:
        return protected.base_url(request.scheme, request.headers.get("host"))

    def unavailable() -> Any:
        response = jsonify(
            {"error": "temporarily_unavailable", "error_description": "the database is unavailable"}
        )
        response.status_code = 503
        response.headers.update({**NO_STORE, "retry-after": "5"})
        return response

    async def resource_metadata() -> Any:
        root = base()
        body = {
            "resource": protected.resource(root),
            "authorization_servers": [protected.issuer(root)],
            "scopes_supported": list(SCOPES),
            "bearer_methods_supported": ["header"],
            "resource_name": "deneva",
        }
        return jsonify(body)

    blueprint.add_url_rule(METADATA_PATH, "resource_metadata", resource_metadata, methods=["GET"])
    blueprint.add_url_rule(
        METADATA_PATH + MCP_PATH, "resource_metadata_mcp", resource_metadata, methods=["GET"]
    )
    if server is None:
        return blueprint

    @blueprint.get("/.well-known/oauth-authorization-server")
    async def authorization_server_metadata() -> Any:
        root = base()
        return jsonify(
            {
                "issuer": protected.issuer(root),
                "authorization_endpoint": f"{root}/authorize",
                "token_endpoint": f"{root}/token",
                "registration_endpoint": f"{root}/register",
                "revocation_endpoint": f"{root}/revoke",
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "none",
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "revocation_endpoint_auth_methods_supported": [
                    "none",
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "authorization_response_iss_parameter_supported": True,
                "client_id_metadata_document_supported": server.resolve_document is not None,
            }
        )

    @blueprint.post("/register")
    async def register() -> Any:
        metadata = await request.get_json(force=True, silent=True)
        try:
            registered = await server.register(metadata)
        except OAuthError as exc:
            log.info("OAuth registration refused", extra={"error": exc.error})
            return _oauth_error(exc)
        except DatabaseError:
            return unavailable()
        response = jsonify(registered.as_json(time.time()))
        response.status_code = 201
        response.headers.update(NO_STORE)
        return response

    def redirect(uri: str, params: dict[str, str | None]) -> Response:
        response = Response("", status=302, headers={**PAGE_HEADERS, "location": with_query(uri, params)})
        return response

    def redirect_error(exc: RedirectError) -> Response:
        log.info("OAuth authorization refused", extra={"error": exc.error})
        return redirect(
            exc.redirect_uri,
            {
                "error": exc.error,
                "error_description": exc.description,
                "state": exc.state,
                "iss": protected.issuer(base()),
            },
        )

    def error_page(exc: OAuthError, status: int = 400) -> Response:
        log.info("OAuth authorization refused", extra={"error": exc.error})
        return _page("oauth_error.html", status, error=exc.error, description=exc.description)

    def consent_page(
        checked: AuthorizationRequest,
        params: dict[str, str],
        csrf: str,
        *,
        problem: str | None = None,
        operator: bool = False,
        tenant_names: list[str] | None = None,
        status: int = 200,
    ) -> Response:
        response = _page(
            "authorize.html",
            status,
            client_name=checked.client.display_name,
            redirect_host=urlsplit(checked.redirect_uri).netloc or checked.redirect_uri,
            scopes=[(s, SCOPE_TEXT[s]) for s in checked.scope],
            request_fields=[(n, params[n]) for n in REQUEST_FIELDS if n in params],
            csrf=csrf,
            action="/authorize",
            problem=problem,
            operator=operator,
            tenants=tenant_names or [],
        )
        response.set_cookie(
            CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="Strict",
            path="/authorize",
            secure=request.scheme == "https",
        )
        return response

    async def checked_request(params: dict[str, str]) -> AuthorizationRequest:
        return await server.check_authorization(params, protected.resource(base()))

    @blueprint.get("/authorize")
    async def authorize_page() -> Any:
        try:
            params = _single(request.args)
            checked = await checked_request(params)
        except RedirectError as exc:
            return redirect_error(exc)
        except OAuthError as exc:
            return error_page(exc)
        except DatabaseError:
            return unavailable()
        return consent_page(checked, params, secrets.token_urlsafe(32))

    @blueprint.post("/authorize")
    async def authorize_decision() -> Any:
        form = await request.form
        try:
            fields = _single(form)
            params = {n: fields[n] for n in REQUEST_FIELDS if n in fields}
            cookie = request.cookies.get(CSRF_COOKIE, "")
            given = fields.get("csrf", "")
            if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
                return error_page(
                    OAuthError(
                        "invalid_request", "the form is stale or was not sent from this page; start again"
                    ),
                    403,
                )
            checked = await checked_request(params)
            action = fields.get("action")
            now = time.time()
            if action == "deny":
                exc = RedirectError(
                    "access_denied", "the request was denied", checked.redirect_uri, checked.state
                )
                return redirect_error(exc)
            if action == "approve":
                tenant_id = await server.redeem_connect_code(fields.get("connect_code"))
                if tenant_id is None:
                    log.info(
                        "OAuth consent refused: bad connect code",
                        extra={"client_id": checked.client.client_id},
                    )
                    return consent_page(
                        checked,
                        params,
                        cookie,
                        problem="That connect code is not valid, expired or used.",
                        status=400,
                    )
                granted_by = "connect-code"
            elif action in ("sign_in", "approve_operator") and operators is not None:
                signed_in = operators.valid(request.cookies.get(OPERATOR_COOKIE), now)
                if action == "sign_in":
                    if not operators.token_ok(fields.get("admin_token", "")):
                        log.info(
                            "OAuth operator sign-in refused", extra={"client_id": checked.client.client_id}
                        )
                        return consent_page(
                            checked, params, cookie, problem="That admin token is wrong.", status=403
                        )
                    page = consent_page(
                        checked, params, cookie, operator=True, tenant_names=await server.tenant_names()
                    )
                    page.set_cookie(
                        OPERATOR_COOKIE,
                        operators.issue(now),
                        max_age=OPERATOR_TTL_S,
                        httponly=True,
                        samesite="Strict",
                        path="/authorize",
                        secure=request.scheme == "https",
                    )
                    return page
                if not signed_in:
                    return consent_page(
                        checked, params, cookie, problem="Sign in as the operator again.", status=403
                    )
                found = await server.tenant_id(fields.get("tenant", ""))
                if found is None:
                    return consent_page(
                        checked,
                        params,
                        cookie,
                        operator=True,
                        tenant_names=await server.tenant_names(),
                        problem="Choose a tenant from the list.",
                        status=400,
                    )
                tenant_id = found
                granted_by = "operator"
            else:
                return error_page(OAuthError("invalid_request", "unknown action"))
            code = await server.approve(checked, tenant_id, granted_by)
        except RedirectError as exc:
            return redirect_error(exc)
        except OAuthError as exc:
            return error_page(exc)
        except DatabaseError:
            return unavailable()
        response = redirect(
            checked.redirect_uri, {"code": code, "state": checked.state, "iss": protected.issuer(base())}
        )
        response.delete_cookie(CSRF_COOKIE, path="/authorize")
        return response

    @blueprint.post("/token")
    async def token() -> Any:
        form = await request.form
        try:
            fields = _single(form)
            credentials = _client_credentials(fields)
            grant_type = fields.get("grant_type")
            resource = protected.resource(base())
            if grant_type == "authorization_code":
                issued = await server.exchange_code(credentials, fields, resource)
            elif grant_type == "refresh_token":
                issued = await server.refresh(credentials, fields, resource)
            elif grant_type is None:
                raise OAuthError("invalid_request", "grant_type is required")
            else:
                raise OAuthError(
                    "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
                )
        except OAuthError as exc:
            log.info("OAuth token request refused", extra={"error": exc.error})
            extra = {"www-authenticate": 'Basic realm="deneva"'} if exc.status == 401 else None
            return _oauth_error(exc, extra)
        except DatabaseError:
            return unavailable()
        response = jsonify(issued.as_json())
        response.headers.update(NO_STORE)
        return response

    @blueprint.post("/revoke")
    async def revoke() -> Any:
        form = await request.form
        try:
            fields = _single(form)
            if "token" not in fields:
                raise OAuthError("invalid_request", "token is required")
            await server.revoke(_client_credentials(fields), fields["token"])
        except OAuthError as exc:
            log.info("OAuth revocation refused", extra={"error": exc.error})
            extra = {"www-authenticate": 'Basic realm="deneva"'} if exc.status == 401 else None
            return _oauth_error(exc, extra)
        except DatabaseError:
            return unavailable()
        return Response("", status=200, headers=NO_STORE)

    return blueprint
