"""How a secret shows inside base64 text, for ``providers.scrubber``.

Base64 writes each 3 bytes as 4 characters of 6 bits, so a secret inside encoded data (an
echoed ``Authorization: Basic base64(user:key)``, a blob in an error body) is written
differently depending on where it starts: at a byte offset of 0, 1 or 2 modulo 3. For each of
those 3 alignments, the characters made only of the secret's own bits (its *core*) are the same
whatever surrounds it; the character just before the core and the one just after may mix a
few of the secret's bits (at most 4) with its neighbours', and change with them.

- ``cores`` gives the 3 cores of a secret known in plain, in the standard and the URL-safe
  alphabets (and the standard one with ``/`` JSON-escaped). Padding (``=``) only ever ends
  the data, never falls inside a core, so text with or without it matches alike. Whoever
  redacts a core takes ``EDGE`` with it on both sides: the characters that carry the rest
  of the secret's bits.
- ``decoded`` reads a base64-looking ``RUN`` of text at each of its 4 character offsets
  and in both alphabets, for secrets known only by a digest, which cannot be encoded ahead.

No core is shorter than ``MIN_CORE`` characters (60 bits of the secret): a given core turns up
by chance in random base64 text (an id, a thumbnail) once in 2**50 positions even with case
ignored, as the scrubber matches. A secret of 8 bytes (the scrubber's shortest) has cores of
exactly 10 characters at every alignment; a 4-byte one would have cores of 4 and 5 characters
(24 and 30 bits), one of them found about once per megabyte of any image, mangling it.
"""

from __future__ import annotations

import base64
import binascii
import re

MIN_CORE = 10
# A character of either alphabet (``/`` perhaps JSON-escaped): what may sit just before or after
# a core and carry its bits.
EDGE = r"(?:[A-Za-z0-9+/_-]|\\/)"
# Text that could be base64 of 8 bytes or more (11 characters carry 66 bits), padding included.
RUN = re.compile(r"[A-Za-z0-9+/_-]{11,}={0,2}")
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"", b"==", b"=")  # by the characters of a last group: 2 -> 1 byte, 3 -> 2
_TO_URLSAFE = str.maketrans("+/", "-_")


def cores(secret: str) -> set[str]:
    """The parts of base64 text that show ``secret`` wherever it sits in the encoded data."""
    raw = secret.encode()
    found: set[str] = set()
    for offset in range(3):
        # Pad both ends so every character the secret touches is written; keep only those
        # whose 6 bits all fall inside it: bits [6i, 6i + 6) within [8 * offset, 8 * (offset + n)).
        encoded = base64.b64encode(bytes(offset) + raw + bytes(3)).decode()
        first = -(-8 * offset // 6)
        end = 8 * (offset + len(raw)) // 6
        core = encoded[first:end]
        if len(core) >= MIN_CORE:
            found |= {core, core.translate(_TO_URLSAFE), core.replace("/", "\\/")}
    return found


def decoded(run: str) -> bytes:
    """What ``run`` (a ``RUN``) encodes, read from each of its first 4 characters (the encoded
    data may start inside it: "token_" glued before it), joined by newlines. A partial last
    group is decoded as far as it goes; an alphabet mixed from both reads as the standard one."""
    data = run.encode().rstrip(b"=").translate(_TO_STANDARD)
    parts = []
    for start in range(4):
        piece = data[start:]
        cut = len(piece) % 4
        if cut == 1:  # 6 bits: not a byte
            piece = piece[:-1]
        parts.append(binascii.a2b_base64(piece + _PADDING[cut]))
    return b"\n".join(parts)
