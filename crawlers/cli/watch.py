"""``livefleet watch``: watchlists of streamers and rooms per platform, with tiers, windows and alerts.

    livefleet watch add NAME --platform douyin URL|ID... [--tier hot|normal|tail] [--window 19:00-24:00]
                        [--tz Asia/Shanghai] [--notify-only]     add (or re-tier) targets; creates the list
    livefleet watch import NAME --platform douyin FILE [--tier ...] [--window ...]   a file, all or nothing
    livefleet watch list [NAME] [--json]          the lists (entries per tier, state), or one list's entries
    livefleet watch remove NAME URL|ID...         remove targets
    livefleet watch stop|start|delete NAME        stop watching (entries kept), watch again, delete
    livefleet watch alert add NAME --kind dingtalk --url URL [--secret S] [--events a,b]
                              [--price-cut-pct 10] [--viewers 1000,5000]
    livefleet watch alert list NAME [--json]      subscribers, secrets never shown
    livefleet watch alert remove NAME ID
    livefleet watch alert failures [--json] | replay   alerts that could not be delivered; send them again
    livefleet watch run [--platform P] [--interval 60]   the watcher (crawlers/watch/service.py)

The lists live in Redis (``crawlers.watch.lists``: the formats of windows and of import files are
described there): ``REDIS_URL``, or the embedded server as for every command. Adding a target that
is already in the list updates its tier and windows. An import checks every line first and writes
nothing if any is refused, printing each refused line with its number (exit status 2). Alert URLs
are checked as webhook URLs are (``LIVEFLEET_WEBHOOK_ALLOW`` lets internal receivers through); a
``webhook`` subscriber's secret defaults to ``LIVEFLEET_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import redis
from rich.console import RenderableType
from rich.table import Table

from crawlers.alerts.robots import EVENTS, KINDS
from crawlers.cli.output import add_row, show, table
from crawlers.watch.lists import TIERS, ImportRefused, WatchEntry, WatchList
from models.platforms import PLATFORMS
from settings.config import Config


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``watch`` subcommand and its actions."""
    p = sub.add_parser("watch", help="watchlists of streamers/rooms per platform: add, import, list, remove, "
                                     "stop, start, delete, alert")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    tiers = " | ".join(f"{name} (every {seconds:g}s)" for name, seconds in TIERS.items())

    def entry_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--platform", choices=PLATFORMS, help="the list's platform (needed to create it)")
        parser.add_argument("--tier", choices=tuple(TIERS), help=f"sampling while live: {tiers}")
        parser.add_argument("--window", action="append",
                            help="when to watch, e.g. 19:00-24:00, 22:00-02:00 or 12:00-14:00,19:00-24:00@UTC "
                                 "(repeatable; 'always' clears)")
        parser.add_argument("--tz", help="time zone of windows written without @ZONE (default Asia/Shanghai)")
        parser.add_argument("--notify-only", action="store_true",
                            help="a new list only alerts (stores no snapshots)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    a = actions.add_parser("add", help="add targets (room/profile URLs or IDs), or change their tier/windows")
    a.add_argument("name", help="the watchlist (created when missing: give --platform)")
    a.add_argument("targets", nargs="+", metavar="TARGET", help="the platform's room URL, profile URL or ID")
    entry_options(a)
    i = actions.add_parser("import", help="import a file of targets, one per line (all or nothing)")
    i.add_argument("name", help="the watchlist (created when missing: give --platform)")
    i.add_argument("file", help="lines of URL_or_ID [tier=hot] [window=19:00-24:00]; '#' comments; CSV with a "
                                "target,tier,window header; - for standard input")
    entry_options(i)
    ls = actions.add_parser("list", help="every watchlist (entries per tier, state), or one list's entries")
    ls.add_argument("name", nargs="?", help="show this list's entries and alert subscribers")
    ls.add_argument("--json", action="store_true", help="one JSON document")
    r = actions.add_parser("remove", help="remove targets from a list")
    r.add_argument("name")
    r.add_argument("targets", nargs="+", metavar="TARGET", help="URL, ID or entry key (platform:kind:id)")
    for action, text in (("stop", "stop watching a list (its entries are kept)"),
                         ("start", "watch a stopped list again"),
                         ("delete", "delete a list, its entries and its alert subscribers")):
        actions.add_parser(action, help=text).add_argument("name")

    al = actions.add_parser("alert", help="a list's alert subscribers: add, list, remove")
    alert = al.add_subparsers(dest="alert_action", required=True, metavar="ACTION")
    aa = alert.add_parser("add", help="send a list's alerts to a webhook or a DingTalk/Feishu/WeCom robot")
    aa.add_argument("name")
    aa.add_argument("--kind", required=True, choices=KINDS)
    aa.add_argument("--url", required=True, help="http(s) URL: a public address, or one LIVEFLEET_WEBHOOK_ALLOW "
                                                 "names")
    aa.add_argument("--secret", help="signing secret (a robot's 加签 secret; a webhook's HMAC key, default "
                                     "LIVEFLEET_WEBHOOK_SECRET); stored, never shown")
    aa.add_argument("--events", help=f"comma-separated, default all: {','.join(EVENTS)}")
    aa.add_argument("--price-cut-pct", type=float, help="price_cut only for cuts of at least this many percent")
    aa.add_argument("--viewers", help="viewers_crossed at these viewer counts, e.g. 1000,5000")
    aa.add_argument("--json", action="store_true", help="print the subscriber as JSON (no secret)")
    al_ls = alert.add_parser("list", help="a list's subscribers (secrets never shown)")
    al_ls.add_argument("name")
    al_ls.add_argument("--json", action="store_true", help="one JSON array")
    al_rm = alert.add_parser("remove", help="remove a subscriber")
    al_rm.add_argument("name")
    al_rm.add_argument("id")
    al_fail = alert.add_parser("failures", help="alerts that could not be delivered, with their errors")
    al_fail.add_argument("--json", action="store_true", help="one JSON array")
    al_fail.add_argument("--limit", type=int, default=100)
    alert.add_parser("replay", help="put the failed alerts back in their outboxes (the watcher sends them)")
    rn = actions.add_parser("run", help="the watcher: check watched accounts, start/stop monitors, queue alerts")
    rn.add_argument("--platform", action="append", choices=PLATFORMS, help="check this platform's entries "
                                                                          "(repeatable; default all)")
    rn.add_argument("--interval", type=float, help="seconds between two checks of an entry (default "
                                                   "LIVEFLEET_WATCH_INTERVAL_SECONDS, 60)")
    rn.add_argument("--consumer", help="this watcher's name in the feeds' consumer group (default: host name)")


def _server(config: Config) -> redis.Redis:
    """The fleet's Redis: ``REDIS_URL`` as it is, else the embedded servers (started when needed)."""
    from crawlers.redis.connection import get_redis

    if config.redis_url:  # watchlists need Redis only: nothing to start
        return get_redis(config.redis_url)
    from crawlers.services.lifecycle import ensure_services

    return get_redis(ensure_services(config.var_dir, redis_url=None, mongo_uri=config.mongo_uri).redis_url)


def _windows_text(args: argparse.Namespace) -> str | None:
    """The ``--window`` options as one windows text (each its own group), or None when none was given."""
    return ";".join(args.window) if args.window else None


def _read_lines(path: str) -> list[str]:
    try:
        if path == "-":
            return sys.stdin.read().lstrip("\ufeff").splitlines()
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace, config: Config) -> int:
    from crawlers.targets import parse_target
    from crawlers.watch import lists

    prefix = config.key_prefix
    if args.action == "run":
        from crawlers.watch.service import run_command

        if args.interval is None:
            args.interval = config.watch_interval
        if not 0 < args.interval <= 86400:  # NaN and inf fail too
            raise ValueError(f"--interval is seconds above 0 and up to 86400, got {args.interval:g}")
        return run_command(config, args.platform or PLATFORMS, args.interval, args.consumer)
    if args.action in ("add", "import"):
        windows = _windows_text(args)
        lists.parse_windows(windows, args.tz)  # refuse bad input before starting anything
        lines: list[str] = []
        if args.action == "add" and args.platform:
            for text in args.targets:
                parse_target(args.platform, text)
        if args.action == "import":
            lines = _read_lines(args.file)
            if args.platform:
                try:
                    lists.parse_import(args.platform, lines, tier=args.tier, windows=windows, tz=args.tz,
                                       source_name=args.file)
                except lists.ImportRefused as exc:
                    return _refused(exc)
        server = _server(config)
        notify_only = True if args.notify_only else None
        if args.action == "add":
            result = lists.add_entries(server, prefix, args.name, args.targets, tier=args.tier, windows=windows,
                                       source="cli", tz=args.tz, platform=args.platform, notify_only=notify_only)
        else:
            try:
                result = lists.import_file(server, prefix, args.name, lines, tier=args.tier, windows=windows,
                                           tz=args.tz, source_name=args.file, platform=args.platform,
                                           notify_only=notify_only)
            except lists.ImportRefused as exc:
                return _refused(exc)
        if args.json:
            print(json.dumps({"list": args.name, **asdict(result)}))
        elif args.action == "import":
            print(f"imported {result.entries} entries ({result.duplicates} duplicates)")
            print(f"watchlist {args.name}: {result.new} new, {result.updated} updated"
                  + ("; list created" if result.created else ""))
        else:
            print(f"watchlist {args.name}: {result.new} added, {result.updated} updated"
                  + (f" ({result.duplicates} duplicates)" if result.duplicates else "")
                  + ("; list created" if result.created else ""))
        return 0

    server = _server(config)
    if args.action == "list":
        return _list(server, prefix, args.name, args.json)
    if args.action == "remove":
        removed, missing = lists.remove_entries(server, prefix, args.name, args.targets)
        print(f"watchlist {args.name}: removed {len(removed)} entries")
        for key in missing:
            print(f"  not in the list: {key}")
        return 0
    if args.action in ("stop", "start"):
        watchlist = (lists.stop_list if args.action == "stop" else lists.start_list)(server, prefix, args.name)
        print(f"watchlist {watchlist.name}: {watchlist.state} ({watchlist.size} entries)")
        return 0
    if args.action == "delete":
        if not lists.delete_list(server, prefix, args.name):
            raise ValueError(f"no watchlist {args.name!r} (see livefleet watch list)")
        print(f"watchlist {args.name}: deleted")
        return 0
    return _alert(server, prefix, args, config)


