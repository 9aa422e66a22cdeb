"""``livefleet status [--json]``: the fleet as Redis sees it (``crawlers/health/status.py``); starts nothing.

The figures come from :func:`crawlers.health.status.collect_status`; this module only prints them, as
tables (:mod:`crawlers.cli.output`: colours on a terminal, plain columns in a pipe) or as one JSON document.
No Redis to read is exit status 3 (a service unreachable), with the reason on stderr (and, with ``--json``,
as the document's ``error``).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rich.console import RenderableType
from rich.text import Text

from crawlers.cli.output import add_row, indented, show, table
from crawlers.health.status import IDENTITY_ROWS, IPM_MINUTES, collect_status, redis_to_watch
from crawlers.redis.connection import redact
from settings.config import Config

#: Exit status when there is no Redis to read (``crawlers.cli.main.EXIT_UNREACHABLE``; not imported from
#: there, which imports every command module).
_UNREACHABLE = 3


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("status", help="workers (live or stale), queues, leases, dead letters, items/min, rates")
    p.add_argument("--json", action="store_true", help="print the same as one JSON document")


def run(args: argparse.Namespace, config: Config) -> int:
    url, origin = redis_to_watch(config)
    error = None if url else origin
    status: dict[str, Any] = {}
    if url is not None:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=15, retry=Retry(NoBackoff(), 1))
        try:
            status = collect_status(client, config.key_prefix, interval=config.heartbeat_seconds)
        except redis.RedisError as exc:
            error = f"Redis at {redact(url)} ({origin}) does not answer: {redact(exc)}"
        finally:
            client.close()
    if error is not None:
        if args.json:
            print(json.dumps({"redis": redact(url) if url else None, "error": error}))
        print(f"livefleet status: {error}", file=sys.stderr)
        return _UNREACHABLE
    assert url is not None
    if args.json:
        print(json.dumps({"redis": redact(url), **status}, sort_keys=False))
    else:
        show(*render(status, source=f"{redact(url)} ({origin})"))
    return 0


# -- text -------------------------------------------------------------------------------------


def _when(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def _priorities(queue: dict[str, Any]) -> str:
    parts = [f"{p['priority']}:{p['requests']}" for p in queue["by_priority"]]
    if queue["other"]:
        parts.append(f"other:{queue['other']}")
    return " ".join(parts) or "-"


def render(status: dict[str, Any], *, source: str | None = None) -> list[RenderableType]:
    """``status`` (from :func:`~crawlers.health.status.collect_status`) as lines and tables, in order."""
    fleet = status["fleet"]
    out: list[RenderableType] = [
        f"livefleet status at {_when(status['at'])}, key prefix {status['prefix']!r}"
        + (f", Redis {source}" if source else "")]
    out += _state_lines(status.get("state") or {})
    out += ["", f"workers: {fleet['workers_live']} live, {fleet['workers_stale']} stale"]
    if status["workers"]:
        grid = table(["worker", "spider", "state", "beat", "leases", "prefetched", "items", "pages", "blocked",
                      "errors"], right=range(3, 10))
        for w in status["workers"]:
            c = w.get("counters") or {}
            add_row(grid, [w["worker"], w.get("spider") or "?", w["state"], _age(w["beat_age"]),
                           w.get("leases", "-"), w.get("prefetched", "-"), c.get("items", "-"), c.get("pages", "-"),
                           c.get("blocked", "-"), c.get("errors", "-")])
        out.append(indented(grid))
    else:
        out.append("  (none: no worker has a heartbeat in Redis)")
    out += _stale_lines(status.get("stale"))
    grid = table(["platform", "queued", "by priority", "leased", "expired", "dead", "seeds", "items", "items/min",
                  "attempts", "block rate", "error rate"], right=[1, *range(3, 12)])
    for name, p in status["platforms"].items():
        add_row(grid, [name, p["queue"]["total"], _priorities(p["queue"]), p["leased"], p["leases_expired"],
                       p["dead_letters"], p["seeds"], p["counters"]["items"], p["items_per_minute"], p["attempts"],
                       _pct(p["block_rate"]), _pct(p["error_rate"])])
    add_row(grid, ["fleet", fleet["queued"], "", fleet["leased"], fleet["leases_expired"], fleet["dead_letters"],
                   fleet["seeds"], fleet["counters"]["items"], fleet["items_per_minute"], fleet["attempts"],
                   _pct(fleet["block_rate"]), _pct(fleet["error_rate"])], styles={0: "bold"})
    out += ["", "platforms:", indented(grid)]
    out += _identity_lines(status.get("identities") or [])
    out += ["", f"items/min: average of the last {IPM_MINUTES} whole minutes (since the first items, if later).",
            "Rates are per page attempt (parsed, blocked, retryable, gone, unparsable or failed);",
            "errors = retryable + unparsable + failed."]
    return out


def _state_lines(state: dict[str, Any]) -> list[RenderableType]:
    """The loss of the fleet's state, first and loud; nothing when there was none."""
    if not state.get("lost_count"):
        return []
    latest = state["lost"][0] if state["lost"] else {}
    found = "missing" if latest.get("found") is None else f"replaced by {latest.get('found')}"
    at = _when(float(latest["at"])) if isinstance(latest.get("at"), int | float) else "?"
    loud = "bold red"
    return ["", Text(f"!! REDIS LOST THE FLEET'S STATE ({state['lost_count']} report(s)); latest at {at} by "
                     f"{latest.get('who', '?')}: epoch {latest.get('lost', '?')} {found}.", style=loud),
            Text("!! Queued and leased requests, seeds, seen-sets, dead letters, monitors and webhooks of that "
                 "epoch are gone:", style=loud),
            Text("!! crawls that were running are NOT complete. Push their seeds again, re-add monitors and "
                 "webhooks; see `--json` state.lost.", style=loud)]


def _stale_lines(stale: Any) -> list[RenderableType]:
    """One line about workers whose heartbeat expired (``collect_status``'s ``stale``), when there are any."""
    if not isinstance(stale, dict) or not stale.get("count"):
        return []
    newest = stale.get("newest_seen")
    seen = f"; the newest was last seen at {_when(float(newest))}" if isinstance(newest, int | float) else ""
    return [Text(f"  {stale['count']} worker(s) gone without leaving: heartbeat expired{seen}", style="yellow")]


def _identity_lines(identities: list[dict[str, Any]]) -> list[RenderableType]:
    """Egress identities' health per platform (labels only: never a proxy's credentials)."""
    if not identities:
        return []
    order = {"retired": 0, "cooling": 1, "probing": 2, "ok": 3}
    shown = sorted(identities, key=lambda r: (order.get(r["state"], 4), r["platform"], r["label"]))[:IDENTITY_ROWS]
    grid = table(["identity", "platform", "state", "requests", "blocks", "errors", "latency", "rest left"],
                 right=range(3, 8))
    for r in shown:
        add_row(grid, [r["label"], r["platform"], r["state"], r["requests"], r["blocks"], r["errors"],
                       "-" if r["latency_ms"] is None else f"{r['latency_ms']:.0f}ms",
                       _age(r["rest_left_s"]) if r["rest_left_s"] else "-"])
    states = {state: sum(r["state"] == state for r in identities) for state in order}
    summary = ", ".join(f"{n} {state}" for state, n in states.items() if n)
    out: list[RenderableType] = ["", f"egress identities (per platform): {summary}", indented(grid)]
    if len(identities) > len(shown):
        out.append(f"  ... {len(identities) - len(shown)} more (all of them: --json identities)")
    return out
