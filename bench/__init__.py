"""livefleet benchmarks: ``python -m bench`` (``make bench``).

Every figure is measured side by side in one run, against servers the bench
starts itself (embedded Redis and SecantusDB, the sandbox) and stops at the end:

* ``full_stack_vs_plain_scrapy``: items/s of the real worker path (Redis
  scheduler, seed feeder, validate -> quarantine -> store pipelines) divided by
  the same spider under plain Scrapy with items discarded (target >= 0.7).
* ``bulk_vs_single_store``: documents/s of the store's batched upserts
  (``BulkWriter``) divided by one-by-one mongoengine saves (target >= 10).
* ``render`` (``bench/render.py``): ``render_pages_per_s_tuned_vs_default`` (target
  >= 2) and ``browser_rss_growth_500_pages_mb`` (target <= 150), Douyin room pages
  rendered in Chromium. ``http_vs_render_share`` is printed by ``make demo``.
* ``fleet_rate_error`` (``bench/fleet_rate.py``, ``--only fleet_rate``): with
  Bilibili's fleet-wide rate set to R, the largest relative deviation of the
  rate the sandbox sees from R, with 1, 2 and 4 workers (target <= 0.1).
* ``dedup_bytes_per_fingerprint`` (``bench/dedup.py``, ``--only dedup``): Redis
  bytes per fingerprint of the Bloom filter sized for 1 million at 0.1% false
  positives, with the plain set's and the measured false-positive rate beside it
  (target <= 3).
* ``two_workers_vs_one`` (``bench/fleet_scale.py``, ``--only fleet_scale``): pages/s
  the sandbox serves to two ``livefleet worker`` processes over one, same crawl,
  full stack (target >= 1.6); beside it ``two_workers_vs_one_efficiency`` (the ratio
  over the ceiling the machine's cores put on it) and ``two_workers_vs_one_latency_bound``,
  the same with every sandbox answer delayed as a real platform's is.

* ``monitor_first_snapshot_s`` and ``monitor_interval_jitter`` (``bench/monitor.py``,
  ``--only monitor``): seconds from ``monitor add`` to the first room_snapshot
  stored (target <= 5), and the RMS relative deviation of 50 monitors' snapshot
  intervals from their interval (target <= 0.1).
* ``egress_scaling_4_vs_1`` (``bench/egress.py``, ``--only egress``): pages/s two
  workers crawl through four egress identities (real proxies) over one, the
  sandbox granting each client address R requests/s and the fleet's bucket per
  identity at R (target >= 3.6); beside it ``egress_blocked_share``, requests the
  sandbox refused over all it got in the four-identity run (target <= 0.005); and
  ``identity_rate_error``, the largest relative deviation of an identity's rate at
  the sandbox from R (target <= 0.1). The same module prints the sizing
  coefficients of ``docs/sizing.md`` (``sizing_requests_per_room_tick``,
  ``sizing_worker_cpu_ms_per_page``, ``sizing_redis_round_trips_per_page``,
  ``sizing_mongo_writes_per_page``, ``sizing_store_cpu_ms_per_page``), each measured.

* ``gmv_estimate_error_60s`` (target <= 0.05), ``gmv_bounds_coverage`` (>= 0.95),
  ``explanation_timeline_recall`` (>= 0.95) and ``session_builder_vs_store`` (>= 5)
  (``bench/sessions.py``, ``--only sessions``): live sessions of the sandbox sampled at 30 s,
  60 s and 300 s, built and compared with the sandbox's truth; and the session builder's rate
  draining a backlog of snapshots over the store's rate writing them.

* ``live_discovery_p95_s`` (target <= 70), ``alert_latency_p95_s`` (<= 75), ``monitors_per_worker``
  (>= 1,000) and ``watch_requests_per_account_hour_<platform>`` (``bench/watch.py``, ``--only watch``):
  2,000 watched Bilibili streamers checked every 60 world seconds on a faster-running sandbox world
  (first live snapshot stored and the stream_started alert's arrival, minus the moment the room
  turned live); what one check costs per platform; the most 60 s monitors one worker keeps with
  interval jitter <= 0.1.

See ``bench/README.md`` for what each figure means and how it is measured.
"""

from __future__ import annotations

#: Benchmark name -> the ratio it must reach (at least; at most for those in AT_MOST).
TARGETS: dict[str, float] = {
    "full_stack_vs_plain_scrapy": 0.85,  # issue 4 (issue 2 asked for 0.7)
    "bulk_vs_single_store": 10.0,
    "fleet_rate_error": 0.1,
    "dedup_bytes_per_fingerprint": 3.0,
    "two_workers_vs_one": 1.6,
    "monitor_first_snapshot_s": 5.0,
    "monitor_interval_jitter": 0.1,
    "egress_scaling_4_vs_1": 3.6,
    "egress_blocked_share": 0.005,
    "identity_rate_error": 0.1,
    "gmv_estimate_error_60s": 0.05,
    "gmv_bounds_coverage": 0.95,
    "explanation_timeline_recall": 0.95,
    "session_builder_vs_store": 5.0,
    "live_discovery_p95_s": 70.0,
    "alert_latency_p95_s": 75.0,
    "monitors_per_worker": 1000.0,
}
#: Figures whose target is an upper bound (a cost or an error, not a speed-up).
AT_MOST: frozenset[str] = frozenset({"fleet_rate_error", "dedup_bytes_per_fingerprint", "monitor_first_snapshot_s",
                                     "monitor_interval_jitter", "egress_blocked_share", "identity_rate_error",
                                     "gmv_estimate_error_60s", "live_discovery_p95_s", "alert_latency_p95_s"})
