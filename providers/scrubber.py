"""``Scrubber``: takes every secret the proxy holds out of text an upstream sent.

An upstream may be broken or hostile, and its words travel far: into the job store, log lines,
client answers and ``/admin/jobs``. The HTTP base (``providers.http``) passes every string of
every reply, error or success, through one ``Scrubber`` before anything else sees it, so no
adapter has to remember to.

What it knows:

- secrets held in plain (upstream keys, the admin key, the link secret), found as they are and
  in the encodings an upstream echoing a request would use: percent-encoded (``quote`` and
  ``quote_plus``), JSON-escaped, hex, and their SHA-256 hex; and inside base64 text (standard
  or URL-safe, padded or not) wherever they sit in the encoded data, as
  ``providers.base64_forms`` explains: an echoed ``Authorization: Basic base64(user:key)``
  is found. These needles are worked out once per secret, by ``learn``, never per reply.
  Matching ignores case, and text that still shows a secret once percent-decoded is withheld
  whole;
- secrets held only as a SHA-256 digest (client keys): any run of key characters (letters,
  digits, ``_-~``: ``TOKEN``) in the text, in its percent-decoded form, or in what a
  base64-looking run of it decodes to, whose digest is one of them is replaced (the whole
  base64 run, in the last case), and so is the digest itself written out. A client key with
  other characters, or glued to key characters, is found only through its digest.

A found secret becomes ``[redacted]``; in base64 text, with the character on each side of the
match, which carry the secret's first and last bits. The set only grows (``learn``): a key
dropped by a reload may still come back in an old job's words.

Hashing every token of every reply was a twelfth of a create's CPU (``bench/README.md``, issue
21), and most tokens of a reply are the same words every time (field names, status words).
So the text is cut into ``WORD``s (a client key, a base64 run and so a base64 core each lie
inside one), and words already searched and found to show no secret are remembered
(``CLEARED_MAX`` of them, up to ``CLEARED_TOKEN`` characters each; the memory is emptied when
full and whenever ``learn`` adds a secret, so a key added later is still found). What it
remembers is upstream text that holds no secret. Text is also clipped to a length (``clip``)
before it is logged or kept, so an upstream cannot fill logs or memory with one reply.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from providers.base64_forms import EDGE, RUN, cores, decoded

REDACTED = "[redacted]"
WITHHELD = "[upstream text withheld: it held a secret]"
# Secrets shorter than this are not searched for: they would match ordinary words, and their
# base64 cores random base64 text (``providers.base64_forms.MIN_CORE``).
MIN_SECRET = 8
# A client key as it may appear in text; runs at least MIN_SECRET long are hashed and looked up.
KEY_CHARACTERS = string.ascii_letters + string.digits + "_-~"
TOKEN = re.compile(f"[{re.escape(KEY_CHARACTERS)}]{{{MIN_SECRET},}}")
TOKEN_BYTES = re.compile(TOKEN.pattern.encode())
# A table making every key character "k" and every other byte ".": decoded base64 (mostly
# random bytes) is looked through for a TOKEN only when it has a run of "k" as long as one.
_KEY_MASK = bytes(ord("k") if chr(byte) in KEY_CHARACTERS else ord(".") for byte in range(256))
# Where a client key (TOKEN) or base64 (base64_forms.RUN) may be: each lies inside one word.
WORD = re.compile(rf"[A-Za-z0-9_\-~+/=]{{{MIN_SECRET},}}")
TEXT_LIMIT = 2000  # characters of upstream text kept in a record or a message
LOG_LIMIT = 200  # characters of upstream text in a log line
CLEARED_MAX = 4096  # words remembered as showing no secret (a few hundred KiB at most)
CLEARED_TOKEN = 64  # longer words are searched each time they come


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[:limit] + "...[cut]"


def encodings(secret: str) -> set[str]:
    """The forms of ``secret`` an upstream echoing it back is likely to use, but base64
    (``providers.base64_forms.cores``)."""
    raw = secret.encode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),  # JSON may escape "/" too
        raw.hex(),
        hashlib.sha256(raw).hexdigest(),
    }
    return {form for form in forms if len(form) >= MIN_SECRET}


class Scrubber:
    """Replaces every known secret, in any known encoding, in upstream text.

    Most text holds no secret, so ``holds_secret`` answers that first with plain substring
    tests on the lowered text and on its words not seen before (a few microseconds for a
    Video object); only text that fails it is rewritten.
    """

    __slots__ = (
        "_cleared",
        "_cores",
        "_digests",
        "_forms",
        "_pattern",
        "_plain",
        "_text_needles",
        "_word_cores",
    )

    def __init__(self, secrets: Iterable[str] = (), digests: Iterable[str] = ()) -> None:
        self._plain: set[str] = set()
        self._digests: set[str] = set()
        # Needles, in lower case: the encodings of ``encodings`` and the digests, the base64
        # cores; of those, what is searched for in the whole text (the cores with a JSON-escaped
        # "/" included: "\/" splits a word) and the cores searched for in each new word.
        self._forms: frozenset[str] = frozenset()
        self._cores: frozenset[str] = frozenset()
        self._text_needles: frozenset[str] = frozenset()
        # the cores a new word is searched for, as one alternation (in lower case): a third of
        # the CPU of one substring test per core on the word a create's reply brings
        self._word_cores: re.Pattern[str] | None = None
        self._cleared: set[str] = set()  # words searched and found to show no secret
        self._pattern: re.Pattern[str] | None = None
        self.learn(secrets, digests)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._plain)} secrets, {len(self._digests)} digests)"

    def learn(self, secrets: Iterable[str] = (), digests: Iterable[str] = ()) -> None:
        """Add secrets held in plain, and SHA-256 hex digests of secrets held only hashed.

        Every needle is worked out here (at start and on each reload), never per reply."""
        forms, found_cores = set(self._forms), set(self._cores)
        for secret in secrets:
            if len(secret) >= MIN_SECRET and secret not in self._plain:
                self._plain.add(secret)
                forms |= {form.lower() for form in encodings(secret)}
                found_cores |= {core.lower() for core in cores(secret)}
        for digest in digests:
            if digest and digest.lower() not in self._digests:
                self._digests.add(digest.lower())
                forms.add(digest.lower())
        if forms == self._forms and found_cores == self._cores:
            return  # nothing new (each adapter teaches the pool's scrubber its key again)
        escaped = {core for core in found_cores if "\\" in core}
        self._forms, self._cores = frozenset(forms), frozenset(found_cores)
        self._text_needles = frozenset(forms | escaped)
        in_words = sorted(found_cores - escaped, key=len, reverse=True)
        self._word_cores = re.compile("|".join(map(re.escape, in_words))) if in_words else None
        self._cleared = set()  # a word cleared before may show what is learnt now
        # A core goes with the character on each side of it (they carry bits of the secret).
        alternatives = [(form, re.escape(form)) for form in forms]
        alternatives += [(core, f"{EDGE}?{re.escape(core)}{EDGE}?") for core in found_cores]
        alternatives.sort(key=lambda pair: len(pair[0]), reverse=True)  # the longest wins a tie
        joined = "|".join(expression for _, expression in alternatives)
        self._pattern = re.compile(joined, re.IGNORECASE)

    @property
    def cleared(self) -> int:
        """How many words are remembered as showing no secret (at most ``CLEARED_MAX``)."""
        return len(self._cleared)

    def holds_secret(self, text: str) -> bool:
        """Whether ``text`` shows a secret, as it is or once percent-decoded (up to 3 times)."""
        for _ in range(4):
            lowered = text.lower()
            if any(needle in lowered for needle in self._text_needles):
                return True
            if self._words_show_secret(text):
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
            text = RUN.sub(self._run, text)
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

    def _words_show_secret(self, text: str) -> bool:
        """Whether a word of ``text`` shows a base64 core or a client key; each new short word
        is searched once."""
        if self._word_cores is None and not self._digests:
            return False
        cleared = self._cleared
        for word in WORD.findall(text):
            if word in cleared:
                continue
            if self._word_shows_secret(word):
                return True
            if len(word) <= CLEARED_TOKEN:
                if len(cleared) >= CLEARED_MAX:
                    cleared.clear()
                cleared.add(word)
        return False

    def _word_shows_secret(self, word: str) -> bool:
        lowered = word.lower()
        if self._word_cores is not None and self._word_cores.search(lowered) is not None:
            return True
        if not self._digests:
            return False
        return any(self._is_client_key(token) for token in TOKEN.findall(word)) or any(
            self._encodes_client_key(run) for run in RUN.findall(word)
        )

    def _is_client_key(self, token: str) -> bool:
        return hashlib.sha256(token.encode()).hexdigest() in self._digests

    def _encodes_client_key(self, run: str) -> bool:
        """Whether ``run`` is base64 of bytes holding a client key as a token."""
        data = decoded(run)
        if b"k" * MIN_SECRET not in data.translate(_KEY_MASK):
            return False  # the usual answer: no run of key characters long enough
        return any(self._is_client_key(token.decode()) for token in TOKEN_BYTES.findall(data))

    def _token(self, found: re.Match[str]) -> str:
        token = found.group()
        return REDACTED if self._is_client_key(token) else token

    def _run(self, found: re.Match[str]) -> str:
        run = found.group()
        return REDACTED if self._encodes_client_key(run) else run
