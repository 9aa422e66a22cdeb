"""``livefleet crawl PLATFORM``: push seeds for a platform's spider to the shared queue.

Seeds are the spider's own (``--seed JSON``, see its module docstring) or built from the
shortcuts (``--room``, ``--streamer``, Bilibili's ``--areas``/``--area``); any worker of
the fleet takes them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from crawlers.queue.feeder import push_seeds
from crawlers.redis.connection import get_redis, redact
from crawlers.redis.epoch import ensure_epoch
from crawlers.redis.keys import SpiderKeys
from crawlers.services.lifecycle import ensure_services
from settings.config import Config
from spiders.platforms import platform as get_platform


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("crawl", help="push seeds for a platform to the shared queue")
    p.add_argument("platform")
    p.add_argument("--areas", action="store_true", help="every area of the area tree")
    p.add_argument("--area", action="append", default=[], metavar="PARENT[:AREA]",
                   help="one area (AREA 0 or omitted: the whole parent area); repeatable")
    p.add_argument("--room", action="append", default=[], metavar="ID",
                   help="a room: Bilibili room id, Douyin web_rid, Kuaishou principalId, Taobao liveId")
    p.add_argument("--streamer", action="append", default=[], metavar="ID",
                   help="a streamer: Bilibili uid, Douyin sec_uid")
    p.add_argument("--seed", action="append", default=[], metavar="JSON",
                   help="any seed the platform's spider takes, as a JSON object (see its module docstring)")
    p.add_argument("--max-pages", type=int, default=5, help="list pages per area (default 5)")
    p.add_argument("--follow", default="rooms,streamers",
                   help="how deep to go from lists: comma list of rooms,streamers,products (default: the spider's)")


def run(args: argparse.Namespace, config: Config) -> int:
    info = get_platform(args.platform)
    seeds = seeds_from_args(args, info)
    services = ensure_services(config.var_dir, redis_url=config.redis_url, mongo_uri=config.mongo_uri)
    server = get_redis(services.redis_url)
    ensure_epoch(server, config.key_prefix)  # the crawl's state begins here: a Redis that loses it is noticed
    pushed = push_seeds(server, SpiderKeys(config.key_prefix, info.spider), seeds)
    print(f"pushed {pushed} seeds for {info.spider} to {redact(services.redis_url)}")
    return 0


def seeds_from_args(args: argparse.Namespace, info: Any) -> list[dict[str, object]]:
    """The seeds the command line asks for; ValueError naming the option that is wrong."""
    follow = [f for f in args.follow.split(",") if f]
    seeds: list[dict[str, object]] = []
    if (args.areas or args.area) and info.name != "bilibili":
        raise ValueError("--areas/--area are Bilibili's; other platforms take --seed")
    if args.room and not info.room_key or args.streamer and not info.streamer_key:
        raise ValueError(f"{info.name} takes no --room/--streamer of that kind; use --seed")
    for raw in args.seed:
        try:
            seed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--seed is not JSON ({exc}): {raw!r}") from None
        if not isinstance(seed, dict) or "kind" not in seed:
            raise ValueError(f"--seed must be a JSON object with a kind: {raw!r}")
        seeds.append(seed)
    if args.areas:
        seeds.append({"kind": "areas", "max_pages": args.max_pages, "follow": follow})
    for area in args.area:
        parent, _, sub_area = area.partition(":")
        if not parent.isdigit() or (sub_area and not sub_area.isdigit()):
            raise ValueError(f"--area takes PARENT[:AREA] numbers, got {area!r}")
        seeds.append({"kind": "area", "parent_area_id": int(parent), "area_id": int(sub_area or 0),
                      "max_pages": args.max_pages, "follow": follow})
    seeds += [{"kind": "room", str(info.room_key): room} for room in args.room]
    seeds += [{"kind": "streamer", str(info.streamer_key): uid} for uid in args.streamer]
    if args.follow != "rooms,streamers":
        for seed in seeds:
            seed.setdefault("follow", follow)
    if not seeds:
        raise ValueError("nothing to crawl: give --seed, --room, --streamer (or Bilibili's --areas/--area)")
    return seeds