def _refused(exc: ImportRefused) -> int:
    """Print each refused line of an import, then the summary; the exit status of refused input."""
    for number, reason in exc.refusals:
        print(f"line {number}: {reason}", file=sys.stderr)
    print(f"livefleet watch import: {len(exc.refusals)} of {exc.lines} lines refused, nothing imported",
          file=sys.stderr)
    return 2


def _alert(server: redis.Redis, prefix: str, args: argparse.Namespace, config: Config) -> int:
    from crawlers.watch import subscribing

    if args.alert_action == "add":
        secret = args.secret or (config.webhook_secret if args.kind == "webhook" else None)
        sub_id = subscribing.add_subscriber(server, prefix, args.name, args.kind, args.url, secret=secret,
                                            events=args.events, price_cut_pct=args.price_cut_pct,
                                            viewers_thresholds=args.viewers, allow=config.webhook_allow)
        (subscriber,) = [s for s in subscribing.subscribers(server, prefix, args.name) if s.id == sub_id]
        public = subscriber.public()
        if args.json:
            print(json.dumps(public, ensure_ascii=False))
        else:
            print(f"subscriber {sub_id} of {args.name}: {public['kind']} {public['url']}"
                  f"{' (signed)' if public['signed'] else ''} events {','.join(public['events'])}")
        return 0
    if args.alert_action in ("failures", "replay"):
        from crawlers.watch.outbox import alert_failures, replay_failures

        if args.alert_action == "replay":
            print(f"{replay_failures(server, prefix)} alert(s) back in their outboxes")
            return 0
        failed = alert_failures(server, prefix, args.limit)
        if args.json:
            print(json.dumps(failed, ensure_ascii=False))
        for item in [] if args.json else failed:
            alert = item.get("alert", {})
            print(f"{item.get('failed_at', '')[:19]}  {item.get('list')}/{item.get('subscriber')}  "
                  f"{alert.get('event')} {alert.get('platform')}:{alert.get('streamer_id')}  {item.get('error')}")
        if not failed and not args.json:
            print("no failed alerts")
        return 0
    if args.alert_action == "list":
        found = [s.public() for s in subscribing.subscribers(server, prefix, args.name)]
        if args.json:
            print(json.dumps(found, ensure_ascii=False))
        else:
            show(subscribers_table(found))
        return 0
    if not subscribing.remove_subscriber(server, prefix, args.name, args.id):
        raise ValueError(f"watchlist {args.name!r} has no subscriber {args.id!r} (see livefleet watch alert list)")
    print(f"subscriber {args.id} of {args.name}: removed")
    return 0


