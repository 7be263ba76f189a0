"""Ad-platform adapters: Google Ads, Meta, TikTok over HTTP; typed errors. Know nothing of MCP or actors.

Nor of the database: an adapter takes `Credentials` and a `ReportRequest` and gives
`ReportData` (rows normalised per `deneva.adapters.rows`) or raises `PlatformError`
(`deneva.adapters.errors`). A token that must be refreshed on the way is asked of the
caller's `TokenSource` when one is given (the sync serialises and stores refreshes);
without one the adapter refreshes itself and returns the grant in `ReportData.refreshed`.
Modules: `base` (values, config, report types), `errors`, `rows` (schemas), `wire` (HTTP
plumbing), `google`, `meta`, `tiktok`, `registry`.

    adapters = adapters_for(PlatformConfig.for_sandbox("http://127.0.0.1:8790"))
    data = await adapters["google"].fetch_report(creds, ReportRequest(
        "google", "1234567890", "account_health", "last_7_days", today=date.today()))
"""

from deneva.adapters.base import (
    DATE_RANGES,
    PLATFORMS,
    REPORT_SCHEMAS,
    REPORT_TYPES,
    Credentials,
    Platform,
    PlatformConfig,
    ReportData,
    ReportRequest,
    TokenGrant,
    TokenSource,
)
from deneva.adapters.errors import ErrorCode, PlatformError
from deneva.adapters.registry import adapter_for, adapters_for, check_report

__all__ = [
    "DATE_RANGES",
    "PLATFORMS",
    "REPORT_SCHEMAS",
    "REPORT_TYPES",
    "Credentials",
    "ErrorCode",
    "Platform",
    "PlatformConfig",
    "PlatformError",
    "ReportData",
    "ReportRequest",
    "TokenGrant",
    "TokenSource",
    "adapter_for",
    "adapters_for",
    "check_report",
]
