"""The Scrapy settings of the browser, as plain data: what a rendering spider adds.

A spider (``spiders/douyin/spider.py``) installs the browser for itself in its
``update_settings``; spiders import nothing of the fleet, so the settings live
here and name the fleet's classes by their dotted paths. The handler
(``crawlers/download/browser.py``) completes one thing at launch time:
Chromium keeps only the last ``--disable-features`` switch, and Playwright's
own list (read from Playwright's driver, which is no settings' business) must
be repeated in ours, so the handler merges it into the switch given here.
"""

from __future__ import annotations

from typing import Any

#: The download handler that renders ``meta["playwright"]`` requests (``crawlers/download/browser.py``).
HANDLER = "crawlers.download.browser.RecyclingPlaywrightHandler"
#: ``PLAYWRIGHT_ABORT_REQUEST``: images, media and fonts are never downloaded.
ABORT_REQUEST = "crawlers.download.page_pool.abort_heavy_resources"

#: Flags that keep Chromium quiet on a machine with no internet (see STACK.md), and two that
#: make rendering cheaper:
#:
#: * Blink loads no images at all (cheaper than aborting each request). A later
#:   ``--blink-settings`` replaces an earlier one, so Playwright's headless pointer
#:   settings are repeated here;
#: * a renderer process limit: once this many renderers run, Chromium lets pages of the
#:   same site and context share one, and stops keeping a "spare" renderer ready. With
#:   one context per session, the spare (made for the context of the last navigation)
#:   is thrown away and made again for nearly every page: a process started for nothing.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4,"
    "imagesEnabled=false",
    "--renderer-process-limit=4",
)
#: Chromium features turned off on top of the ones Playwright turns off. ``RenderDocument``
#: gives every new document a new frame, in the browser and in the renderer; a page that
#: goes from one room to the next keeps its frame without it, and Chromium's work per page
#: fell by about a third (``bench/README.md``).
DISABLED_FEATURES = ("RenderDocument",)
#: The switch carrying :data:`DISABLED_FEATURES`; the handler adds Playwright's list in front.
DISABLE_FEATURES_SWITCH = "--disable-features="


def launch_options(chromium: str, *, headless: bool = True) -> dict[str, Any]:
    """``PLAYWRIGHT_LAUNCH_OPTIONS``: our Chromium, headless, with our flags and disabled features."""
    args = [*CHROMIUM_ARGS, DISABLE_FEATURES_SWITCH + ",".join(DISABLED_FEATURES)]
    return {"executable_path": chromium, "headless": headless, "args": args}


def browser_settings(chromium: str, *, headless: bool = True) -> dict[str, Any]:
    """Scrapy settings a rendering spider adds (its ``custom_settings``)."""
    return {
        "DOWNLOAD_HANDLERS": {"http": HANDLER, "https": HANDLER},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": launch_options(chromium, headless=headless),
        "PLAYWRIGHT_MAX_CONTEXTS": 4,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": 4,
        "PLAYWRIGHT_ABORT_REQUEST": ABORT_REQUEST,
        "PLAYWRIGHT_PROCESS_REQUEST_HEADERS": None,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": 30_000,
        "PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER": True,
    }
