"""Stored documents as JSON takes them, for the API, the console and the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utc_ready(value: Any, timespec: str = "auto") -> Any:
    """``value`` with every datetime as ISO 8601 text in UTC (stored times are UTC, read back naive or not),
    through dicts and lists."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec=timespec)
    if isinstance(value, dict):
        return {k: utc_ready(v, timespec) for k, v in value.items()}
    if isinstance(value, list):
        return [utc_ready(v, timespec) for v in value]
    return value
