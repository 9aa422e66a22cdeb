"""``livefleet monitor add|list|stop``: the operator's side of the monitor registry.

    livefleet monitor add douyin https://live.douyin.com/604946797621 --every 30s --for 6h [--webhook URL]
    livefleet monitor list [--json]
    livefleet monitor stop ID

Redis comes from ``REDIS_URL`` or the embedded server, as for every command. ``list`` also shows
each monitor's current session (``crawlers.monitor.registry.current_session``: the newest
``live_sessions`` document of its room or streamer, from MongoDB); none when MongoDB has none.
The workers of the platform's spider serve the monitor; ``add`` starts none.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import RenderableType
from rich.text import Text

from crawlers.cli.output import add_row, plain, show, table
from crawlers.monitor.registry import Monitor, Registry
from models.platforms import PLATFORMS
from settings.config import Config


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``monitor`` subcommand and its actions."""
    p = sub.add_parser("monitor", help="watch a competitor's room every N seconds for a while: add, list, stop")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("add", help="watch a room or streamer (room URL, profile URL or ID)")
    a.add_argument("platform", help=" or ".join(PLATFORMS))
    a.add_argument("target", help="the platform's room URL, profile URL or bare ID")
    a.add_argument("--every", default="30s", help="interval between captures, e.g. 30s, 5m (default 30s)")
    a.add_argument("--for", dest="for_", default="6h", help="how long to watch, e.g. 6h, 1d (default 6h)")
    a.add_argument("--webhook", help="an http(s) URL told of what the monitor stores")
    a.add_argument("--json", action="store_true", help="print the monitor as JSON")
    ls = actions.add_parser("list", help="every monitor with its state, ticks, late ticks, last events and its "
                                         "room's current session")
    ls.add_argument("--json", action="store_true", help="one JSON array")
    s = actions.add_parser("stop", help="stop a monitor (its history is kept)")
    s.add_argument("id")
    s.add_argument("--json", action="store_true", help="print the monitor as JSON")


def run(args: argparse.Namespace, config: Config) -> int:
    from crawlers.redis.connection import get_redis
    from crawlers.services.lifecycle import ensure_services

    if args.action == "add":  # refuse a bad target before starting anything
        from crawlers.monitor.registry import check_durations
        from crawlers.monitor.watched import parse_target

        target = parse_target(args.platform, args.target)
        check_durations(args.every, args.for_)
        if args.webhook is not None:  # refused before the monitor is stored, not after
            from crawlers.feeds.urlcheck import UrlRefused, check_url

            try:
                check_url(args.webhook, config.webhook_allow)
            except UrlRefused as exc:
                raise ValueError(f"--webhook must be an http(s) URL livefleet may post to: {exc}") from None
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    registry = Registry(get_redis(services.redis_url), config.key_prefix)
    if args.action == "add":
        monitor = registry.add(args.platform, target, args.every, args.for_, webhook=args.webhook,
                               webhook_secret=config.webhook_secret)
        if args.json:
            print(json.dumps(monitor.as_dict(), ensure_ascii=False))
        else:
            print(f"monitor {monitor.id}: {monitor.platform} {monitor.target['kind']} {monitor.target['id']} "
                  f"every {monitor.every_s:g}s until {monitor.until}")
        return 0
    if args.action == "list":
        monitors = registry.list()
        sessions = _current_sessions(services.mongo_uri, config, monitors)
        if args.json:
            print(json.dumps([{**m.as_dict(), "session": sessions.get(m.id)} for m in monitors], ensure_ascii=False))
        else:
            show(*monitor_table(monitors, sessions))
        return 0
    monitor = registry.stop(args.id)
    if monitor is None:
        raise ValueError(f"no monitor {args.id!r} (see livefleet monitor list)")
    print(json.dumps(monitor.as_dict(), ensure_ascii=False) if args.json else f"monitor {monitor.id}: stopped")
    return 0


def _current_sessions(mongo_uri: str, config: Config, monitors: list[Monitor]) -> dict[str, dict[str, Any] | None]:
    """Each monitor's current session from MongoDB; none (and a warning) when MongoDB does not answer."""
    if not monitors:
        return {}
    from pymongo.errors import PyMongoError

    from crawlers.monitor.registry import current_sessions
    from pipelines.p300_store import close_store, open_store

    client, db = open_store(mongo_uri, config.mongo_db)
    try:
        return current_sessions(db, monitors)
    except PyMongoError as exc:
        print(f"livefleet monitor list: no sessions shown, MongoDB does not answer: {exc}", file=sys.stderr)
        return {}
    finally:
        close_store(client)


def _session_cells(session: dict[str, Any] | None) -> tuple[str, str, str, str]:
    """SESSION, PEAK, UNITS, GMV of a monitor's current session: empty where unknown, never 0 for unknown."""
    from crawlers.reports.ranking import gmv_cell

    if not session:
        return "", "", "", ""

    def count(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else ""

    return (f"{session['session_id']} ({session['status']})", count(session.get("viewers_peak")),
            count(session.get("units_sold")),
            gmv_cell(session.get("gmv_estimate"), session.get("gmv_low"), session.get("gmv_high")) or "")


def format_table(monitors: list[Monitor], sessions: dict[str, dict[str, Any] | None] | None = None) -> str:
    """The monitors as a plain-text table (:func:`monitor_table`), the notes about late ticks after it."""
    return plain(*monitor_table(monitors, sessions))


def monitor_table(monitors: list[Monitor], sessions: dict[str, dict[str, Any] | None] | None = None,
                  ) -> list[RenderableType]:
    """The monitors as a table; a monitor with late ticks says so, with the last reason. With ``sessions``
    (by monitor ID), each monitor's current session: its ID and status, peak viewers, units sold and GMV
    [low, high], blank where MongoDB has no session or no figure."""
    if not monitors:
        return ["no monitors"]
    shown = sessions is not None
    grid = table(["ID", "PLATFORM", "TARGET", "EVERY", "STATE", "TICKS", "LATE", "STATUS", "UNTIL",
                  *(("SESSION", "PEAK", "UNITS", "GMV [LOW, HIGH]") if shown else ())])
    notes: list[RenderableType] = []
    for m in monitors:
        add_row(grid, [m.id, m.platform, f"{m.target['kind']}:{m.target['id']}", f"{m.every_s:g}s", m.state,
                       str(m.ticks), str(m.late), m.last_status or "-", m.until[:19],
                       *(_session_cells((sessions or {}).get(m.id)) if shown else ())],
                styles={6: "bold red"} if m.late else None)
        if m.late:
            notes.append(Text(f"{m.id}: LATE {m.late} of {m.ticks} ticks, last at {m.last_late_at} "
                              f"({m.last_late_reason}): the fleet does not keep this interval", style="red"))
    return [grid, *notes]
