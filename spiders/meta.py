"""Every request-meta key livefleet sets or reads, in one module.

A request crosses the whole fleet (spider, queue, downloader middlewares,
pipelines, monitors), and may wait in Redis for another worker; a key typed
twice can drift, and a reader could not find who else reads it. So every
module imports its keys from here and none retypes the string (a test checks).

Values that travel through the shared queue must be JSON-able; the keys in
:data:`WORKER_LOCAL_META` only mean something inside the worker that set them
and are dropped when a request is queued.
"""

from __future__ import annotations

# -- the page a request fetches (spiders) ---------------------------------------------------------
#: ``{"kind": <parser>, ...context}``: which parser reads the page, and what the spider passes on.
PAGE_META = "livefleet"
#: Set by a spider that gave up on a page after its retries (value: the reason): a dead letter.
GAVE_UP_META = "livefleet_gave_up"

# -- the shared queue (crawlers/queue) -------------------------------------------------------------
#: The crawl (dedup namespace, campaign run) a request belongs to; inherited by its children.
CRAWL_META = "livefleet_crawl"
#: A priority offset (a campaign's priority) added to the request and to all its children.
PRIORITY_META = "livefleet_priority"
#: The lease id of a leased request (worker-local: never queued).
LEASE_META = "livefleet_lease"

# -- monitors (crawlers/monitor) --------------------------------------------------------------------
#: The id of the monitor a request was fetched for; inherited by its children.
MONITOR_META = "livefleet_monitor"
#: The monitor tick a request answers.
TICK_META = "livefleet_monitor_tick"
#: Set on the request a monitor tick starts with (its answer marks the tick answered).
ROOT_META = "livefleet_monitor_root"

# -- downloading (crawlers/download) ----------------------------------------------------------------
#: The platform session (cookie jar / browser context) a request was sent with.
SESSION_META = "livefleet_session"
#: The request keeps the session it names (a session's warm-up, a signer page): none is picked for it.
PINNED_META = "livefleet_session_pinned"
#: Exempts one request from the fleet-wide rate limit.
UNLIMITED_META = "livefleet_unlimited"
#: ``{"wait_for": <JS expression>, "warm_url": <url>, "warm_cookie": <name>}``: render in the browser.
RENDER_META = "livefleet_render"
#: A browser page its owner keeps open across many requests (a signer page).
KEEP_PAGE_META = "livefleet_keep_page"

#: The platform of a request (set once, by the egress middleware, from its ``download_slot``).
PLATFORM_META = "livefleet_platform"
#: The egress identity (``direct`` or a proxy's id, never its URL) a request was sent through.
EGRESS_META = "livefleet_egress"
#: ... and its label (``scheme://host:port``, no credentials), for rate overrides and messages.
EGRESS_LABEL_META = "livefleet_egress_label"

#: ``True``: sign this Bilibili request with WBI (``w_rid``/``wts``) at download time
#: (``spiders/bilibili/middleware.py``).
WBI_META = "livefleet_bilibili_wbi"

#: Meta keys that only mean something inside the worker that set them: never sent to the queue.
#: An identity is given at each download, so a request travels without one; Scrapy's proxy keys
#: (``proxy`` may hold a proxy's credentials) and a browser context's options never leave the worker.
WORKER_LOCAL_META = frozenset({"playwright_page_methods", "playwright_page", "download_latency", LEASE_META,
                               EGRESS_META, EGRESS_LABEL_META, "proxy", "_auth_proxy", "_scheme_proxy",
                               "playwright_context_kwargs"})
#: Request headers that never leave the worker (a proxy's credentials, added by Scrapy's proxy middleware).
WORKER_LOCAL_HEADERS = frozenset({"proxy-authorization"})

#: Every livefleet request-meta key (a test checks no module retypes one).
ALL_META = frozenset({PAGE_META, GAVE_UP_META, CRAWL_META, PRIORITY_META, LEASE_META, MONITOR_META, TICK_META,
                      ROOT_META, SESSION_META, PINNED_META, UNLIMITED_META, RENDER_META, KEEP_PAGE_META,
                      PLATFORM_META, EGRESS_META, EGRESS_LABEL_META, WBI_META})
