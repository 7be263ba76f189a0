"""Ad-platform account ids: what each platform's look like. One definition for what may
be connected (`deneva connect`) and what the MCP tools accept as `accountId`, so an
account can always be named and nothing else (a NUL, a control character, a 3 KB
string) gets near the database. Google customer ids are digits (10, shown as
123-456-7890), Meta ad accounts digits with or without "act_", TikTok advertiser ids
digits."""

from __future__ import annotations

import re

ACCOUNT_IDS: dict[str, tuple[re.Pattern[str], str]] = {
    "google": (
        re.compile(r"[0-9]{1,20}|[0-9]{3}-[0-9]{3}-[0-9]{4}"),
        "a Google Ads customer id: digits, as 1234567890 or 123-456-7890",
    ),
    "meta": (
        re.compile(r"(act_)?[0-9]{1,20}"),
        "a Meta ad account id: digits, with or without act_ (as act_1234567890)",
    ),
    "tiktok": (re.compile(r"[0-9]{1,20}"), "a TikTok advertiser id: digits"),
}


def account_id_problem(platform: str, account_id: object) -> str | None:
    """What an account id of `platform` should be, when `account_id` is not one; None when
    it is (or the platform is unknown: that is checked, and named, elsewhere)."""
    if platform not in ACCOUNT_IDS:
        return None
    pattern, what = ACCOUNT_IDS[platform]
    if isinstance(account_id, str) and pattern.fullmatch(account_id) is not None:
        return None
    return what
