"""The sandbox's quart-trio application: platform routes behind one fault pipeline."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import trio
from quart import Response, request
from quart_trio import QuartTrio

from deneva.sandbox import consent, google, meta, tiktok
from deneva.sandbox.control import register_control
from deneva.sandbox.faults import (
    AccessDeniedFault,
    FaultResponses,
    MalformedFault,
    QuotaExhaustedFault,
    RateLimitFault,
    ServerErrorFault,
    TimeoutFault,
    malform,
)
from deneva.sandbox.state import SandboxConfig, SandboxState
from deneva.sandbox.wire import ApiResponse, Incoming, dumps

log = logging.getLogger("deneva.sandbox")

MAX_BODY_BYTES = 1024 * 1024
_GOOGLE_VERSION = re.compile(r"v\d+")
_META_VERSION = re.compile(r"v\d+\.\d+")
_TIKTOK_VERSION = re.compile(r"v1\.\d+")

Handler = Callable[[Incoming], ApiResponse]
_VERSION_GONE: dict[str, Callable[[Incoming, str, tuple[str, ...]], ApiResponse]] = {
    "google": google.version_not_served,
    "meta": meta.version_not_served,
    "tiktok": tiktok.version_not_served,
}


async def _incoming() -> Incoming:
    body = await request.get_data(cache=True, as_text=False)
    return Incoming(
        method=request.method,
        path=request.path,
        query_string=request.query_string.decode("latin-1"),
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body if isinstance(body, bytes) else body.encode(),
        host_url=request.host_url,
    )


def _to_quart(response: ApiResponse) -> Response:
    quart_response = Response(response.body, status=response.status, content_type=response.content_type)
    for name, value in response.headers:
        quart_response.headers[name] = value
    return quart_response


def _not_found() -> Response:
    return Response(dumps({"error": "not found"}), status=404, content_type="application/json")


def _ignore_version(view: Callable[[], Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    async def versioned(version: str) -> Response:
        return await view()

    versioned.__name__ = view.__name__
    return versioned


def create_sandbox_app(
    config: SandboxConfig | None = None, *, state: SandboxState | None = None
) -> QuartTrio:
    """The sandbox app; pass `state` to share it with the caller (SandboxServer does)."""
    if state is None:
        state = SandboxState(config or SandboxConfig())
    app = QuartTrio("deneva.sandbox")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    async def serve(
        platform: str,
        endpoint: str,
        responses: FaultResponses,
        handle: Handler,
        account: Callable[[Incoming], str | None] = lambda incoming: None,
        version: str | None = None,
    ) -> Response:
        incoming = await _incoming()
        account_id = account(incoming)
        record = state.requests.start(platform, endpoint, incoming.method, incoming.path, account_id)
        if version is not None and not state.serves(platform, version):
            # A version the platform no longer serves (or never did) fails before anything else.
            response = _VERSION_GONE[platform](incoming, version, state.versions[platform])
            record.status = response.status
            record.fault = "version_not_served"
            return _to_quart(response)
        decision = state.faults.decide(platform, endpoint)
        if decision.latency_s > 0:
            await trio.sleep(decision.latency_s)
        fault = decision.fault
        record.fault = decision.name
        if isinstance(fault, TimeoutFault):
            await trio.sleep(fault.hang_s)
            response = responses.deadline_exceeded(incoming)
        elif isinstance(fault, ServerErrorFault):
            response = responses.server_error(incoming, fault.status)
        elif isinstance(fault, RateLimitFault):
            response = responses.rate_limited(incoming, fault, account_id)
        elif isinstance(fault, QuotaExhaustedFault) and responses.quota_exhausted is not None:
            response = responses.quota_exhausted(incoming, fault)
        elif isinstance(fault, AccessDeniedFault) and responses.access_denied is not None:
            response = responses.access_denied(incoming, fault)
        else:
            try:
                response = handle(incoming)
            except Exception:
                # A sandbox bug: say so loudly, in the platform's words, as a 500.
                log.exception("sandbox %s %s failed on %s", platform, endpoint, incoming.path)
                response = responses.server_error(incoming, 500)
            if isinstance(fault, MalformedFault):
                response = malform(response, fault)
        record.status = response.status
        return _to_quart(response)

    # -- Google Ads

    def google_account(incoming: Incoming) -> str | None:
        parts = incoming.path.split("/")
        return parts[4] if len(parts) > 4 else None

    @app.post("/google/token")
    async def google_token() -> Response:
        return await serve("google", "token", google.TOKEN_FAULTS, lambda i: google.token(state, i))

    @app.post("/google/revoke")
    async def google_revoke() -> Response:
        return await serve("google", "revoke", google.TOKEN_FAULTS, lambda i: google.revoke(state, i))

    # -- consent pages (browser connect)

    def consent_route(platform: str) -> Callable[[], Awaitable[Response]]:
        async def page() -> Response:
            incoming = await _incoming()
            state.requests.start(platform, "consent", incoming.method, incoming.path, None)
            return _to_quart(consent.consent(state.consent, platform, incoming, state.config.clock()))

        page.__name__ = f"{platform}_consent"
        return page

    google_consent = consent_route("google")
    app.add_url_rule("/google/o/oauth2/v2/auth", view_func=google_consent, methods=["GET"])
    app.add_url_rule("/google/o/oauth2/v2/auth/decide", "google_decide", google_consent, methods=["POST"])
    meta_consent = consent_route("meta")
    app.add_url_rule("/meta/www/<version>/dialog/oauth", view_func=_ignore_version(meta_consent))
    app.add_url_rule(
        "/meta/www/<version>/dialog/oauth/decide",
        "meta_decide",
        _ignore_version(meta_consent),
        methods=["POST"],
    )
    tiktok_consent = consent_route("tiktok")
    app.add_url_rule("/tiktok/portal/auth", view_func=tiktok_consent, methods=["GET"])
    app.add_url_rule("/tiktok/portal/auth/decide", "tiktok_decide", tiktok_consent, methods=["POST"])

    @app.get("/google/<version>/customers:listAccessibleCustomers")
    async def google_accessible(version: str) -> Response:
        if not _GOOGLE_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "google",
            "listAccessibleCustomers",
            google.SEARCH_FAULTS,
            lambda i: google.list_accessible_customers(state, i),
            version=version,
        )

    @app.post("/google/<version>/customers/<customer_id>/googleAds:searchStream")
    async def google_search_stream(version: str, customer_id: str) -> Response:
        if not _GOOGLE_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "google",
            "searchStream",
            google.STREAM_FAULTS,
            lambda i: google.search(state, i, customer_id, stream=True),
            google_account,
            version,
        )

    @app.post("/google/<version>/customers/<customer_id>/googleAds:search")
    async def google_search(version: str, customer_id: str) -> Response:
        if not _GOOGLE_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "google",
            "search",
            google.SEARCH_FAULTS,
            lambda i: google.search(state, i, customer_id, stream=False),
            google_account,
            version,
        )

    # -- Meta

    def meta_account(incoming: Incoming) -> str | None:
        parts = incoming.path.split("/")
        return parts[3].removeprefix("act_") if len(parts) > 3 else None

    @app.get("/meta/<version>/me/adaccounts")
    async def meta_ad_accounts(version: str) -> Response:
        if not _META_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "meta", "adaccounts", meta.FAULTS, lambda i: meta.ad_accounts(state, i), version=version
        )

    @app.get("/meta/<version>/<node>/insights")
    async def meta_insights(version: str, node: str) -> Response:
        if not _META_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "meta", "insights", meta.FAULTS, lambda i: meta.insights(state, i, node), meta_account, version
        )

    @app.get("/meta/<version>/<node>/campaigns")
    async def meta_campaigns(version: str, node: str) -> Response:
        if not _META_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "meta", "campaigns", meta.FAULTS, lambda i: meta.campaigns(state, i, node), meta_account, version
        )

    @app.route("/meta/oauth/access_token", methods=["GET", "POST"])
    async def meta_token() -> Response:
        return await serve("meta", "token", meta.FAULTS, lambda i: meta.token(state, i))

    @app.route("/meta/<version>/oauth/access_token", methods=["GET", "POST"])
    async def meta_versioned_token(version: str) -> Response:
        if not _META_VERSION.fullmatch(version):
            return _not_found()
        return await serve("meta", "token", meta.FAULTS, lambda i: meta.token(state, i))

    # -- TikTok

    def tiktok_account(incoming: Incoming) -> str | None:
        return incoming.args.get("advertiser_id") or None

    @app.get("/tiktok/open_api/<version>/report/integrated/get/")
    async def tiktok_report(version: str) -> Response:
        if not _TIKTOK_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "tiktok", "report", tiktok.FAULTS, lambda i: tiktok.report(state, i), tiktok_account, version
        )

    @app.get("/tiktok/open_api/<version>/campaign/get/")
    async def tiktok_campaigns(version: str) -> Response:
        if not _TIKTOK_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "tiktok",
            "campaigns",
            tiktok.FAULTS,
            lambda i: tiktok.campaigns(state, i),
            tiktok_account,
            version,
        )

    @app.get("/tiktok/open_api/<version>/oauth2/advertiser/get/")
    async def tiktok_advertisers(version: str) -> Response:
        if not _TIKTOK_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "tiktok", "advertisers", tiktok.FAULTS, lambda i: tiktok.advertisers(state, i), version=version
        )

    @app.post("/tiktok/open_api/<version>/oauth2/access_token/")
    async def tiktok_token(version: str) -> Response:
        if not _TIKTOK_VERSION.fullmatch(version):
            return _not_found()
        return await serve(
            "tiktok", "token", tiktok.FAULTS, lambda i: tiktok.token(state, i), version=version
        )

    register_control(app, state)

    @app.errorhandler(404)
    async def not_found(_error: Exception) -> Response:
        return _not_found()

    @app.errorhandler(405)
    async def not_allowed(_error: Exception) -> Response:
        return Response(dumps({"error": "method not allowed"}), status=405, content_type="application/json")

    @app.errorhandler(413)
    async def too_large(_error: Exception) -> Response:
        message = {"error": f"request body larger than {MAX_BODY_BYTES} bytes"}
        return Response(dumps(message), status=413, content_type="application/json")

    return app
