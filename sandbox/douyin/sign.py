"""The request signature of the Douyin replica: X-Bogus, checked by the server.

Douyin's web APIs want ``a_bogus`` (SM3/RC4 based) or, on older paths, ``X-Bogus``
(MD5/RC4 based). The replica uses the X-Bogus construction for the value of either
parameter: it is the documented one (PLATFORMS.md §1.4) and is small enough to ship,
unminified, in the room page's own script (``douyin_js.py``), which computes the same
bytes. Over the inputs:

1. ``q`` = MD5(MD5(query)) and ``b`` = MD5(MD5(body)) (query = the URL's raw query
   string without the signature parameter; body = the raw POST body, empty for GET);
2. ``u`` = MD5(base64(RC4(key 00 01 0c, User-Agent)));
3. 19 bytes: ``64, 0, 1, 12, q[14], q[15], b[14], b[15], u[14], u[15]``, the 4 bytes of
   the unix time in seconds, the 4 bytes of the constant 536919696, then the XOR of all
   before (X-Bogus' even/odd interleave followed by its fixed permutation leaves the
   bytes in this order);
4. RC4 with the one-byte key ``ff``, prefixed with ``02 ff``: 21 bytes;
5. 3 bytes -> 4 chars over ``Dkdpgh4ZKsQB80/Mfvw36XI1R25-WUAlEi7NLboqYTOPuzmFjJnryx9HVGcaStCe=``.

The 28 chars bind the query, the body and the User-Agent (16 bits of each) and carry
their time, so the server can refuse altered and stale requests. Strings are hashed as
UTF-8.
"""

from __future__ import annotations

import base64
import hashlib
import time
from functools import reduce
from operator import xor
from urllib.parse import unquote

ALPHABET = "Dkdpgh4ZKsQB80/Mfvw36XI1R25-WUAlEi7NLboqYTOPuzmFjJnryx9HVGcaStCe="
_INDEX = {c: i for i, c in enumerate(ALPHABET[:64])}
UA_KEY = b"\x00\x01\x0c"
CANVAS = 536919696
#: Query parameters that carry a signature (never part of what is signed).
SIGNATURE_PARAMS = ("a_bogus", "X-Bogus")
#: Signatures older than this many seconds are refused; a little clock skew ahead is allowed.
MAX_AGE = 300
MAX_AHEAD = 60
SIGNED_LENGTH = 28


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 keystream XOR (encrypting and decrypting are the same)."""
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) & 255
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) & 255
        j = (j + s[i]) & 255
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) & 255])
    return bytes(out)


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _twice(data: bytes) -> bytes:
    return _md5(_md5(data))


def ua_digest(user_agent: str) -> bytes:
    """MD5 of the base64 of the RC4-encrypted User-Agent."""
    return _md5(base64.b64encode(rc4(UA_KEY, user_agent.encode("utf-8"))))


def _plain(query: str, body: bytes, user_agent: str, ts: int) -> list[int]:
    q, b, u = _twice(query.encode("utf-8")), _twice(body), ua_digest(user_agent)
    ts &= 0xFFFFFFFF
    values = [64, 0, 1, 12, q[14], q[15], b[14], b[15], u[14], u[15]]
    values += [ts >> 24 & 255, ts >> 16 & 255, ts >> 8 & 255, ts & 255]
    values += [CANVAS >> 24 & 255, CANVAS >> 16 & 255, CANVAS >> 8 & 255, CANVAS & 255]
    return values + [reduce(xor, values)]


def sign(query: str, user_agent: str, body: bytes | str = b"", ts: int | None = None) -> str:
    """The 28-char signature of ``query`` (+ ``body``) for ``user_agent`` at unix time ``ts`` (default now)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    stamp = int(time.time()) if ts is None else int(ts)
    raw = b"\x02\xff" + rc4(b"\xff", bytes(_plain(query, body, user_agent, stamp)))
    out = []
    for i in range(0, len(raw), 3):
        n = raw[i] << 16 | raw[i + 1] << 8 | raw[i + 2]
        out.append(ALPHABET[n >> 18 & 63] + ALPHABET[n >> 12 & 63] + ALPHABET[n >> 6 & 63] + ALPHABET[n & 63])
    return "".join(out)


def decode(signature: str) -> list[int] | None:
    """The 19 plain bytes inside a signature, or None if it is not one."""
    if len(signature) != SIGNED_LENGTH or any(c not in _INDEX for c in signature):
        return None
    raw = bytearray()
    for i in range(0, SIGNED_LENGTH, 4):
        n = 0
        for c in signature[i : i + 4]:
            n = n << 6 | _INDEX[c]
        raw += bytes((n >> 16 & 255, n >> 8 & 255, n & 255))
    if raw[:2] != b"\x02\xff":
        return None
    return list(rc4(b"\xff", bytes(raw[2:])))


def signed_at(signature: str) -> int | None:
    """The unix time a signature carries, or None if it is not one."""
    plain = decode(signature)
    if plain is None:
        return None
    return plain[10] << 24 | plain[11] << 16 | plain[12] << 8 | plain[13]


def verify(signature: str, query: str, user_agent: str, body: bytes = b"", now: float | None = None) -> str | None:
    """Why ``signature`` does not sign this request now, or None when it does."""
    plain = decode(signature)
    if plain is None:
        return "malformed"
    stamp = signed_at(signature)
    assert stamp is not None
    want = _plain(query, body, user_agent, stamp)
    if plain[:4] != want[:4] or plain[14:18] != want[14:18] or reduce(xor, plain[:18]) != plain[18]:
        return "corrupt"
    if plain[4:6] != want[4:6]:
        return "query mismatch"
    if plain[6:8] != want[6:8]:
        return "body mismatch"
    if plain[8:10] != want[8:10]:
        return "user-agent mismatch"
    current = time.time() if now is None else now
    if stamp < current - MAX_AGE:
        return "stale"
    if stamp > current + MAX_AHEAD:
        return "from the future"
    return None


def split_query(raw_query: str) -> tuple[str, str | None]:
    """``(the query as signed, the signature)`` from a raw (still percent-encoded) query string.

    The signature parameter is removed wherever it stands; the other parameters keep
    their order and encoding, exactly as the client signed them.
    """
    kept: list[str] = []
    found: str | None = None
    for part in raw_query.split("&") if raw_query else ():
        name, _, value = part.partition("=")
        if name in SIGNATURE_PARAMS:
            found = unquote(value)
        else:
            kept.append(part)
    return "&".join(kept), found
