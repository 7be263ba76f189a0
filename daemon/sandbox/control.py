"""The control API under /_control/: tokens, faults, the request log, the date, accounts,
and Meta's webhooks (the sandbox sends a signed change notification, as Meta does)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import httpx
from quart import Response, request
from quart_trio import QuartTrio

from deneva.sandbox.consent import MODES
from deneva.sandbox.data import PLATFORMS, account_for, day_shape
from deneva.sandbox.dates import history, parse_iso_date
from deneva.sandbox.faults import PlanError, parse_plan, unstructure_plan
from deneva.sandbox.state import SandboxState
from deneva.sandbox.tokens import KINDS
from deneva.sandbox.wire import dumps

# Control-API field name -> token kind, per platform.
_TOKEN_FIELDS = {"refresh_token": "refresh", "access_token": "access", "auth_code": "auth_code"}


def _json(status: int, payload: Any) -> Response:
    return Response(dumps(payload), status=status, content_type="application/json")


def _problem(status: int, message: str) -> Response:
    return _json(status, {"error": message})


async def _body() -> dict[str, Any] | None:
    data = await request.get_json(force=True, silent=True)
    return data if isinstance(data, dict) else None


def _platform(value: Any) -> str | None:
    return value if isinstance(value, str) and value in PLATFORMS else None


def register_control(app: QuartTrio, state: SandboxState) -> None:
    @app.get("/_control/health")
    async def health() -> Response:
        return _json(200, {"status": "ok", "today": state.today().isoformat(), "seed": state.seed})

    @app.post("/_control/reset")
    async def reset() -> Response:
        state.reset()
        return _json(200, {"reset": True})

    # -- tokens

    @app.post("/_control/tokens")
    async def register_tokens() -> Response:
        body = await _body()
        if body is None or (platform := _platform(body.get("platform"))) is None:
            return _problem(400, f"expected {{'platform': one of {list(PLATFORMS)}, <token fields>}}")
        registered = []
        for field, kind in _TOKEN_FIELDS.items():
            if field not in body:
                continue
            value = body[field]
            if kind not in KINDS[platform]:
                return _problem(400, f"{platform} has no {field}; it takes {_fields_for(platform)}")
            if not isinstance(value, str) or not value:
                return _problem(400, f"{field} must be a non-empty string")
            registered.append(state.tokens.register(platform, kind, value).as_json())
        if not registered:
            return _problem(400, f"{platform} takes {_fields_for(platform)}")
        return _json(201, {"registered": registered})

    @app.get("/_control/tokens")
    async def list_tokens() -> Response:
        platform = request.args.get("platform")
        return _json(200, {"tokens": state.tokens.describe(platform)})

    async def token_action(action: str) -> Response:
        body = await _body()
        if body is None or (platform := _platform(body.get("platform"))) is None:
            return _problem(400, "expected {'platform': ..., 'token': ...}")
        token = body.get("token")
        if not isinstance(token, str) or not token:
            return _problem(400, "token must be a non-empty string")
        if action == "expire":
            record = state.tokens.expire(platform, token)
        else:
            record = state.tokens.set_revoked(platform, token, action == "revoke")
        if record is None:
            return _problem(404, f"the sandbox does not know that {platform} token")
        return _json(200, {"token": record.as_json()})

    @app.post("/_control/tokens/revoke")
    async def revoke_token() -> Response:
        return await token_action("revoke")

    @app.post("/_control/tokens/restore")
    async def restore_token() -> Response:
        return await token_action("restore")

    @app.post("/_control/tokens/expire")
    async def expire_token() -> Response:
        return await token_action("expire")

    # -- faults

    @app.get("/_control/consent")
    async def list_consent() -> Response:
        return _json(200, {p: c.as_json() for p, c in state.consent.settings.items()})

    @app.put("/_control/consent/<platform>")
    async def set_consent(platform: str) -> Response:
        name = _platform(platform)
        body = await _body()
        if name is None or body is None:
            return _problem(400, "expected a platform (google, meta, tiktok) and a JSON object")
        settings = state.consent.settings[name]
        mode = body.get("mode", settings.mode)
        if mode not in MODES:
            return _problem(400, f"mode: expected one of {', '.join(MODES)}")
        accounts = body.get("accounts", list(settings.accounts))
        managers = body.get("managers", settings.managers)
        if not isinstance(accounts, list) or not all(isinstance(a, str) and a for a in accounts):
            return _problem(400, "accounts: expected a list of account ids")
        if not isinstance(managers, dict) or not all(
            isinstance(v, list | tuple) and all(isinstance(c, str) for c in v) for v in managers.values()
        ):
            return _problem(400, "managers: expected {manager id: [client ids]}")
        settings.mode = mode
        settings.accounts = tuple(accounts)
        settings.managers = {str(k): tuple(v) for k, v in managers.items()}
        settings.reject_code = bool(body.get("reject_code", settings.reject_code))
        return _json(200, settings.as_json())

    @app.get("/_control/faults")
    async def list_faults() -> Response:
        return _json(200, {"faults": state.faults.describe()})

    @app.put("/_control/faults/<platform>")
    async def set_faults(platform: str) -> Response:
        if _platform(platform) is None:
            return _problem(404, f"unknown platform {platform!r}; one of {list(PLATFORMS)}")
        body = await request.get_json(force=True, silent=True)
        try:
            plan = parse_plan(platform, body)
        except PlanError as exc:
            return _problem(400, str(exc))
        state.faults.set(platform, plan)
        return _json(200, {"platform": platform, "plan": unstructure_plan(plan)})

    @app.delete("/_control/faults/<platform>")
    async def clear_platform_faults(platform: str) -> Response:
        if _platform(platform) is None:
            return _problem(404, f"unknown platform {platform!r}; one of {list(PLATFORMS)}")
        state.faults.clear(platform)
        return _json(200, {"cleared": platform})

    @app.delete("/_control/faults")
    async def clear_faults() -> Response:
        state.faults.clear()
        return _json(200, {"cleared": "all"})

    # -- request log

    @app.get("/_control/requests")
    async def requests_summary() -> Response:
        args = request.args
        summary = state.requests.summary(args.get("platform"), args.get("endpoint"), args.get("account"))
        return _json(200, summary)

    @app.delete("/_control/requests")
    async def clear_requests() -> Response:
        state.requests.clear()
        return _json(200, {"cleared": True})

    # -- API versions

    @app.get("/_control/versions")
    async def list_versions() -> Response:
        return _json(200, {"versions": {p: list(v) for p, v in state.versions.items()}})

    @app.put("/_control/versions/<platform>")
    async def set_versions(platform: str) -> Response:
        if _platform(platform) is None:
            return _problem(404, f"unknown platform {platform!r}; one of {list(PLATFORMS)}")
        body = await _body()
        served = None if body is None else body.get("served")
        if not isinstance(served, list) or not all(
            isinstance(v, str) and re.fullmatch(r"v\d{1,3}(\.\d{1,3})?", v) for v in served
        ):
            return _problem(400, "expected {'served': ['v26', ...]} (versions like v26 or v27.0)")
        state.versions[platform] = tuple(served)
        return _json(200, {"platform": platform, "served": served})

    # -- the date and the synthetic accounts

    @app.put("/_control/today")
    async def set_today() -> Response:
        body = await _body()
        if body is None or "today" not in body:
            return _problem(400, "expected {'today': 'YYYY-MM-DD' | null}")
        value = body["today"]
        if value is None:
            state.today_override = None
        else:
            day = parse_iso_date(value) if isinstance(value, str) else None
            if day is None:
                return _problem(400, "today must be 'YYYY-MM-DD' or null")
            state.today_override = day
        return _json(200, {"today": state.today().isoformat()})

    @app.get("/_control/accounts/<platform>/<account_id>")
    async def describe_account(platform: str, account_id: str) -> Response:
        if _platform(platform) is None:
            return _problem(404, f"unknown platform {platform!r}; one of {list(PLATFORMS)}")
        if not account_id.isdigit():
            return _problem(404, "account ids are digits")
        return _json(200, account_summary(state, platform, account_id))

    # -- Meta's webhooks

    @app.post("/_control/meta/webhook")
    async def send_meta_webhook() -> Response:
        """Send `url` what Meta sends on an ad account change: `{object: "ad_account",
        entry: [{id, time, changes: [{field, value}]}]}`, signed `X-Hub-Signature-256`
        with `app_secret` (Meta signs with the app's secret), `times` times (a retry sends the
        same bytes); answers the receiver's statuses and answers."""
        body = await _body()
        url, secret, changes = (
            (None, None, None)
            if body is None
            else (body.get("url"), body.get("app_secret"), body.get("changes"))
        )
        if (
            not isinstance(url, str)
            or not re.fullmatch(r"http://(127\.0\.0\.1|localhost)(:\d+)?/\S*", url)
            or not isinstance(secret, str)
            or not isinstance(changes, list)
            or not all(isinstance(c, dict) and isinstance(c.get("account_id"), str) for c in changes)
        ):
            return _problem(
                400,
                "expected {'url': a loopback http URL, 'app_secret': str, "
                "'changes': [{'account_id', 'field'?, 'value'?}]}",
            )
        now = int(state.config.clock())
        payload = {
            "object": "ad_account",
            "entry": [
                {
                    "id": change["account_id"],
                    "time": now,
                    "changes": [
                        {
                            "field": change.get("field", "in_process_ad_objects"),
                            "value": change.get(
                                "value",
                                {"id": "120200000000001", "level": "CAMPAIGN", "status_name": "PAUSED"},
                            ),
                        }
                    ],
                }
                for change in changes
            ],
        }
        raw = dumps(payload)
        signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        times = body.get("times", 1) if body is not None else 1
        if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= 10:
            return _problem(400, "times: how often to send the same notification, 1 to 10 (Meta retries)")
        statuses, answers = [], []
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(times):
                answer = await client.post(
                    url,
                    content=raw,
                    headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
                )
                statuses.append(answer.status_code)
                answers.append(answer.text)
        return _json(200, {"statuses": statuses, "answers": answers, "sent": payload})


