"""Secrets are files, one per secret (systemd LoadCredential= or DENEVA_SECRETS_DIR).

A `Secret` never shows its value in repr/str, and every loaded value is registered
with the log redactor so it cannot reach a log line by accident.

`REQUIRED` secrets stop the start when missing. The ad platforms' API credentials
(`PLATFORM_SECRETS`) are optional: a platform whose files are not all there is not
synced by `deneva run`; a file that is there must be readable, non-empty, one line.
`DENEVA_GOOGLE_DEVELOPER_TOKEN` is optional even for Google (Google sunset developer
tokens on 9 September 2026): sent as the `developer-token` header when its file is there.
`DENEVA_METRICS_TOKEN` is optional too: when its file is there, `GET /metrics` asks
for it as a bearer token (one line without spaces, at least 16 characters);
`deneva secrets init` does not create it.
`DENEVA_KEK_PREVIOUS` is optional: while the key-encryption key rotates (see
`deneva.credentials`), the old DENEVA_KEK, so rows it sealed still open.
`DENEVA_SIGNING_KEY` signs the Standard Webhooks deliveries `POST /webhooks/events`
accepts: `whsec_<base64>` (what `deneva secrets init` makes) or any other text of 16
characters or more (see deneva.webhooks). `DENEVA_META_VERIFY_TOKEN` is optional: with
it and `DENEVA_META_APP_SECRET`, `/webhooks/meta` takes Meta's change notifications.
`DENEVA_ADMIN_READONLY_TOKEN` is optional: the operator console's read-only sign-in (at
least 16 characters, not DENEVA_ADMIN_TOKEN); absent, the console has no read-only role.
"""

from __future__ import annotations

import base64
import os
import secrets as _random
from collections.abc import Mapping
from pathlib import Path

import attrs

from deneva.credentials import Keyring
from deneva.errors import SecretError
from deneva.webhooks import SigningKey

REQUIRED = ("DENEVA_KEK", "DENEVA_ADMIN_TOKEN", "DENEVA_EVENT_KEY", "DENEVA_SIGNING_KEY")
# The OAuth client and app credentials each platform's API needs (TikTok's Business API
# needs only each account's access token).
PLATFORM_SECRETS: Mapping[str, tuple[str, ...]] = {
    "google": ("DENEVA_GOOGLE_CLIENT_ID", "DENEVA_GOOGLE_CLIENT_SECRET"),
    "meta": ("DENEVA_META_APP_ID", "DENEVA_META_APP_SECRET"),
    "tiktok": (),
}
GOOGLE_DEVELOPER_TOKEN = "DENEVA_GOOGLE_DEVELOPER_TOKEN"
# TikTok's app: its browser connect (code exchange, advertiser listing) needs it, its sync not.
TIKTOK_APP = ("DENEVA_TIKTOK_APP_ID", "DENEVA_TIKTOK_APP_SECRET")
# Meta's webhook verification handshake (with the app secret: /webhooks/meta).
META_APP_SECRET = "DENEVA_META_APP_SECRET"
META_VERIFY_TOKEN = "DENEVA_META_VERIFY_TOKEN"
OPTIONAL = (
    *(name for names in PLATFORM_SECRETS.values() for name in names),
    GOOGLE_DEVELOPER_TOKEN,
    *TIKTOK_APP,
    META_VERIFY_TOKEN,
)
METRICS_TOKEN = "DENEVA_METRICS_TOKEN"
SIGNING_KEY = "DENEVA_SIGNING_KEY"
KEK_PREVIOUS = "DENEVA_KEK_PREVIOUS"
ADMIN_READONLY_TOKEN = "DENEVA_ADMIN_READONLY_TOKEN"
_KEKS = ("DENEVA_KEK", KEK_PREVIOUS)
MAX_SECRET_BYTES = 4096
MIN_TOKEN_CHARS = 16


@attrs.frozen(repr=False)
class Secret:
    name: str
    _value: str = attrs.field(alias="value")

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name}, ***)"

    __str__ = __repr__


