"""What the adapters take and give: credentials, report requests and data, configuration.

The vocabulary (platforms, report types, date ranges, and the window each report
fetches) is `deneva.catalog`'s, re-exported here; an unknown or unsupported one is
`PlatformError("invalid_request")` with the catalog's reason. A report's request asks
the platform for its fetch window (`ReportRequest.window`): the range and the history
its comparison needs before it (account health: the previous period; weekly anomaly:
the four weeks before the last 7 days), in one query where the API allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, Final, Protocol

import attrs

from deneva import catalog
from deneva.adapters.errors import PlatformError
from deneva.adapters.versions import CURRENT
from deneva.catalog import DATE_RANGES, PLATFORMS, REPORT_SCHEMAS, REPORT_TYPES, UNSUPPORTED

__all__ = [
    "DATE_RANGES",
    "PLATFORMS",
    "REPORT_SCHEMAS",
    "REPORT_TYPES",
    "UNSUPPORTED",
    "Credentials",
    "Platform",
    "PlatformConfig",
    "ReportData",
    "ReportRequest",
    "TokenGrant",
    "TokenSource",
    "check_date_range",
    "check_platform",
    "check_report_type",
    "date_window",
]

# The real APIs, for a production PlatformConfig (the defaults point nowhere).
GOOGLE_ADS_API: Final = "https://googleads.googleapis.com"
GOOGLE_TOKEN_URL: Final = "https://oauth2.googleapis.com/token"
# The consent pages a browser connect sends the operator to (deneva.adapters.oauth).
GOOGLE_AUTH_URL: Final = "https://accounts.google.com/o/oauth2/v2/auth"
META_DIALOG_URL: Final = "https://www.facebook.com"
TIKTOK_AUTH_URL: Final = "https://business-api.tiktok.com/portal/auth"
META_GRAPH_API: Final = "https://graph.facebook.com"
TIKTOK_BUSINESS_API: Final = "https://business-api.tiktok.com/open_api"


def check_platform(platform: str) -> str:
    problem = catalog.platform_problem(platform)
    if problem is not None:
        raise PlatformError("invalid_request", str(platform)[:40], problem)
    return platform


def check_report_type(platform: str, report_type: str) -> str:
    check_platform(platform)
    problem = catalog.report_type_problem(platform, report_type)
    if problem is not None:
        raise PlatformError("invalid_request", platform, problem)
    return report_type


def check_date_range(platform: str, date_range: str) -> str:
    problem = catalog.date_range_problem(date_range)
    if problem is not None:
        raise PlatformError("invalid_request", platform, problem)
    return date_range


def date_window(date_range: str, today: date) -> tuple[date, date]:
    """The inclusive [start, end] of a named range: the N whole days before `today`."""
    window = catalog.range_window(date_range, today)
    return window.start, window.end


def _hidden(value: object) -> str:
    return "None" if value is None else "'[redacted]'"


@attrs.frozen
class TokenGrant:
    """A token from a platform's token endpoint; `expires_at` in epoch seconds, None if it never does."""

    access_token: str = attrs.field(repr=_hidden)
    expires_at: float | None = None
    refresh_token: str | None = attrs.field(default=None, repr=_hidden)


@attrs.frozen
class Credentials:
    """One connected ad account's tokens. The repr never shows a token.

    Google needs `refresh_token` (an `access_token` still valid for a minute is used
    as is); Meta and TikTok need `access_token`. `login_customer_id` is Google's
    manager-account header, when the account is reached through one.
    """

    platform: str
    account_id: str
    refresh_token: str | None = attrs.field(default=None, repr=_hidden)
    access_token: str | None = attrs.field(default=None, repr=_hidden)
    access_token_expires_at: float | None = None
    login_customer_id: str | None = None

    def with_grant(self, grant: TokenGrant) -> Credentials:
        """These credentials after a refresh (keeps the refresh token unless a new one came)."""
        return attrs.evolve(
            self,
            access_token=grant.access_token,
            access_token_expires_at=grant.expires_at,
            refresh_token=grant.refresh_token or self.refresh_token,
        )

    def secrets(self) -> tuple[str | None, ...]:
        return (self.refresh_token, self.access_token)


@attrs.frozen
class ReportRequest:
    """One report to fetch. Invalid combinations raise `PlatformError("invalid_request")`."""

    platform: str
    account_id: str
    report_type: str
    date_range: str
    today: date

    def __attrs_post_init__(self) -> None:
        check_report_type(self.platform, self.report_type)
        check_date_range(self.platform, self.date_range)
        if not isinstance(self.today, date) or isinstance(self.today, datetime):
            raise PlatformError("invalid_request", self.platform, "today must be a datetime.date")
        if not isinstance(self.account_id, str) or not self.account_id.strip():
            raise PlatformError("invalid_request", self.platform, "account_id must be a non-empty string")

    @property
    def schema(self) -> str:
        return REPORT_SCHEMAS[self.report_type]

    @property
    def period(self) -> tuple[date, date]:
        """The named range itself."""
        return date_window(self.date_range, self.today)

    @property
    def window(self) -> tuple[date, date]:
        """The days asked of the platform: the range and the history the report compares with."""
        window = catalog.fetch_window(self.report_type, self.date_range, self.today)
        return window.start, window.end


def _row_count(rows: list[dict[str, Any]]) -> str:
    return f"<{len(rows)} rows>"


