"""Inbound webhooks' signatures, checked before anything of the body is trusted.

- **Standard Webhooks** (`POST /webhooks/events`, standardwebhooks.com): headers
  `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`, one or more
  space-separated `v1,<base64 HMAC-SHA256>` entries (several while the sender rotates
  keys: any match is enough) of `{webhook-id}.{webhook-timestamp}.{body}` under
  `DENEVA_SIGNING_KEY`. A timestamp more than 5 minutes from the daemon's clock is
  refused, so a captured request cannot be replayed later; within those 5 minutes a
  replay meets its `webhook-id` (see deneva.engine.store.send_events).
- **Meta** (`/webhooks/meta`): the verification handshake (`hub.mode=subscribe`,
  `hub.verify_token`, `hub.challenge`) and `X-Hub-Signature-256: sha256=<hex>`, the
  HMAC-SHA256 of the raw body under the app secret.

`DENEVA_SIGNING_KEY` takes either form: `whsec_<base64>` (what Standard Webhooks
libraries and senders such as Svix hand out: the key is the decoded bytes) or any other
text of 16 characters or more (the key is its UTF-8 bytes; a sender using a Standard
Webhooks library then passes those bytes, not the text, since the libraries read a text
secret as base64).

What is signed and its `v1,` form come from the `standardwebhooks` package
(`Webhook.sign`). Its `Webhook.verify` is not used: it reads the wall clock (the daemon's
is injectable, so tests sign in the past instead of sleeping) and raises one error for
every failure, where the sender needs to know which header is wrong (400) from a
signature that does not match (401).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
from standardwebhooks import Webhook

from deneva.errors import DenevaError

TOLERANCE_S = 5 * 60  # the convention's, and the replay window the delivery ids cover
MIN_KEY_BYTES = 16
MAX_SIGNATURES = 20  # entries in one webhook-signature header (a few keys being rotated)
_WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII, no spaces
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v[0-9]+[a-z]*,[A-Za-z0-9+/=]+")
_META_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_CHALLENGE = re.compile(r"[\x21-\x7e]{1,256}")
STANDARD_SOURCE = "webhooks/events"
SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
META_SOURCE = "meta"


class WebhookRefused(DenevaError):
    """A webhook request refused: its HTTP status and a message naming what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen(repr=False)
class SigningKey:
    """The HMAC key of Standard Webhooks signatures (never shown)."""

    _key: bytes = attrs.field(alias="key")

    def __repr__(self) -> str:
        return "SigningKey(***)"

    @classmethod
    def from_text(cls, text: str, name: str = "DENEVA_SIGNING_KEY") -> SigningKey:
        """`whsec_<base64>`: the decoded bytes; any other text: its UTF-8 bytes. ValueError
        names the secret when a `whsec_` value does not decode or is too short."""
        if text.startswith("whsec_"):
            encoded = text[len("whsec_") :]
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"{name}: a whsec_ value must be base64 after the prefix") from None
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"{name}: a whsec_ value must decode to {MIN_KEY_BYTES} bytes or more")
            return cls(key)
        return cls(text.encode())

    def sign(self, webhook_id: str, timestamp: int, body: bytes) -> str:
        """The `v1,<base64>` signature of a delivery (what a sender puts in webhook-signature)."""
        return Webhook(self._key).sign(webhook_id, datetime.fromtimestamp(timestamp, UTC), body)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None or not value.strip():
        raise WebhookRefused(
            400,
            f"missing header {name} (Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature)",
        )
    return value.strip()


