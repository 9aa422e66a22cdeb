"""Bodies over the size limit, end to end: a gzip bomb and a huge plain body are refused while
they download, quarantined with the reason, and their requests are done, not retried.

Before the limit, a 917 KB gzip body that inflates to 943 MB was accepted (worker RSS 5.6 GB),
fetched three times, then dead-lettered with ``DocumentTooLarge``. The sandbox's chaos replaces
every 4th Bilibili answer with a 64 MiB body (alternately gzip-bombed and plain); Bilibili's
limit is 2 MiB (``LIVEFLEET_MAX_RESPONSE_BYTES``).
"""

from __future__ import annotations

import time

import psutil
import pytest
import redis as redis_lib
from pymongo import MongoClient

from crawlers.queue.lease_queue import dead_letters
from sandbox.process import start_sandbox
from tests import crawl_helpers

pytestmark = pytest.mark.integration


def test_oversized_answers_are_quarantined_once_and_never_retried(tmp_path, redis_server, mongo_server):
    # No faults: a fault room's HTML error page is retried until it gives up (a dead letter), unless
    # one of its retries happens to draw an oversized answer, which ends it.
    with start_sandbox("--time-scale", "0", "--no-chaos", "--no-faults", "--streamers", "120") as sandbox:
        sandbox.set_config(oversize_every=4)
        fleet = crawl_helpers.Fleet(tmp_path, sandbox, redis_server.url, mongo_server.url, spider="bilibili")
        fleet.push_seeds([{"kind": "areas", "max_pages": 2}])
        fleet.start(1)
        peak = 0
        try:
            worker = psutil.Process(fleet.procs[0].pid)
            while fleet.procs[0].poll() is None:  # sample the worker's memory while it crawls
                try:
                    peak = max(peak, worker.memory_info().rss)
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.05)
            stats = fleet.wait(120)
        finally:
            fleet.stop()
        chaos = sandbox.stats()
    # An oversized answer to a session's warm-up (Bilibili's cookie handout, ``finger/spi``) is no page:
    # the warm-up fails, is counted, and the session is warmed again before its next request.
    assert sum(chaos["oversized"].values()) == chaos["outcomes"]["oversized"], "counted per endpoint too"
    assert all(name.startswith("bilibili:") for name in chaos["oversized"]), chaos["oversized"]
    warmups = chaos["oversized"].get("bilibili:finger_spi", 0)
    oversized = chaos["outcomes"].get("oversized", 0) - warmups
    assert oversized >= 4, "the crawl met both kinds of oversized answer"
    assert stats[0] is not None
    assert crawl_helpers.stat_sum(stats, "livefleet/spider/oversized/bilibili") == oversized, \
        "each oversized answer was quarantined once: never fetched again"
    assert crawl_helpers.stat_sum(stats, "livefleet/sessions/warmup_failed/bilibili") == warmups
    assert peak < 600 * 1024 * 1024, f"the worker never held a bomb's inflated body (peak RSS {peak >> 20} MiB)"
    client: MongoClient = MongoClient(mongo_server.url, tz_aware=True)
    try:
        reasons = [d["reason"] for d in client[fleet.db_name].quarantine.find({"platform": "bilibili"})]
    finally:
        client.drop_database(fleet.db_name)
        client.close()
    sized = [r for r in reasons if "response larger than 2097152 bytes" in r]
    assert len(sized) == oversized
    assert any("after decompression" in r for r in sized), "the gzip bomb was stopped while it inflated"
    assert any("after decompression" not in r for r in sized), "the plain body was refused by its size"
    server = redis_lib.Redis.from_url(redis_server.url)
    try:
        dead = [d["error"] for d in dead_letters(server, fleet.keys)]
        assert not dead, ("no dead letters: a body too large is done, not failed", dead)
        assert server.zcard(fleet.keys.requests) == 0 and server.hlen(fleet.keys.leased) == 0
    finally:
        server.close()
