"""JSON on the wire for Scrapy requests (never pickle).

``Request.to_dict()`` holds bytes (body, header names and values) and dicts
keyed by bytes; JSON holds neither. Bytes become ``{"$b": <base64>}`` and a
dict with any non-string key becomes ``{"$d": [[key, value], ...]}``. Anything
else that JSON cannot hold (a non-JSON object in ``meta``) is an error at push
time, which is where it can still be fixed.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def _encode(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return {"$b": base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v) for k, v in obj.items()}
        return {"$d": [[_encode(k), _encode(v)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1:
            if "$b" in obj:
                return base64.b64decode(obj["$b"])
            if "$d" in obj:
                return {_decode(k): _decode(v) for k, v in obj["$d"]}
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    """Serialize a ``Request.to_dict()`` result (or any JSON-able value with bytes)."""
    return json.dumps(_encode(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def loads(data: str | bytes) -> Any:
    """Inverse of :func:`dumps`."""
    return _decode(json.loads(data))
