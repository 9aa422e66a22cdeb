"""Monitoring one competitor: watch a room (or a streamer's room) every N seconds for a while.

* ``targets``: which inputs are accepted (each platform's room/profile URLs and IDs), and the seed each becomes;
* ``registry``: the monitors, in Redis (add, list, get, stop; atomic claims of due ticks);
* ``extension``: a Scrapy extension in every worker that serves the due monitors of its spider;
* ``middleware``: a spider middleware that sees the pages of monitored requests (stream start / end,
  the shelf re-fetched each tick, nothing followed beyond it);
* ``command``: ``livefleet monitor add|list|stop``.

See docs/monitoring.md.
"""
