"""Which ad platforms `deneva run` syncs, and the adapters' configuration for them.

A platform is synced when the `platforms` key lists it (all three by default) and all
of its secret files are there (`deneva.secrets.PLATFORM_SECRETS`: Google's OAuth client,
Meta's app id and secret; TikTok needs none). Google's developer token is optional
(sent when its file is there; Google ignores it since 9 September 2026). The others are not
synced: their fan-outs and refreshes are skipped, a refresh asked for one fails with a
clear `invalid_request`. Why a platform is not synced names the missing files, never a
value. `deneva demo` uses the sandbox instead (`PlatformConfig.for_sandbox`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import httpx

from deneva.adapters import PLATFORMS, Platform, PlatformConfig, adapters_for
from deneva.config import Config
from deneva.secrets import GOOGLE_DEVELOPER_TOKEN, PLATFORM_SECRETS, Secrets


@attrs.frozen
class PlatformSetup:
    config: PlatformConfig
    synced: tuple[str, ...]
    not_synced: Mapping[str, str]  # platform -> why

    def adapters(self, http: httpx.AsyncClient | None = None) -> dict[str, Platform]:
        """The synced platforms' adapters, on `http` (a client each call without it)."""
        adapters = adapters_for(self.config, http=http)
        return {name: adapter for name, adapter in adapters.items() if name in self.synced}


def platform_setup(config: Config, secrets: Secrets) -> PlatformSetup:
    synced: list[str] = []
    not_synced: dict[str, str] = {}
    for platform in PLATFORMS:
        missing = [name for name in PLATFORM_SECRETS[platform] if secrets.get(name) is None]
        if platform not in config.platforms:
            not_synced[platform] = "not in the `platforms` setting"
        elif missing:
            not_synced[platform] = f"missing secret files: {', '.join(missing)}"
        else:
            synced.append(platform)

    def value(name: str) -> str | None:
        secret = secrets.get(name)
        return None if secret is None else secret.reveal()

    versions = {
        "google_api_version": config.google_ads_api_version,
        "meta_api_version": config.meta_api_version,
        "tiktok_api_version": config.tiktok_api_version,
    }
    platform_config = PlatformConfig(
        google_base_url=config.google_ads_url,
        google_token_url=config.google_token_url,
        google_client_id=value("DENEVA_GOOGLE_CLIENT_ID"),
        google_client_secret=value("DENEVA_GOOGLE_CLIENT_SECRET"),
        google_developer_token=value(GOOGLE_DEVELOPER_TOKEN),
        google_login_customer_id=config.google_login_customer_id,
        meta_base_url=config.meta_graph_url,
        meta_app_id=value("DENEVA_META_APP_ID"),
        meta_app_secret=value("DENEVA_META_APP_SECRET"),
        tiktok_base_url=config.tiktok_api_url,
        google_auth_url=config.google_auth_url,
        meta_dialog_url=config.meta_dialog_url,
        tiktok_auth_url=config.tiktok_auth_url,
        tiktok_app_id=value("DENEVA_TIKTOK_APP_ID"),
        tiktok_app_secret=value("DENEVA_TIKTOK_APP_SECRET"),
    )
    chosen: dict[str, Any] = {key: version for key, version in versions.items() if version is not None}
    return PlatformSetup(attrs.evolve(platform_config, **chosen), tuple(synced), not_synced)