@attrs.frozen
class ReportData:
    """A fetched report: normalised `rows` (see `deneva.adapters.rows` for each schema).

    `fetched_rows` counts the report rows the platform sent (before any merging);
    `api_calls` counts every HTTP request made, token refreshes included. `refreshed`
    is the token grant obtained on the way, if any: store it so the next call does
    not refresh again.
    """

    platform: str
    account_id: str
    report_type: str
    date_range: str
    rows: list[dict[str, Any]] = attrs.field(repr=_row_count)
    fetched_rows: int
    api_calls: int
    start_date: date | None = None
    end_date: date | None = None
    currency: str | None = None
    refreshed: TokenGrant | None = None

    @property
    def schema(self) -> str:
        return REPORT_SCHEMAS[self.report_type]


class TokenSource(Protocol):
    """Where an adapter gets a fresh access token when the one it has will not do (expired,
    or rejected: `rejected` is that token). The caller's, so that it can serialise the
    refresh with its other refreshes of the credential and store what it gets; an adapter
    called without one refreshes itself and returns the grant in `ReportData.refreshed`."""

    async def refreshed(self, creds: Credentials, rejected: str | None) -> Credentials: ...


class Platform(Protocol):
    """An ad platform adapter. It speaks HTTP and nothing else: no MCP, database or actors."""

    @property
    def name(self) -> str: ...

    @property
    def api_version(self) -> str:
        """The platform API version it speaks (see `deneva.adapters.versions`)."""
        ...

    async def fetch_report(
        self, creds: Credentials, request: ReportRequest, tokens: TokenSource | None = None
    ) -> ReportData: ...

    async def refresh_token(self, creds: Credentials) -> TokenGrant: ...


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"PlatformConfig.{attribute.name} must be > 0, got {value!r}")


def _between(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"PlatformConfig.{attribute.name} must be in {low}..{high}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class PlatformConfig:
    """Where the platforms are and how to talk to them. Base URLs default to nothing.

    Base URLs are the API roots without version: `GOOGLE_ADS_API`, `META_GRAPH_API`,
    `TIKTOK_BUSINESS_API` in production, `PlatformConfig.for_sandbox(url)` for the
    loopback sandbox. API versions default to `deneva.adapters.versions.CURRENT`.
    Google's developer token is optional (Google sunset them on 9 September 2026: the
    header is sent only when one is configured, and Google ignores it);
    `google_login_customer_id` is the manager account every Google account is reached
    through, unless the credential names its own. Secrets never show in the repr.
    `clock` (epoch seconds) decides when a token counts as expiring.
    """

    google_base_url: str = ""
    google_token_url: str = ""
    google_api_version: str = CURRENT["google"]
    google_client_id: str | None = None
    google_client_secret: str | None = attrs.field(default=None, repr=_hidden)
    google_developer_token: str | None = attrs.field(default=None, repr=_hidden)
    google_login_customer_id: str | None = None
    meta_base_url: str = ""
    meta_api_version: str = CURRENT["meta"]
    meta_app_id: str | None = None
    meta_app_secret: str | None = attrs.field(default=None, repr=_hidden)
    tiktok_base_url: str = ""
    tiktok_api_version: str = CURRENT["tiktok"]
    # Browser connect (deneva.adapters.oauth): each platform's consent page, and TikTok's
    # app (its code exchange and advertiser listing need it; its reports do not).
    google_auth_url: str = ""
    meta_dialog_url: str = ""
    tiktok_auth_url: str = ""
    tiktok_app_id: str | None = None
    tiktok_app_secret: str | None = attrs.field(default=None, repr=_hidden)
    # Per HTTP request (connect, read, write, pool) and per whole report or token call.
    request_timeout_s: float = attrs.field(default=30.0, validator=_positive)
    connect_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    operation_timeout_s: float = attrs.field(default=120.0, validator=_positive)
    # Refresh a Google access token this close to its expiry.
    token_refresh_margin_s: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    meta_page_size: int = attrs.field(default=500, validator=_between(1, 5000))
    tiktok_page_size: int = attrs.field(default=1000, validator=_between(1, 1000))
    # TikTok refuses daily reports spanning more than 30 days.
    tiktok_max_days: int = attrs.field(default=30, validator=_between(1, 30))
    # A bound on pages per listing, against a platform that pages forever.
    max_pages: int = attrs.field(default=1000, validator=_between(1, 1_000_000))
    user_agent: str = "deneva/0.1"
    clock: Callable[[], float] = attrs.field(default=time.time, repr=False, eq=False)

    @classmethod
    def for_sandbox(cls, base_url: str, **overrides: Any) -> PlatformConfig:
        """A configuration for `deneva.sandbox` served at `base_url` (e.g. http://127.0.0.1:8790)."""
        root = base_url.rstrip("/")
        values: dict[str, Any] = {
            "google_base_url": f"{root}/google",
            "google_token_url": f"{root}/google/token",
            "google_client_id": "deneva-sandbox.apps.googleusercontent.com",
            "google_client_secret": "sandbox-client-secret",
            "meta_base_url": f"{root}/meta",
            "meta_app_id": "100000000000001",
            "meta_app_secret": "sandbox-app-secret",
            "tiktok_base_url": f"{root}/tiktok/open_api",
            "google_auth_url": f"{root}/google/o/oauth2/v2/auth",
            "meta_dialog_url": f"{root}/meta/www",
            "tiktok_auth_url": f"{root}/tiktok/portal/auth",
            "tiktok_app_id": "7000000000000000001",
            "tiktok_app_secret": "sandbox-tiktok-secret",
        }
        values.update(overrides)
        return cls(**values)

    def secrets(self) -> tuple[str | None, ...]:
        return (
            self.google_client_secret,
            self.google_developer_token,
            self.meta_app_secret,
            self.tiktok_app_secret,
        )

    def api_version(self, platform: str) -> str:
        """The API version this configuration speaks to `platform`."""
        versions = {
            "google": self.google_api_version,
            "meta": self.meta_api_version,
            "tiktok": self.tiktok_api_version,
        }
        return versions[check_platform(platform)]