def _list(server: redis.Redis, prefix: str, name: str | None, as_json: bool) -> int:
    from crawlers.watch import lists, subscribing

    if name is None:
        found = lists.list_lists(server, prefix)
        if as_json:
            print(json.dumps([w.as_dict() for w in found], ensure_ascii=False))
        else:
            show(lists_table(found))
        return 0
    watchlist = lists.get_list(server, prefix, name)
    if watchlist is None:
        raise ValueError(f"no watchlist {name!r} (see livefleet watch list)")
    held = lists.entries(server, prefix, name)
    subs = [s.public() for s in subscribing.subscribers(server, prefix, name)]
    if as_json:
        print(json.dumps({"list": watchlist.as_dict(), "entries": [e.as_dict() for e in held],
                          "subscribers": subs}, ensure_ascii=False))
        return 0
    counts = ", ".join(f"{tier} {watchlist.counts.get(tier, 0)}" for tier in TIERS)
    print(f"watchlist {watchlist.name}: {watchlist.platform}, {watchlist.state}"
          f"{', notify-only' if watchlist.notify_only else ''}, {watchlist.size} entries ({counts}); "
          f"new entries: {watchlist.tier}, {watchlist.windows or 'always'}")
    show(entries_table(held))
    if subs:
        show(subscribers_table(subs))
    return 0


