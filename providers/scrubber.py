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
reload may still come back in an old job's words.

Hashing every token of every reply was a twelfth of a create's CPU (``bench/README.md``, issue
21), and most tokens of a reply are the same words every time (field names, status words).
So tokens already hashed and found to be no client key are remembered (``CLEARED_MAX`` of
them, up to ``CLEARED_TOKEN`` characters each; the memory is emptied when full and whenever
``learn`` adds a digest, so a key added later is still found). What it remembers is upstream
text that holds no secret. Text is also clipped to a length (``clip``)
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
CLEARED_MAX = 4096  # tokens remembered as no client key (a few hundred KiB at most)
CLEARED_TOKEN = 64  # longer tokens are hashed each time they come


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
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # JSON may escape "/" too
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        hashlib.sha256(raw).hexdigest(),
    }
    return {form for form in forms if len(form) >= MIN_SECRET}


class Scrubber:
    """Replaces every known secret, in any known encoding, in upstream text.

    Most text holds no secret, so ``holds_secret`` answers that first with plain substring
    tests on the lowered text (a few microseconds for a Video object); only text that fails it
    is rewritten.
    """

    __slots__ = ("_cleared", "_digests", "_forms", "_pattern", "_plain")

    def __init__(self, secrets: Iterable[str] = (), digests: Iterable[str] = ()) -> None:
        self._plain: set[str] = set()
        self._forms: frozenset[str] = frozenset()  # lower case
        self._digests: set[str] = set()
        self._cleared: set[str] = set()  # tokens hashed and found to be no client key
        self._pattern: re.Pattern[str] | None = None
        self.learn(secrets, digests)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._plain)} secrets, {len(self._digests)} digests)"

    def learn(self, secrets: Iterable[str] = (), digests: Iterable[str] = ()) -> None:
        """Add secrets held in plain, and SHA-256 hex digests of secrets held only hashed."""
        forms = set(self._forms)
        for secret in secrets:
            if len(secret) >= MIN_SECRET and secret not in self._plain:
                self._plain.add(secret)
                forms |= {form.lower() for form in encodings(secret)}
        for digest in digests:
            if digest:
                self._digests.add(digest.lower())
                forms.add(digest.lower())
                self._cleared = set()  # a token cleared before may be this key
        self._forms = frozenset(forms)
        ordered = sorted(forms, key=len, reverse=True)  # the longest form wins a tie
        joined = "|".join(map(re.escape, ordered))
        self._pattern = re.compile(joined, re.IGNORECASE) if ordered else None

    @property
    def cleared(self) -> int:
        """How many tokens are remembered as no client key (at most ``CLEARED_MAX``)."""
        return len(self._cleared)

    def holds_secret(self, text: str) -> bool:
        """Whether ``text`` shows a secret, as it is or once percent-decoded (up to 3 times)."""
        for _ in range(4):
            lowered = text.lower()
            if any(form in lowered for form in self._forms):
                return True
            if self._digests and self._shows_client_key(text):
                return True
            if "%" not in text:
                return False
            decoded = unquote_plus(text)
            if decoded == text:
                return False
            text = decoded
        return True  # encoded more deeply than anyone would: treat as a secret

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced; withheld whole when only decoding shows one."""
        if not self.holds_secret(text):
            return text
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if self._digests:
            text = TOKEN.sub(self._token, text)
        return WITHHELD if self.holds_secret(text) else text

    def scrub_json(self, value: Any) -> Any:
        """A parsed JSON document with every string in it (keys too) scrubbed."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(item) for item in value]
        return value

    def scrub_reply(self, body: bytes, parsed: Any) -> Any:
        """``parsed`` (from ``body``) scrubbed; walked string by string only when the body as
        sent holds a secret or escapes (``\\u``) that could hide one."""
        text = body.decode("utf-8", "replace")
        if "\\u" not in text and not self.holds_secret(text):
            return parsed
        return self.scrub_json(parsed)

    def _shows_client_key(self, text: str) -> bool:
        """Whether a token of ``text`` is a client key; each new short token is hashed once."""
        cleared = self._cleared
        for token in TOKEN.findall(text):
            if token in cleared:
                continue
            if self._is_client_key(token):
                return True
            if len(token) <= CLEARED_TOKEN:
                if len(cleared) >= CLEARED_MAX:
                    cleared.clear()
                cleared.add(token)
        return False

    def _is_client_key(self, token: str) -> bool:
        return hashlib.sha256(token.encode()).hexdigest() in self._digests

    def _token(self, found: re.Match[str]) -> str:
        token = found.group()
        return REDACTED if self._is_client_key(token) else token
