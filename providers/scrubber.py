"""``Scrubber``: takes every secret the proxy holds out of text an upstream sent.

An upstream may be broken or hostile, and its words travel far: into the job store, log lines,
client answers and ``/admin/jobs``. The HTTP base (``providers.http``) passes every string of
every reply, error or success, through one ``Scrubber`` before anything else sees it, so no
adapter has to remember to.

What it knows:

- secrets held in plain (upstream keys, the admin key, the link secret), found as they are and
  in the encodings an upstream echoing a request would use: percent-encoded (``quote`` and
  ``quote_plus``), JSON-escaped, base64 (standard and URL-safe), hex, and their SHA-256 hex;
  matching ignores case, and text that still shows a secret once percent-decoded is withheld
  whole;
- secrets held only as a SHA-256 digest (client keys): any run of key characters (letters,
  digits, ``_-~``: ``TOKEN``) in the text, or in its percent-decoded form, whose digest is one
  of them is replaced, and so is the digest itself written out. A client key with other
  characters is found only through its digest.

A found secret becomes ``[redacted]``. The set only grows (``learn``): a key dropped by a
reload may still come back in an old job's words. Text is also clipped to a length (``clip``)
before it is logged or kept, so an upstream cannot fill logs or memory with one reply.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

REDACTED = "[redacted]"
WITHHELD = "[upstream text withheld: it held a secret]"
# Secrets shorter than this are not searched for: they would match ordinary words.
MIN_SECRET = 8
# A client key as it may appear in text; runs at least MIN_SECRET long are hashed and looked up.
TOKEN = re.compile(rf"[A-Za-z0-9_\-~]{{{MIN_SECRET},}}")
TEXT_LIMIT = 2000  # characters of upstream text kept in a record or a message
LOG_LIMIT = 200  # characters of upstream text in a log line


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[:limit] + "...[cut]"


def encodings(secret: str) -> set[str]:
    """The forms of ``secret`` an upstream echoing it back is likely to use."""
    raw = secret.encode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        hashlib.sha256(raw).hexdigest(),
    }
    return {form for form in forms if len(form) >= MIN_SECRET}


class Scrubber:
    """Replaces every known secret, in any known encoding, in upstream text."""

    __slots__ = ("_digests", "_forms", "_pattern", "_plain")

    def __init__(self, secrets: Iterable[str] = (), digests: Iterable[str] = ()) -> None:
        self._plain: set[str] = set()
        self._forms: set[str] = set()
        self._digests: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.learn(secrets, digests)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._plain)} secrets, {len(self._digests)} digests)"

    def learn(self, secrets: Iterable[str] = (), digests: Iterable[str] = ()) -> None:
        """Add secrets held in plain, and SHA-256 hex digests of secrets held only hashed."""
        for secret in secrets:
            if len(secret) >= MIN_SECRET and secret not in self._plain:
                self._plain.add(secret)
                self._forms |= encodings(secret)
        for digest in digests:
            if digest:
                self._digests.add(digest.lower())
                self._forms.add(digest.lower())
        forms = sorted(self._forms, key=len, reverse=True)  # the longest form wins a tie
        joined = "|".join(map(re.escape, forms))
        self._pattern = re.compile(joined, re.IGNORECASE) if forms else None

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced; withheld whole when only decoding shows one."""
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if self._digests:
            text = TOKEN.sub(self._token, text)
        if "%" in text or "+" in text:
            decoded = unquote_plus(text)
            if decoded != text and self.scrub(decoded) != decoded:
                return WITHHELD
        return text

    def scrub_json(self, value: Any) -> Any:
        """A parsed JSON document with every string in it (keys too) scrubbed."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(item) for item in value]
        return value

    def _token(self, found: re.Match[str]) -> str:
        token = found.group()
        digest = hashlib.sha256(token.encode()).hexdigest()
        return REDACTED if digest in self._digests else token
