"""Scrapy contracts for livefleet's callbacks: ``scrapy check`` against the sandbox.

Scrapy's own contracts (``@url``, ``@returns``, ``@scrapes``) build a plain GET of a
fixed URL. A livefleet page needs the request its seed builds: the platform's host
or the sandbox (``LIVEFLEET_SANDBOX_URL``), the page kind in ``meta``, signing and
rendering marks, a POST body. So a callback's docstring names a *seed*, and the
request is the one the spider's own ``seed_requests`` makes of it::

    async def parse_page(self, response):
        \"\"\"...
        @seed {"kind": "room", "room_id": "5440"}
        @returns items 1
        @records rooms room_id status title
        \"\"\"

* ``@seed <JSON> [page kind]``: the seed's request (the first one, or the one of that
  page kind when the seed makes several). The request must call the callback that carries
  the contract, or the check fails: a seed cannot test a callback its pages never reach.
  The page must answer 200; after the callback, nothing it produced may be a quarantine
  record (the parser refused the page), and the spider may not have asked for the page
  again (a block, a page not ready) or given it up.
* ``@records <collection> <field> ...``: the output holds at least one record of that
  collection (``rooms``, ``streamers``, ``room_snapshots``, ``products``, ...), and every
  one has each named field set (not None). Scrapy's ``@scrapes`` only asks that an item
  *has* a field, which a pydantic model always does, even when the parser left it None.

Scrapy's ``@returns items N M`` and ``@returns requests N M`` count the output as usual.
Registered in ``SPIDER_CONTRACTS`` (``settings/scrapy_settings.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from scrapy import Request
from scrapy.contracts import Contract
from scrapy.http import Response

from spiders.meta import GAVE_UP_META, PAGE_META

#: The attributes of a seed's request that the contract's request copies (the callback is the method's).
_COPIED = ("url", "method", "headers", "body", "cookies", "meta", "priority", "encoding", "flags", "cb_kwargs")


class SeedContract(Contract):
    """``@seed <JSON> [page kind]``: the request the spider's ``seed_requests`` builds for the seed."""

    name = "seed"

    def __init__(self, method: Callable[..., Any], *args: Any) -> None:
        super().__init__(method, *args)
        self.method = method
        # Scrapy splits the line on whitespace; the JSON comes back joined by single spaces.
        text = " ".join(args).strip()
        try:
            seed, end = json.JSONDecoder().raw_decode(text)
        except ValueError as exc:
            raise ValueError(f"@seed needs a JSON object, got {text!r}: {exc}") from None
        if not isinstance(seed, dict):
            raise ValueError(f"@seed needs a JSON object, got {text!r}")
        self.seed: dict[str, Any] = seed
        self.page_kind = text[end:].strip() or None

    def adjust_request_args(self, args: dict[str, Any]) -> dict[str, Any]:
        spider = self.method.__self__  # type: ignore[attr-defined]
        requests = list(spider.seed_requests(self.seed))
        if self.page_kind is not None:
            requests = [r for r in requests if (r.meta.get(PAGE_META) or {}).get("kind") == self.page_kind]
        if not requests:
            raise ValueError(f"seed {self.seed} makes no request"
                             + (f" of page kind {self.page_kind!r}" if self.page_kind else ""))
        request = requests[0]
        if type(request) is not Request:
            raise ValueError(f"seed {self.seed} makes a {type(request).__name__}; a contract request is a Request")
        callback = request.callback
        if getattr(callback, "__func__", callback) is not getattr(self.method, "__func__", self.method):
            name = getattr(callback, "__name__", callback)
            raise AssertionError(f"seed {self.seed} leads to callback {name!r}, not {self.method.__name__!r}")
        copied = {attr: getattr(request, attr) for attr in _COPIED}
        copied["meta"] = dict(request.meta)
        copied["cb_kwargs"] = dict(request.cb_kwargs)
        copied["flags"] = list(request.flags)
        return {**args, **copied}

    def pre_process(self, response: Response) -> None:
        self.request = response.request
        if response.status != 200:
            raise AssertionError(f"the page answered HTTP {response.status}")

    def post_process(self, output: list[Any]) -> None:
        quarantined = [x for x in output if getattr(type(x), "collection", None) == "quarantine"]
        if quarantined:
            raise AssertionError(f"the page went to quarantine: {quarantined[0].reason}")
        request = getattr(self, "request", None)
        if request is not None and request.meta.get(GAVE_UP_META):
            raise AssertionError(f"the spider gave the page up: {request.meta[GAVE_UP_META]}")
        retries = [x for x in output if isinstance(x, Request) and x.url == getattr(request, "url", None)]
        if retries:
            raise AssertionError("the spider asked for the page again (blocked or not ready): "
                                 f"{retries[0].meta.get('retry_times', 0)} retries")


class RecordsContract(Contract):
    """``@records <collection> <field> ...``: records of that collection, each with the fields set."""

    name = "records"

    def __init__(self, method: Callable[..., Any], *args: Any) -> None:
        super().__init__(method, *args)
        if not args or not args[0]:
            raise ValueError("@records needs a collection name, then the fields that must be set")
        self.collection, self.fields = args[0], args[1:]

    def post_process(self, output: list[Any]) -> None:
        records = [x for x in output if getattr(type(x), "collection", None) == self.collection]
        if not records:
            kinds = sorted({getattr(type(x), "collection", "") or type(x).__name__ for x in output})
            raise AssertionError(f"no {self.collection} record in the output (it holds: {', '.join(kinds)})")
        for record in records:
            unset = [f for f in self.fields if getattr(record, f, None) is None]
            if unset:
                raise AssertionError(f"a {self.collection} record has no {', '.join(unset)}: {record!r}"[:1000])