@attrs.frozen
class Secrets:
    kek: Secret
    admin_token: Secret
    event_key: Secret
    signing_key: Secret
    # The optional secrets that are present, by name.
    optional: Mapping[str, Secret] = attrs.field(factory=dict)
    # The bearer token /metrics asks for; None (the file is absent): /metrics is open.
    metrics_token: Secret | None = None
    # The key-encryption key before DENEVA_KEK, while it rotates; None: no rotation.
    kek_previous: Secret | None = None
    # The console's read-only sign-in; None: the console has no read-only role.
    admin_readonly_token: Secret | None = None

    def all(self) -> tuple[Secret, ...]:
        extra = tuple(
            s for s in (self.metrics_token, self.kek_previous, self.admin_readonly_token) if s is not None
        )
        return (
            self.kek,
            self.admin_token,
            self.event_key,
            self.signing_key,
            *self.optional.values(),
            *extra,
        )

    def get(self, name: str) -> Secret | None:
        return self.optional.get(name)

    def keyring(self) -> Keyring:
        """DENEVA_KEK seals; it and DENEVA_KEK_PREVIOUS (if present) open."""
        previous = () if self.kek_previous is None else (base64.b64decode(self.kek_previous.reveal()),)
        return Keyring(base64.b64decode(self.kek.reveal()), previous)


def secrets_directory(config_dir: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("CREDENTIALS_DIRECTORY"):
        return Path(environ["CREDENTIALS_DIRECTORY"])
    if config_dir is not None:
        return config_dir
    raise SecretError(
        f"{REQUIRED[0]}: no secrets directory; set CREDENTIALS_DIRECTORY (systemd "
        "LoadCredential=) or DENEVA_SECRETS_DIR (run `deneva secrets init DIR` to create one)"
    )


def _read_secret(directory: Path, name: str) -> Secret:
    path = directory / name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SecretError(f"{name}: missing (expected the file {path})") from None
    except OSError as exc:
        raise SecretError(f"{name}: cannot read {path} ({exc.strerror})") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretError(f"{name}: {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(f"{name}: {path} is not UTF-8 text") from None
    if not value:
        raise SecretError(f"{name}: {path} is empty")
    if name in _KEKS:
        try:
            key = base64.b64decode(value, validate=True)
        except ValueError:
            raise SecretError(f"{name}: {path} must hold 32 bytes in base64") from None
        if len(key) != 32:
            raise SecretError(f"{name}: {path} must hold 32 bytes in base64, got {len(key)} bytes")
    elif name in OPTIONAL:
        if any(c.isspace() for c in value):
            raise SecretError(f"{name}: {path} must hold one value on one line, without spaces")
    elif name == METRICS_TOKEN and any(c.isspace() for c in value):
        raise SecretError(f"{name}: {path} must hold one token on one line, without spaces (a bearer token)")
    elif len(value) < MIN_TOKEN_CHARS:
        raise SecretError(f"{name}: {path} must hold at least {MIN_TOKEN_CHARS} characters")
    if name == SIGNING_KEY:
        try:
            SigningKey.from_text(value, name)
        except ValueError as exc:
            raise SecretError(f"{exc} ({path})") from None
    return Secret(name, value)


def load_secrets(directory: Path) -> Secrets:
    """Read and check every required secret and the optional ones present; the first
    problem found is raised, named."""
    loaded = [_read_secret(directory, name) for name in REQUIRED]
    optional = {name: _read_secret(directory, name) for name in OPTIONAL if (directory / name).exists()}
    metrics_token = _read_secret(directory, METRICS_TOKEN) if (directory / METRICS_TOKEN).exists() else None
    previous = _read_secret(directory, KEK_PREVIOUS) if (directory / KEK_PREVIOUS).exists() else None
    readonly = None
    if (directory / ADMIN_READONLY_TOKEN).exists():
        readonly = _read_secret(directory, ADMIN_READONLY_TOKEN)
    kek, admin_token, event_key, signing_key = loaded
    if readonly is not None and readonly.reveal() == admin_token.reveal():
        raise SecretError(
            f"{ADMIN_READONLY_TOKEN}: {directory / ADMIN_READONLY_TOKEN} holds DENEVA_ADMIN_TOKEN; the "
            "read-only token must be another value"
        )
    return Secrets(kek, admin_token, event_key, signing_key, optional, metrics_token, previous, readonly)


def _generate(name: str) -> str:
    if name == "DENEVA_KEK":
        return base64.b64encode(_random.token_bytes(32)).decode()
    if name == SIGNING_KEY:  # the form Standard Webhooks senders take as it is
        return "whsec_" + base64.b64encode(_random.token_bytes(32)).decode()
    return _random.token_urlsafe(32)


def init_secrets(directory: Path) -> list[str]:
    """Create the missing secret files (mode 0600); existing ones are never touched."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = []
    for name in REQUIRED:
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(_generate(name) + "\n")
        created.append(name)
    return created
