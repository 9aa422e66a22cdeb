"""Sign Taobao mtop requests when they are downloaded, with the session's own token.

A request is built once (``sign.mtop_url`` with no token) and may wait in the
shared queue and run on any worker; what it must be signed with is known only
then: the ``_m_h5_tk`` token in *that* worker's cookie jar for *that*
request's session, and a fresh ``t``. The first call of a new session has no
token: the gateway answers ``FAIL_SYS_TOKEN_EMPTY`` with the cookie, the
parser raises ``TokenExpiredError``, and the retry is signed here with it.
"""

from __future__ import annotations

import time
from typing import Any, Self

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware

from spiders.taobao.sign import resign_url, token_from_cookie

#: ``meta[MTOP] = True`` marks a request to the mtop gateway.
MTOP = "mtop"


class MtopSignMiddleware:
    """Downloader middleware: sets ``t`` and ``sign`` of mtop requests from the session's token."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self._cookies: CookiesMiddleware | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        if not request.meta.get(MTOP):
            return None
        token = self.token(request.meta.get("cookiejar"))
        signed = resign_url(request.url, token=token or "", t=str(int(time.time() * 1000)))
        # The signature belongs to this download only, so the URL is changed in place: a new
        # Request returned from here would go back to the scheduler (and the shared queue).
        request._set_url(signed)
        return None

    def token(self, jar_key: Any) -> str | None:
        """The mtop token of a cookie jar, or None before the first answer set one."""
        middleware = self._cookie_middleware()
        if middleware is None:
            return None
        for cookie in middleware.jars[jar_key].jar:
            if cookie.name == "_m_h5_tk" and cookie.value:
                try:
                    return token_from_cookie(cookie.value)[0]
                except ValueError:
                    return None
        return None

    def _cookie_middleware(self) -> CookiesMiddleware | None:
        if self._cookies is None:
            for middleware in self.crawler.engine.downloader.middleware.middlewares:
                if isinstance(middleware, CookiesMiddleware):
                    self._cookies = middleware
        return self._cookies
