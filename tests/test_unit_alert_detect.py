"""In-session alerts from a stored live session, and each subscriber's filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crawlers.alerts.detect import session_alerts, wanted
from crawlers.alerts.robots import EVENTS

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _session(**changes):
    doc = {"platform": "douyin", "session_id": "7646341264819790154", "room_id": "7646341264819790154",
           "streamer_id": "uid-1", "status": "live", "viewers_peak": 12_345, "last_seen_live_at": T0,
           "shelf_events": [
               {"at": T0 + timedelta(minutes=1), "product_id": "p1", "event": "listed", "price_after": 59.9},
               {"at": T0 + timedelta(minutes=2), "product_id": "p2", "event": "price_changed",
                "price_before": 100.0, "price_after": 79.0},
               {"at": T0 + timedelta(minutes=3), "product_id": "p3", "event": "price_changed",
                "price_before": 50.0, "price_after": 55.0},
               {"at": T0 + timedelta(minutes=4), "product_id": "p4", "event": "delisted", "price_before": 9.9},
           ]}
    doc.update(changes)
    return doc


def test_shelf_events_give_listed_delisted_and_only_real_price_cuts():
    alerts = session_alerts(_session(), titles={"p1": "保温杯"})
    assert [(a.event, a.data["product_id"]) for a in alerts] == [
        ("product_listed", "p1"), ("price_cut", "p2"), ("product_delisted", "p4")]
    cut = alerts[1]
    assert cut.data["cut_pct"] == 21.0 and cut.data["old_price"] == 100.0 and cut.data["price"] == 79.0
    assert alerts[0].data["title"] == "保温杯"


def test_viewer_thresholds_are_crossed_once_per_session_and_threshold():
    first = session_alerts(_session(viewers_peak=6_000), thresholds=[5_000, 10_000])
    later = session_alerts(_session(viewers_peak=12_000), thresholds=[5_000, 10_000])
    crossed = lambda alerts: {a.data["threshold"]: a.key for a in alerts if a.event == "viewers_crossed"}  # noqa: E731
    assert set(crossed(first)) == {5_000} and set(crossed(later)) == {5_000, 10_000}
    assert crossed(first)[5_000] == crossed(later)[5_000], "the same crossing, rebuilt: the same key"


def test_an_ended_session_says_so_with_its_summary_and_unknowns_stay_null():
    ended = _session(status="ended", ended_at=T0 + timedelta(hours=2), duration_s=7200.0, gmv_estimate=None,
                     shelf_events=[])
    (alert,) = [a for a in session_alerts(ended) if a.event == "stream_ended"]
    assert alert.data["duration_s"] == 7200.0 and alert.data["peak_viewers"] == 12_345
    assert alert.data["gmv_estimate"] is None and alert.at == T0 + timedelta(hours=2)
    assert not [a for a in session_alerts(_session(shelf_events=[])) if a.event == "stream_ended"]


def test_keys_do_not_depend_on_when_or_how_often_the_session_was_built():
    one = session_alerts(_session())
    again = session_alerts(_session(viewers_peak=20_000, last_seen_live_at=T0 + timedelta(hours=1)))
    assert [a.key for a in one] == [a.key for a in again if a.event != "viewers_crossed"]
    other = session_alerts(_session(session_id="999"))
    assert not {a.key for a in one} & {a.key for a in other}, "another broadcast, other alerts"


def test_each_subscriber_gets_what_it_asked_for():
    alerts = session_alerts(_session(), thresholds=[1_000, 50_000])
    by = {a.event: a for a in alerts}
    assert wanted(by["price_cut"], EVENTS) and not wanted(by["price_cut"], EVENTS, price_cut_pct=30)
    assert wanted(by["price_cut"], EVENTS, price_cut_pct=20)
    assert not wanted(by["product_listed"], ["stream_started", "stream_ended"])
    crossing = next(a for a in alerts if a.event == "viewers_crossed")
    assert wanted(crossing, EVENTS, viewers_thresholds=[1_000]) and not wanted(crossing, EVENTS, viewers_thresholds=[7])
