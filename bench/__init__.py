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

See ``bench/README.md`` for what each figure means and how it is measured.
"""

from __future__ import annotations

#: Benchmark name -> the ratio it must reach.
TARGETS: dict[str, float] = {
    "full_stack_vs_plain_scrapy": 0.7,
    "bulk_vs_single_store": 10.0,
}
