"""The one exception tree of livefleet.

Every error carries the platform, the URL and a human reason, so a log line, a
stats key and a quarantine record can all be built from the exception alone::

    LivefleetError(platform, url, reason)
    ├── PageError                  something is wrong with one fetched payload
    │   ├── RetryablePageError     the page is not data *now*: fetch it again later
    │   │   └── BlockedError       the platform refused us (block code, captcha,
    │   │                          rate limit, risk-control page): cool down, retry
    │   ├── PermanentPageError     the payload can never give data: quarantine it
    │   │   └── UnknownPayloadError   no parser recognises this payload at all
    │   └── GoneError              the platform answered definitively "no such
    │                              room/user": not retried, not quarantined
    └── StoreError                 the MongoDB store failed
        └── StoreUnavailableError  the store cannot be reached: retry, then spool

Parsers raise only ``PageError`` subclasses; pipelines raise ``StoreError``.
"""

from __future__ import annotations


class LivefleetError(Exception):
    """Base of every livefleet error."""

    def __init__(self, reason: str, *, platform: str | None = None, url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.platform = platform
        self.url = url

    def __str__(self) -> str:  # "reason (platform url)" keeps log lines greppable
        where = " ".join(p for p in (self.platform, self.url) if p)
        return f"{self.reason} ({where})" if where else self.reason

    @property
    def kind(self) -> str:
        """Short stable name used in stats keys and quarantine reasons."""
        return type(self).__name__


class PageError(LivefleetError):
    """A fetched payload could not be turned into records."""


class RetryablePageError(PageError):
    """The page carries no data right now (empty body, 5xx-as-200, slow-down page)."""


class BlockedError(RetryablePageError):
    """The platform refused the request: block code, captcha or verification page.

    ``code`` is the platform's own code (e.g. Bilibili ``-412``) when it sent one.
    """

    def __init__(
        self, reason: str, *, platform: str | None = None, url: str | None = None, code: object = None
    ) -> None:
        super().__init__(reason, platform=platform, url=url)
        self.code = code


class PermanentPageError(PageError):
    """The payload can never be parsed (malformed, wrong shape, failed validation).

    Such a payload goes to the ``quarantine`` collection with its raw bytes.
    """


class UnknownPayloadError(PermanentPageError):
    """No parser recognises the payload."""


class GoneError(PageError):
    """The platform says the entity does not exist (e.g. Bilibili room code 60004)."""


class StoreError(LivefleetError):
    """Writing to the store failed."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached; the write is retried and then spooled to disk."""