def _table(rows: Sequence[Sequence[str]]) -> Table:
    """``rows`` (the first one the header) as a table (:mod:`crawlers.cli.output`)."""
    grid = table(rows[0])
    for row in rows[1:]:
        add_row(grid, row)
    return grid


def lists_table(found: Sequence[WatchList]) -> RenderableType:
    """The watchlists as a table: state, entries per tier, default tier and windows, subscribers."""
    if not found:
        return "no watchlists"
    rows = [("NAME", "PLATFORM", "STATE", "ENTRIES", *(t.upper() for t in TIERS), "TIER", "WINDOWS", "ALERTS",
             "NOTIFY-ONLY")]
    for w in found:
        rows.append((w.name, w.platform, w.state, str(w.size), *(str(w.counts.get(t, 0)) for t in TIERS), w.tier,
                     w.windows or "always", str(w.subscribers), "yes" if w.notify_only else ""))
    return _table(rows)


def entries_table(found: Sequence[WatchEntry]) -> RenderableType:
    """One list's entries as a table."""
    if not found:
        return "no entries"
    rows = [("TARGET", "TIER", "WINDOWS", "ADDED", "SOURCE")]
    for e in found:
        rows.append((f"{e.target['kind']}:{e.target['id']}", e.tier, e.windows or "always", e.added_at[:19],
                     e.source))
    return _table(rows)


def subscribers_table(found: Sequence[dict[str, Any]]) -> RenderableType:
    """Subscribers (their :meth:`~crawlers.watch.subscribing.Subscriber.public` dicts: no secrets) as a table."""
    if not found:
        return "no alert subscribers"
    rows = [("ID", "KIND", "URL", "SIGNED", "EVENTS", "PRICE-CUT", "VIEWERS")]
    for s in found:
        rows.append((s["id"], s["kind"], s["url"], "yes" if s["signed"] else "no", ",".join(s["events"]),
                     f"{s['price_cut_pct']:g}%" if s["price_cut_pct"] is not None else "",
                     ",".join(str(v) for v in s["viewers_thresholds"] or ())))
    return _table(rows)
