"""``live_sessions``: one document per broadcast (直播场次), on every platform alike (SCHEMA.md).

Built by the session builder (``crawlers/sessions``) from the stored room and product snapshots;
never by a parser. This model is the contract of the collection: the builder validates each
document with it before writing, so a document that breaks the contract is never stored.

Key: ``(platform, session_id)``. ``session_id`` is the platform's per-broadcast ID: Douyin's and
Taobao's room ids are per broadcast already (the 19-digit Douyin room id, Taobao's liveId),
Kuaishou's is the liveStreamId, and Bilibili has none, so there it is
``<room_id>:<live start as epoch seconds>``. A broadcast livefleet saw without any of these (a
Bilibili room seen live only by answers without a start time) is keyed
``<room_id>:<first seen live, epoch seconds>`` and flagged ``session_id_provisional``.

Every figure is null when its inputs are missing, never zero for unknown; each metric's
definition is in ``crawlers/sessions/build.py`` (time and audience) and
``crawlers/sessions/estimator.py`` (sales and GMV).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from models.entities import Count, Money, PlatformId, Record, Text

SessionStatus = Literal["live", "ended"]
ShelfEventKind = Literal["listed", "delisted", "price_changed"]


class Presentation(BaseModel):
    """One product presented (讲解) during the session, from ``from`` to ``to``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    product_id: PlatformId
    #: The first snapshot that showed it being presented.
    from_: AwareDatetime = Field(alias="from")
    #: The last snapshot that showed it being presented.
    to: AwareDatetime
    #: Its cumulative sales and price as the shelf showed them nearest ``from`` and ``to``.
    sales_from: Count | None = None
    sales_to: Count | None = None
    price_from: Money | None = None
    price_to: Money | None = None


class ShelfEvent(BaseModel):
    """A change of the room's shelf seen between two consecutive shelf samples."""

    model_config = ConfigDict(extra="forbid")

    #: The shelf sample that first showed the change.
    at: AwareDatetime
    product_id: PlatformId
    event: ShelfEventKind
    price_before: Money | None = None
    price_after: Money | None = None


class ProductSold(BaseModel):
    """One product's sales over the session (``products_sold``), as the estimator puts them
    (``crawlers/sessions/estimator.py``: ``product_figures``)."""

    model_config = ConfigDict(extra="forbid")

    product_id: PlatformId
    #: Units sold over the session (estimate, rounded to a unit) and the bounds they lie within.
    units: Count
    units_low: Count
    units_high: Count | None = None
    #: True when a count it rests on was shown rounded (``1.2万+``): an estimate, not a count.
    units_is_lower_bound: bool
    #: GMV (yuan) and its bounds; null when the shelf never showed its price.
    gmv: Money | None = None
    gmv_low: Money | None = None
    gmv_high: Money | None = None
    #: The price the shelf showed at the product's last reading, and how many readings it had.
    price: Money | None = None
    readings: Count


class LiveSession(Record):
    """One broadcast of one room. Key: (platform, session_id)."""

    kind: ClassVar[str] = "live_session"
    collection: ClassVar[str] = "live_sessions"
    key_fields: ClassVar[tuple[str, ...]] = ("platform", "session_id")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # -- identity
    session_id: PlatformId
    #: True when the platform's own ID was not seen (see the module docstring).
    session_id_provisional: bool = False
    room_id: PlatformId
    web_rid: PlatformId | None = None
    streamer_id: PlatformId | None = None
    title: Text | None = None
    category: Text | None = None
    # -- time
    status: SessionStatus
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    first_seen_live_at: AwareDatetime
    last_seen_live_at: AwareDatetime
    #: The first snapshot that showed the room no longer live after this session.
    ended_seen_at: AwareDatetime | None = None
    start_latency_s: float | None = None
    duration_s: float | None = None
    # -- audience
    samples: Count
    coverage: float | None = Field(default=None, ge=0, le=1)
    viewers_peak: Count | None = None
    viewers_avg: float | None = Field(default=None, ge=0)
    viewers_total: Count | None = None
    likes: Count | None = None
    # -- products
    products_presented: list[Presentation] = Field(default_factory=list)
    shelf_events: list[ShelfEvent] = Field(default_factory=list)
    products_count: Count | None = None
    #: Shelf samples (one reading of the room's shelf) the sales figures come from, and when the
    #: first and the last were taken (the stretch the sales figures cover).
    shelf_samples: Count = 0
    shelf_first_at: AwareDatetime | None = None
    shelf_last_at: AwareDatetime | None = None
    # -- sales
    units_sold: Count | None = None
    units_sold_is_lower_bound: bool | None = None
    units_low: Count | None = None
    units_high: Count | None = None
    gmv_estimate: Money | None = None
    gmv_low: Money | None = None
    gmv_high: Money | None = None
    #: GMV over the shelf readings alone (``shelf_first_at`` to ``shelf_last_at``): the estimate without
    #: its allowance for the unobserved edges of the session.
    gmv_observed: Money | None = None
    avg_order_value: Money | None = None
    uv_value: Money | None = None
    conversion: float | None = Field(default=None, ge=0)
    #: What sold: each product with two or more readings of its count, by GMV (then units), highest
    #: first. Its units and GMV add up to the session's (each rounded on its own).
    products_sold: list[ProductSold] = Field(default_factory=list)
    # -- bookkeeping
    estimator_version: str
    computed_at: AwareDatetime
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime

    def to_document(self) -> dict[str, Any]:
        """The stored form: ``from`` spelled as in the contract, absent figures as null."""
        return self.model_dump(by_alias=True)


#: The contract's indexes of ``live_sessions``.
INDEXES = [
    IndexModel([("platform", ASCENDING), ("session_id", ASCENDING)], unique=True, name="platform_session"),
    IndexModel([("platform", ASCENDING), ("streamer_id", ASCENDING), ("started_at", ASCENDING)],
               name="platform_streamer_started"),
    IndexModel([("platform", ASCENDING), ("room_id", ASCENDING), ("last_seen_live_at", DESCENDING)],
               name="platform_room_last_live"),
    IndexModel([("platform", ASCENDING), ("gmv_estimate", DESCENDING)], name="platform_gmv"),
    IndexModel([("platform", ASCENDING), ("viewers_peak", DESCENDING)], name="platform_viewers_peak"),
    IndexModel([("status", ASCENDING), ("last_seen_live_at", ASCENDING)], name="status_last_live"),
]
