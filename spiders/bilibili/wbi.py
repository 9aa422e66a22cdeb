"""Bilibili's WBI request signature (``w_rid`` + ``wts``), as pure functions.

Since 2023 many web endpoints (``x/space/wbi/acc/info``, the live lists, getDanmuInfo...)
want two extra query parameters; without them, or with a wrong or stale one, they
answer -352 (risk control) or a ``data.v_voucher`` instead of data. The algorithm
(SocialSisterYi/bilibili-API-collect ``docs/misc/sign/wbi.md``):

1. ``img_key`` / ``sub_key`` are the file stems of ``data.wbi_img.img_url`` / ``sub_url``
   in ``x/web-interface/nav`` (served to anyone: logged out it answers code -101 and
   still carries ``wbi_img``). They rotate (daily): a signer caches and refreshes them.
2. ``mixin_key``: the 64 characters of ``img_key + sub_key`` picked in the order of
   :data:`MIXIN_KEY_ENC_TAB`, first 32 kept.
3. The params plus ``wts`` (unix seconds), sorted by key, with ``!'()*`` removed from
   every value, percent-encoded like JavaScript's ``encodeURIComponent`` (upper-case
   hex, space ``%20``; after the removal only ``~`` is left of its unescaped marks,
   which :func:`urllib.parse.quote` keeps too).
4. ``w_rid = md5(query + mixin_key)``, lower-case hex; ``w_rid`` and ``wts`` are sent
   beside the original params (their order does not matter).

Nothing here touches the network or the clock: ``wts`` is an argument.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["MIXIN_KEY_ENC_TAB", "SIGN_PARAMS", "WbiKeys", "keys_from_nav", "mixin_key", "sign", "sign_url"]

#: The permutation (bilibili-API-collect docs/misc/sign/wbi.md; the same in yt-dlp and
#: dart_simple_live). A permutation of 0..63: checked at import.
MIXIN_KEY_ENC_TAB: tuple[int, ...] = (
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49,
    33, 9, 42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40,
    61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11,
    36, 20, 34, 44, 52,
)  # fmt: skip
if sorted(MIXIN_KEY_ENC_TAB) != list(range(64)):  # pragma: no cover - a guard against a typo
    raise RuntimeError("MIXIN_KEY_ENC_TAB must be a permutation of 0..63")

#: The parameters a signature adds (dropped from a URL before it is signed again).
SIGN_PARAMS = ("w_rid", "wts")
_DROPPED = str.maketrans("", "", "!'()*")


class WbiKeys(tuple[str, str]):
    """``(img_key, sub_key)``."""

    __slots__ = ()

    def __new__(cls, img_key: str, sub_key: str) -> WbiKeys:
        return super().__new__(cls, (img_key, sub_key))

    @property
    def mixin(self) -> str:
        return mixin_key(self[0], self[1])


def _stem(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError(f"not a WBI key URL: {url!r}")
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    stem = name.split(".", 1)[0]
    if not stem:
        raise ValueError(f"no file name in WBI key URL {url!r}")
    return stem


def keys_from_nav(payload: bytes | str | Mapping[str, Any]) -> WbiKeys:
    """The keys in a ``x/web-interface/nav`` answer (code 0 or -101 alike); ValueError if none."""
    if isinstance(payload, (bytes, str)):
        payload = json.loads(payload)
    data = payload.get("data") if isinstance(payload, Mapping) else None
    wbi = data.get("wbi_img") if isinstance(data, Mapping) else None
    if not isinstance(wbi, Mapping):
        raise ValueError("no data.wbi_img in the nav answer")
    return WbiKeys(_stem(wbi.get("img_url")), _stem(wbi.get("sub_url")))


def mixin_key(img_key: str, sub_key: str) -> str:
    raw = img_key + sub_key
    if len(raw) != 64:
        raise ValueError(f"img_key + sub_key must be 64 characters, got {len(raw)}")
    return "".join(raw[i] for i in MIXIN_KEY_ENC_TAB)[:32]


def _query(params: Iterable[tuple[str, Any]]) -> str:
    cleaned = sorted((str(k), str(v).translate(_DROPPED)) for k, v in params)
    return urlencode(cleaned, quote_via=quote, safe="")


def sign(params: Mapping[str, Any] | Iterable[tuple[str, Any]], keys: WbiKeys | str, wts: int) -> dict[str, str]:
    """``{"w_rid": ..., "wts": ...}`` for ``params``; ``keys`` is a :class:`WbiKeys` or a mixin key."""
    items = list(params.items() if isinstance(params, Mapping) else params)
    items = [(k, v) for k, v in items if k not in SIGN_PARAMS] + [("wts", int(wts))]
    mixin = keys.mixin if isinstance(keys, WbiKeys) else keys
    w_rid = hashlib.md5((_query(items) + mixin).encode(), usedforsecurity=False).hexdigest()
    return {"w_rid": w_rid, "wts": str(int(wts))}


def sign_url(url: str, keys: WbiKeys | str, wts: int) -> str:
    """``url`` with its query signed: an old ``w_rid``/``wts`` is replaced, the rest kept as sent."""
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SIGN_PARAMS]
    kept = "&".join(p for p in parts.query.split("&") if p and p.split("=", 1)[0] not in SIGN_PARAMS)
    added = urlencode(sign(params, keys, wts))
    return urlunsplit(parts._replace(query=f"{kept}&{added}" if kept else added))
