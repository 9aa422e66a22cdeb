"""Watchlists: named lists of a platform's streamers and rooms to watch for going live.

* :mod:`crawlers.watch.lists`: the store in Redis (lists, entries with their tier and time windows,
  the change counter workers poll), the window and tier parsers, file imports;
* :mod:`crawlers.watch.subscribing`: each list's alert subscribers;
* ``livefleet watch``: the command (``crawlers/cli/watch.py``).
"""

from crawlers.alerts.robots import EVENTS, KINDS
from crawlers.watch.lists import (
    DEFAULT_TIER,
    DEFAULT_TZ,
    TIERS,
    AddResult,
    ImportRefused,
    WatchEntry,
    WatchList,
    Windows,
    add_entries,
    create_list,
    delete_list,
    entries,
    get_list,
    import_file,
    list_lists,
    parse_tier,
    parse_windows,
    remove_entries,
    start_list,
    stop_list,
    target_key,
    version,
    watched,
)
from crawlers.watch.subscribing import Subscriber, add_subscriber, remove_subscriber, subscribers

__all__ = [
    "DEFAULT_TIER", "DEFAULT_TZ", "EVENTS", "KINDS", "TIERS", "AddResult", "ImportRefused", "Subscriber",
    "WatchEntry", "WatchList", "Windows", "add_entries", "add_subscriber", "create_list", "delete_list", "entries",
    "get_list", "import_file", "list_lists", "parse_tier", "parse_windows", "remove_entries", "remove_subscriber",
    "start_list", "stop_list", "subscribers", "target_key", "version", "watched",
]