def verify_standard(key: SigningKey, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Check a Standard Webhooks delivery; its `webhook-id`. WebhookRefused otherwise:
    400 for a missing or malformed header, 401 for a timestamp outside the tolerance or
    a signature that does not match."""
    webhook_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not _WEBHOOK_ID.fullmatch(webhook_id):
        raise WebhookRefused(400, "webhook-id: expected 1 to 200 visible ASCII characters, without spaces")
    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookRefused(400, "webhook-timestamp: expected whole seconds since the Unix epoch")
    timestamp = int(stamp)
    skew = now - timestamp
    if abs(skew) > TOLERANCE_S:
        when = f"{int(skew)} s in the past" if skew > 0 else f"{int(-skew)} s in the future"
        raise WebhookRefused(
            401,
            f"webhook-timestamp: {when}, outside the tolerance of {TOLERANCE_S // 60} minutes "
            "(sign each attempt with the current time)",
        )
    entries = signatures.split()
    if len(entries) > MAX_SIGNATURES or not all(_SIGNATURE.fullmatch(e) for e in entries):
        raise WebhookRefused(
            400,
            f"webhook-signature: expected space-separated 'v1,<base64>' entries (at most {MAX_SIGNATURES})",
        )
    given = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # another scheme (v1a: asymmetric): not one this daemon verifies
        try:
            given.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            raise WebhookRefused(400, "webhook-signature: a v1 entry is not valid base64") from None
    if not given:
        raise WebhookRefused(401, "webhook-signature: no v1 (HMAC-SHA256) signature")
    expected = base64.b64decode(key.sign(webhook_id, timestamp, body).partition(",")[2])
    # Every entry is compared, in constant time each: which one matched shows in no timing.
    matched = [hmac.compare_digest(expected, signature) for signature in given]
    if not any(matched):
        raise WebhookRefused(
            401,
            "webhook-signature: no signature matches (HMAC-SHA256 of "
            "'{webhook-id}.{webhook-timestamp}.{body}' under DENEVA_SIGNING_KEY)",
        )
    return webhook_id


def meta_signature(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends with `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_meta(app_secret: str, header: str | None, body: bytes) -> None:
    """Check `X-Hub-Signature-256` against the raw body; WebhookRefused otherwise (400 for
    a missing or malformed header, 401 for one that does not match)."""
    if header is None or not header.strip():
        raise WebhookRefused(400, "missing header X-Hub-Signature-256 (Meta signs every notification)")
    found = _META_SIGNATURE.fullmatch(header.strip())
    if found is None:
        raise WebhookRefused(400, "X-Hub-Signature-256: expected 'sha256=' and 64 hexadecimal digits")
    expected = meta_signature(app_secret, body).removeprefix("sha256=")
    if not hmac.compare_digest(expected, found[1].lower()):
        raise WebhookRefused(
            401, "X-Hub-Signature-256: does not match the body (HMAC-SHA256 under the Meta app secret)"
        )


def meta_challenge(params: Mapping[str, str], verify_token: str) -> str:
    """Meta's verification handshake: the challenge to echo. WebhookRefused: 400 for a
    request that is not a subscription handshake, 403 for a wrong verify token."""
    mode = params.get("hub.mode")
    if mode != "subscribe":
        raise WebhookRefused(400, "hub.mode: expected 'subscribe' (Meta's verification request)")
    challenge = params.get("hub.challenge")
    if challenge is None or not _CHALLENGE.fullmatch(challenge):
        raise WebhookRefused(400, "hub.challenge: expected 1 to 256 visible ASCII characters")
    token = params.get("hub.verify_token") or ""
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        raise WebhookRefused(403, "hub.verify_token: does not match DENEVA_META_VERIFY_TOKEN")
    return challenge


def delivery_digest(body: bytes) -> str:
    """A delivery's id when its sender gives none (Meta): the SHA-256 of its body."""
    return hashlib.sha256(body).hexdigest()


def parse_meta_notification(raw: Any) -> dict[str, Any]:
    """A Meta change notification `{object, entry: [{id, time, changes: [{field, value}]}]}`
    checked for its shape (the fields the fan-out reads); WebhookRefused (400) naming
    the first bad field."""
    if not isinstance(raw, dict):
        raise WebhookRefused(400, "body: expected a JSON object with object and entry")
    kind = raw.get("object")
    if not isinstance(kind, str) or not kind:
        raise WebhookRefused(400, "object: expected the kind of object notified, e.g. 'ad_account'")
    entries = raw.get("entry")
    if not isinstance(entries, list):
        raise WebhookRefused(400, "entry: expected a list of changed objects")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise WebhookRefused(400, f"entry[{i}]: expected a JSON object with id and changes")
        entry_id = entry.get("id")
        if not isinstance(entry_id, str | int) or isinstance(entry_id, bool) or not str(entry_id):
            raise WebhookRefused(400, f"entry[{i}].id: expected the object's id")
        changes = entry.get("changes", [])
        if not isinstance(changes, list) or not all(
            isinstance(c, dict) and isinstance(c.get("field"), str) for c in changes
        ):
            raise WebhookRefused(400, f"entry[{i}].changes: expected a list of {{field, value}}")
    return raw