def _fields_for(platform: str) -> list[str]:
    return [field for field, kind in _TOKEN_FIELDS.items() if kind in KINDS[platform]]


def account_summary(state: SandboxState, platform: str, account_id: str) -> dict[str, Any]:
    """What a synthetic account holds, so tests can predict what reports should find."""
    account = account_for(platform, account_id, state.seed)
    window = history(state.today())
    anomalies = []
    for c in account.campaigns:
        if not c.delivering:
            continue
        for day in window:
            shape = day_shape(account, c, day)
            if shape.spike > 1.0:
                anomalies.append({"campaign_id": c.id, "date": day.isoformat(), "kind": "spend_spike"})
            elif shape.conversion_factor < 1.0:
                anomalies.append({"campaign_id": c.id, "date": day.isoformat(), "kind": "conversion_drop"})
    return {
        "platform": platform,
        "account_id": account_id,
        "name": account.name,
        "currency": account.currency,
        "time_zone": account.time_zone,
        "vertical": account.vertical,
        "history": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "campaigns": [
            {
                "id": c.id,
                "name": c.name,
                "status": c.status,
                "channel": c.channel,
                "objective": c.objective,
                "daily_budget": c.daily_budget,
                "budget_limited": c.budget_limited,
                "ad_groups": len(c.ad_groups),
                "keywords": sum(len(g.keywords) for g in c.ad_groups),
                "search_terms": sum(len(g.search_terms) for g in c.ad_groups),
                "asset_groups": len(c.asset_groups),
            }
            for c in account.campaigns
        ],
        "competitors": [c.domain for c in account.competitors],
        "anomalies": anomalies,
    }
