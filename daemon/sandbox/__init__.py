"""Loopback fakes of the Google Ads, Meta and TikTok APIs, for tests, demo and benchmarks.

One server (`SandboxServer`, or `python -m deneva.sandbox --port 8790`) speaks the three
platforms' public HTTP APIs closely enough for an adapter written against their docs,
with deterministic synthetic accounts and a control API for faults.

Platforms (details in each module's docstring):

    google.py  POST /google/token (refresh_token and authorization_code grants), /google/revoke,
               POST /google/v26/customers/{id}/googleAds:searchStream (and :search; FROM
               customer_client: a manager's hierarchy), GET /google/v26/customers:listAccessibleCustomers
    meta.py    GET /meta/v27.0/act_{id}/insights, /meta/v27.0/act_{id}/campaigns, /meta/v27.0/me/adaccounts,
               GET /meta/oauth/access_token (fb_exchange_token, or a login dialog's code)
    tiktok.py  GET /tiktok/open_api/v1.3/report/integrated/get/, .../campaign/get/,
               .../oauth2/advertiser/get/, POST /tiktok/open_api/v1.3/oauth2/access_token/
    consent.py the consent pages of a browser connect (/google/o/oauth2/v2/auth,
               /meta/www/{v}/dialog/oauth, /tiktok/portal/auth), with Allow / Deny, and
               `PUT /_control/consent/{platform}` {"mode": "ask"|"approve"|"deny",
               "accounts", "managers", "reject_code"}

Versions: the sandbox serves what the platforms served on 3 December 2026 (Google v23
to v26, Meta v25.0 to v27.0, TikTok v1.3; `SandboxConfig.*_versions`, or
`PUT /_control/versions/{platform} {"served": [...]}`), with v26, v27.0 and v1.3's
shapes. Any other version answers as the platform answers one it no longer serves:
Google HTTP 404 NOT_FOUND without a Google Ads failure, Meta HTTP 400 code 2635
("You are calling a deprecated version of the Ads API"), TikTok HTTP 404 code 40400
(Google's and TikTok's bodies are the sandbox's choice; see each module).

Accounts. Every id of the right shape exists: Google customer ids of exactly 10 digits,
Meta ad accounts `act_<digits>`, TikTok advertiser ids of digits. An account's
campaigns, ad groups, keywords, search terms, competitors and daily metrics are a
function of (platform, id, `SandboxConfig.seed`); data covers the 120 days before
"today" (`SandboxConfig.today`, `PUT /_control/today`, else the clock's UTC date).
Same request, same bytes (request ids are derived from the request).

Tokens. The sandbox accepts the tokens it issued and the tokens a test registered:

    POST /_control/tokens {"platform": "google", "refresh_token": "r1"}   (or access_token)
    POST /_control/tokens {"platform": "meta", "access_token": "m1"}
    POST /_control/tokens {"platform": "tiktok", "access_token": "t1"}     (or auth_code)

Google: exchange the refresh token at /google/token for an access token (expires after
`google_access_token_ttl_s` by `SandboxConfig.clock`), then call the API with
`Authorization: Bearer <access>` (a `developer-token` header is optional and ignored, as
Google does since 9 September 2026). Meta: call
with the token directly or exchange it for a long-lived one. TikTok: send
`Access-Token: <token>`; tokens never expire.

    POST /_control/tokens/revoke  {"platform", "token"}  revoked: the token and those minted
                                                         from it fail (Google invalid_grant
                                                         / 401, Meta 190/460, TikTok 40105)
    POST /_control/tokens/restore {"platform", "token"}
    POST /_control/tokens/expire  {"platform", "token"}  Google 401 OAUTH_TOKEN_EXPIRED,
                                                         Meta 190/463
    GET  /_control/tokens[?platform=]

Faults, per platform (see faults.py for the order and the seeded randomness):

    PUT /_control/faults/{platform}
        {"latency_ms": 20,
         "endpoints": ["searchStream"],          (default: all but the token endpoints)
         "rate_limit":   {"next": 2, "probability": 0.1, "retry_after_s": 7, "meta_code": 17},
         "server_error": {"next": 1, "status": 503},
         "timeout":      {"next": 1, "hang_s": 5},
         "quota_exhausted": {"next": 1, "retry_after_s": 3600, "access_level": "explorer"},
         "access_denied":   {"next": 1, "reason": "CLOUD_PROJECT_NOT_APPROVED_FOR_PRODUCTION"
                                           | "CLOUD_PROJECT_NOT_UNDER_ORGANIZATION"},
         "malformed":    {"next": 1, "kind": "truncated" | "html" | "wrong_types"
                                          | "unstorable_text", "status": 502}}
    GET /_control/faults      DELETE /_control/faults[/{platform}]

Malformed bodies: `truncated` cuts the real body in half, `html` answers a proxy's HTML
error page under `status`, `wrong_types` sends the real JSON with every metric value
(impressions, clicks, spend, costMicros, conversions) wrapped in an object,
`unstorable_text` the real JSON with `\\u0000\\ud800` appended to every name.

Google's access-level faults: `quota_exhausted` is HTTP 429 quotaError.RESOURCE_EXHAUSTED
(the Cloud project's daily operations used up, retryDelay until they refill, no
Retry-After), `access_denied` HTTP 403 PERMISSION_DENIED authorizationError.<reason>;
the other platforms refuse these kinds.

Rate limits: Google HTTP 429 RESOURCE_EXHAUSTED with `Retry-After`; Meta HTTP 400 code
17 (or 4, 613, 80000) with `X-Business-Use-Case-Usage`; TikTok HTTP 200 code 40100. Meta
and TikTok also get a `Retry-After` header, which the real platforms do not send.

Request log: `GET /_control/requests[?platform=&endpoint=&account=]` answers
{"total", "counts": {platform: {endpoint: {account: n}}}, "log": [...]} counting every
platform call, faulted or not (control calls are not counted);
`DELETE /_control/requests` clears it. `POST /_control/reset` forgets tokens, faults,
the log, the today override and version changes. `GET /_control/accounts/{platform}/{id}` describes an
account: campaigns, budgets, competitors and its anomaly days.
"""
