"""Rankings, exports, API routes and monitor listings of ``live_sessions`` (issue 14 item 6), on the
real MongoDB-compatible server and Redis.

The sessions are built with ``models.sessions.LiveSession(...).to_document()``, so they are what the
session builder stores (the contract). Checked: the order of every session ranking, that a null
figure never ranks (not as 0), the window (``last_seen_live_at``), the platform, the streamers' sums
over their sessions' GMV with the sessions of unknown GMV counted apart, the command's table and
JSON, ``livefleet export live_sessions`` (JSONL and CSV round trips, ``--since``), ``GET /v1/sessions``
and ``GET /v1/sessions/{platform}/{session_id}``, and ``livefleet monitor list`` showing each
monitored room's current session. Last, the rankings of sessions made from the sandbox's own truth
(``truth(platform)["sessions"]``) come out in the order the truth gives.
"""

from __future__ import annotations

import csv
import json
import types
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pytest

from crawlers.cli.main import main
from crawlers.reports import ranking
from models.sessions import LiveSession, Presentation, ShelfEvent
from tests.plugins.api import Api, serve_api

pytestmark = pytest.mark.integration

#: The moment the sessions are stored at (reset by :func:`_sessions`): the commands' ``--since 45m`` counts back
#: from the real clock, so a time taken at import would drift out of the window when the suite runs long.
NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=3)
DOUYIN_ROOM = "7301234567890123456"  # the 19-digit room id of one broadcast; its stable web_rid:
WEB_RID = "604946797621"
SEC_UID = "MS4wLjABAAAA" + "a" * 43


def session(platform: str, session_id: str, *, last_live: datetime, room_id: str | None = None,
            streamer_id: str | None = None, status: str = "ended", **figures: Any) -> dict[str, Any]:
    """One ``live_sessions`` document as the builder stores it: live for an hour up to ``last_live``."""
    first = last_live - timedelta(hours=1)
    return LiveSession(platform=platform, session_id=session_id, room_id=room_id or f"r-{session_id}",
                       streamer_id=streamer_id, title=figures.pop("title", f"直播 {session_id}"), status=status,
                       started_at=first, first_seen_live_at=first, last_seen_live_at=last_live,
                       duration_s=3600.0, samples=60, coverage=1.0,
                       estimator_version=figures.pop("estimator_version", "1.0.0"), computed_at=NOW,
                       first_seen_at=first, last_seen_at=last_live, **figures).to_document()


def _sessions() -> list[dict[str, Any]]:
    global NOW, OLD
    NOW = datetime.now(UTC).replace(microsecond=0)
    OLD = NOW - timedelta(days=3)
    presented = [Presentation(product_id="p1", from_=NOW - timedelta(minutes=50), to=NOW - timedelta(minutes=40),
                              sales_from=10, sales_to=60, price_from=19.9, price_to=19.9)]
    events = [ShelfEvent(at=NOW - timedelta(minutes=30), product_id="p2", event="price_changed", price_before=59.0,
                         price_after=49.0)]
    return [
        session("douyin", "d1", last_live=NOW - timedelta(hours=1), streamer_id="sA", units_sold=120,
                units_sold_is_lower_bound=False, gmv_estimate=5000.5, gmv_low=4800.0, gmv_high=5200.0,
                viewers_peak=900, viewers_total=20000, uv_value=0.25, products_presented=presented,
                shelf_events=events, products_count=2, shelf_samples=30, title="橙子专场 全场包邮"),
        session("douyin", "d2", last_live=NOW - timedelta(hours=2), streamer_id="sA", units_sold=80,
                gmv_estimate=8000.0, gmv_low=7000.0, gmv_high=None, viewers_peak=3000, viewers_total=10000,
                uv_value=0.8, estimator_version="1.1.0"),  # gmv_high null: unbounded
        # No shelf seen: every sales figure null. Never ranked by them, never summed as 0.
        session("douyin", "d3", last_live=NOW - timedelta(minutes=30), streamer_id="sB", viewers_peak=5000,
                viewers_total=50000),
        session("douyin", "d4", last_live=NOW - timedelta(minutes=10), streamer_id="sB", status="live",
                room_id=DOUYIN_ROOM, web_rid=WEB_RID, units_sold=5, gmv_estimate=100.0, gmv_low=90.0,
                gmv_high=110.0, viewers_peak=40),
        session("douyin", "d0", last_live=NOW - timedelta(minutes=20), units_sold=5, gmv_estimate=100.0,
                gmv_low=100.0, gmv_high=100.0, viewers_peak=10),  # ties d4 on GMV; no streamer known
        session("douyin", "d5", last_live=OLD, streamer_id="sC", units_sold=10**6, gmv_estimate=10**7,
                gmv_low=10**7, gmv_high=10**7, viewers_peak=10**7, viewers_total=10**8, uv_value=99.0),
        session("douyin", "d6", last_live=NOW - timedelta(hours=3), streamer_id="sD", viewers_peak=1),
        session("taobao", "d1", last_live=NOW, streamer_id="sA", units_sold=10**6, gmv_estimate=10**8,
                gmv_low=10**8, gmv_high=10**8, viewers_peak=10**6),
    ]


@pytest.fixture
def stored(mongo_server, mongo_db, redis_server, tmp_path, monkeypatch):
    mongo_db.live_sessions.insert_many(_sessions())
    mongo_db.streamers.insert_many([{"platform": "douyin", "streamer_id": "sA", "nickname": "主播A"},
                                    {"platform": "taobao", "streamer_id": "sB", "nickname": "other platform"}])
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("MONGO_URI", mongo_server.url)
    monkeypatch.setenv("LIVEFLEET_MONGO_DB", mongo_db.name)
    monkeypatch.setenv("LIVEFLEET_VAR_DIR", str(tmp_path))
    return mongo_db


def _rank(db, entity: str, by: str, since: datetime | None = None, platform: str = "douyin",
          limit: int = 20) -> list[dict[str, Any]]:
    since = since or NOW - timedelta(hours=24)  # the fixture's NOW, not the one at import
    return ranking.rank(db, entity, by, platform, since, limit).rows


# --- the pipelines ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("by", "field", "expected"), [
    ("gmv", "gmv_estimate", [("d2", 8000.0), ("d1", 5000.5), ("d0", 100.0), ("d4", 100.0)]),  # tie: by session_id
    ("units", "units_sold", [("d1", 120), ("d2", 80), ("d0", 5), ("d4", 5)]),
    ("peak_viewers", "viewers_peak", [("d3", 5000), ("d2", 3000), ("d1", 900), ("d4", 40), ("d0", 10), ("d6", 1)]),
    ("viewers_total", "viewers_total", [("d3", 50000), ("d1", 20000), ("d2", 10000)]),
    ("uv_value", "uv_value", [("d2", 0.8), ("d1", 0.25)]),
])
def test_sessions_rank_by_each_figure_leaving_nulls_and_older_sessions_out(stored, by, field, expected):
    rows = _rank(stored, "sessions", by)
    assert [(r["session_id"], r[field]) for r in rows] == expected  # d5 is older than the window, taobao's apart
    assert [r["rank"] for r in rows] == list(range(1, len(expected) + 1))
    assert set(rows[0]) == {"rank", *ranking.SESSION_COLUMNS}  # every row: GMV with its bounds and estimator


def test_a_session_ranking_carries_gmv_bounds_and_the_estimator_version(stored):
    rows = {r["session_id"]: r for r in _rank(stored, "sessions", "peak_viewers")}
    assert (rows["d2"]["gmv_estimate"], rows["d2"]["gmv_low"], rows["d2"]["gmv_high"]) == (8000.0, 7000.0, None)
    assert rows["d2"]["estimator_version"] == "1.1.0" and rows["d1"]["estimator_version"] == "1.0.0"
    assert rows["d3"]["gmv_estimate"] is None and rows["d3"]["units_sold"] is None  # shown as unknown, not 0


def test_the_window_is_last_seen_live_and_limit_cuts(stored):
    assert [r["session_id"] for r in _rank(stored, "sessions", "gmv", NOW - timedelta(minutes=45))] == ["d0", "d4"]
    assert [r["session_id"] for r in _rank(stored, "sessions", "gmv", OLD)][:1] == ["d5"]
    assert [r["session_id"] for r in _rank(stored, "sessions", "gmv", limit=1)] == ["d2"]
    assert [r["session_id"] for r in _rank(stored, "sessions", "gmv", platform="taobao")] == ["d1"]


def test_streamers_rank_by_their_sessions_gmv_and_count_unknown_gmv_apart(stored):
    rows = _rank(stored, "streamers", "session_gmv")
    assert rows == [
        {"rank": 1, "streamer_id": "sA", "nickname": "主播A", "session_gmv": 13000.5, "gmv_low": 11800.0,
         "gmv_high": None,  # d2 has no upper bound: neither has the sum
         "sessions": 2, "sessions_without_gmv": 0, "estimator_versions": ["1.0.0", "1.1.0"]},
        {"rank": 2, "streamer_id": "sB", "session_gmv": 100.0, "gmv_low": 90.0, "gmv_high": 110.0,
         "sessions": 1, "sessions_without_gmv": 1, "estimator_versions": ["1.0.0"]},  # d3's GMV is unknown, not 0
    ]  # sC: only before the window; sD: no session of known GMV; d0: no streamer; sB's nickname is taobao's
    assert [r["streamer_id"] for r in _rank(stored, "streamers", "session_gmv", OLD)] == ["sC", "sA", "sB"]
    assert [(r["streamer_id"], r["session_gmv"]) for r in _rank(stored, "streamers", "session_gmv",
                                                                   platform="taobao")] == [("sA", 10**8)]


def test_the_existing_rankings_are_unchanged_by_sessions(stored):
    # The captured-record rankings read their own collections: no snapshots stored, no rows.
    assert _rank(stored, "rooms", "peak_viewers") == [] and _rank(stored, "streamers", "followers") == []


# --- the command ------------------------------------------------------------------------------------------------


def test_rank_sessions_prints_gmv_with_its_bounds_and_estimator(stored, capsys):
    assert main(["rank", "sessions", "--platform", "douyin", "--by", "gmv", "--since", "24h"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sessions on douyin by gmv since ")
    assert out[1].split() == ["rank", "session_id", "title", "gmv", "[low,", "high]", "estimator_version", "status",
                              "room_id", "streamer_id"]
    assert [line.split()[1] for line in out[2:]] == ["d2", "d1", "d0", "d4"]
    assert "8,000.00 [7,000.00, -]" in out[2] and "1.1.0" in out[2]
    assert "5,000.50 [4,800.00, 5,200.00]" in out[3] and "橙子专场 全场包邮" in out[3]
    assert "live" in out[5] and DOUYIN_ROOM in out[5]

    assert main(["rank", "sessions", "--platform", "douyin", "--by", "units", "--since", "24h"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["rank", "session_id", "title", "units_sold"]
    assert [line.split()[1] for line in out[2:]] == ["d1", "d2", "d0", "d4"]


def test_rank_sessions_json_and_streamers_by_session_gmv(stored, capsys):
    assert main(["rank", "sessions", "--platform", "douyin", "--by", "peak_viewers", "--limit", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["entity"], doc["by"], doc["limit"]) == ("sessions", "peak_viewers", 2)
    assert [(r["rank"], r["session_id"], r["viewers_peak"], r["gmv_estimate"]) for r in doc["rows"]] == [
        (1, "d3", 5000, None), (2, "d2", 3000, 8000.0)]
    assert datetime.fromisoformat(doc["rows"][1]["last_seen_live_at"]) == NOW - timedelta(hours=2)

    assert main(["rank", "streamers", "--platform", "douyin", "--by", "session_gmv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["rank", "streamer_id", "nickname", "session_gmv", "[low,", "high]", "sessions",
                              "sessions_without_gmv", "estimator_versions"]
    assert out[2].split() == ["1", "sA", "主播A", "13,000.50", "[11,800.00,", "-]", "2", "0", "1.0.0,1.1.0"]
    assert out[3].split() == ["2", "sB", "-", "100.00", "[90.00,", "110.00]", "1", "1", "1.0.0"]


def _sold(pid: str, units: int, low: int, high: int | None, gmv: float | None, gmv_low: float | None,
          gmv_high: float | None, rounded: bool = False) -> dict[str, Any]:
    return {"product_id": pid, "units": units, "units_low": low, "units_high": high, "units_is_lower_bound": rounded,
            "gmv": gmv, "gmv_low": gmv_low, "gmv_high": gmv_high, "price": None, "readings": 5}


@pytest.fixture
def sold(stored):
    """Kuaishou sessions with what each product sold (``products_sold``), apart from the Douyin ones."""
    stored.live_sessions.insert_many([
        session("kuaishou", "k1", last_live=NOW - timedelta(hours=1), estimator_version="1.1.0", products_sold=[
            _sold("A", 10, 10, 12, 100.0, 90.0, 110.0), _sold("B", 50, 48, None, 50.0, 40.0, None, rounded=True)]),
        session("kuaishou", "k2", last_live=NOW - timedelta(hours=2), estimator_version="1.1.0", products_sold=[
            _sold("A", 5, 5, 6, 60.0, 55.0, 65.0), _sold("C", 3, 3, 3, None, None, None)]),  # C: no price shown
        session("kuaishou", "k3", last_live=OLD, estimator_version="1.1.0", products_sold=[
            _sold("A", 10**6, 10**6, 10**6, 10.0**8, 10.0**8, 10.0**8)]),  # older than the window
        session("kuaishou", "k4", last_live=NOW - timedelta(hours=3), units_sold=9, gmv_estimate=900.0),  # 1.0.0: none
    ])
    stored.products.insert_one({"platform": "kuaishou", "product_id": "A", "title": "冬季羽绒服", "shop_name": "店A"})
    return stored


def test_products_rank_by_what_they_sold_in_sessions_with_bounds(sold):
    by_gmv = _rank(sold, "products", "session_gmv", platform="kuaishou")
    assert [(r["product_id"], r["session_gmv"], r["gmv_low"], r["gmv_high"], r["sessions"]) for r in by_gmv] == [
        ("A", 160.0, 145.0, 175.0, 2), ("B", 50.0, 40.0, None, 1)]  # C: GMV unknown, not 0 yuan: left out
    a = by_gmv[0]
    assert (a["title"], a["shop_name"], a["session_units"], a["units_low"], a["units_high"]) == (
        "冬季羽绒服", "店A", 15, 15, 18)
    assert (a["units_is_lower_bound"], a["sessions_without_gmv"], a["estimator_versions"]) == (False, 0, ["1.1.0"])
    assert by_gmv[1]["units_is_lower_bound"] is True and by_gmv[1]["units_high"] is None  # unbounded: unknown
    by_units = _rank(sold, "products", "session_units", platform="kuaishou")
    assert [(r["product_id"], r["session_units"]) for r in by_units] == [("B", 50), ("A", 15), ("C", 3)]
    c = by_units[2]
    assert (c["session_gmv"], c["gmv_low"], c["sessions_without_gmv"]) == (None, None, 1)
    assert _rank(sold, "products", "session_units", platform="douyin") == []  # no Douyin session says what sold


def test_rank_products_by_session_gmv_prints_units_and_gmv_with_bounds(sold, capsys):
    assert main(["rank", "products", "--platform", "kuaishou", "--by", "session_gmv"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["rank", "product_id", "title", "session_units"]
    assert out[2].split() == ["1", "A", "冬季羽绒服", "15", "[15,", "18]", "160.00", "[145.00,", "175.00]", "2", "店A",
                              "1.1.0"]
    assert out[3].split()[:9] == ["2", "B", "-", "50", "[48,", "?]", "50.00", "[40.00,", "-]"]


@pytest.mark.parametrize(("args", "says"), [
    (["rooms", "--by", "session_units"], "rank products --by session_units"),
    (["products", "--by", "gmv"], "or products --by session_gmv or --by session_units"),
    (["sessions", "--by", "followers"], "sessions cannot be ranked by followers: followers belong to streamers"),
    (["sessions", "--by", "session_gmv"], "rank sessions --by gmv, or streamers --by session_gmv"),
    (["streamers", "--by", "gmv"], "rank sessions --by gmv, or streamers --by session_gmv"),
    (["rooms", "--by", "units"], "rank sessions --by units"),
    (["products", "--by", "uv_value"], "rank sessions --by uv_value"),
    (["sessions", "--by", "sales"], "rank sessions --by units or --by gmv"),
])
def test_rank_refuses_sessions_questions_that_make_no_sense(stored, capsys, args, says):
    assert main(["rank", args[0], "--platform", "douyin", *args[1:]]) == 2
    assert says in capsys.readouterr().err


# --- export -----------------------------------------------------------------------------------------------------


def _aware(db):
    return db.with_options(codec_options=db.codec_options.with_options(tz_aware=True))


def _base(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return _base(next(a for a in get_args(annotation) if a is not type(None)))
    if origin is Annotated:
        return _base(get_args(annotation)[0])
    return origin or annotation


def _from_csv(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row back to a session document, reading the types from the contract (``LiveSession``)."""
    doc: dict[str, Any] = {}
    for name, text in row.items():
        kind = _base(LiveSession.model_fields[name].annotation)
        if text == "":
            doc[name] = None
        elif kind is list:
            doc[name] = json.loads(text)  # nested lists: JSON in one column
        elif kind is bool:
            doc[name] = {"true": True, "false": False}[text]
        elif kind in (int, float):
            doc[name] = kind(text)
        else:
            doc[name] = text
    return LiveSession.model_validate(doc).to_document()


def test_export_live_sessions_round_trips_jsonl_and_csv(stored, tmp_path, capsys):
    expected = sorted(_aware(stored).live_sessions.find({}, {"_id": 0}), key=lambda d: (d["platform"], d["session_id"]))
    jsonl, table = tmp_path / "s.jsonl", tmp_path / "s.csv"
    assert main(["export", "live_sessions", "--out", str(jsonl)]) == 0
    assert main(["export", "live_sessions", "--format", "csv", "--out", str(table)]) == 0
    assert capsys.readouterr().err.count(f"exported {len(expected)} live_sessions documents") == 2
    from_jsonl = [LiveSession.model_validate(json.loads(line)).to_document()
                  for line in jsonl.read_text(encoding="utf-8").splitlines()]
    with table.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == list(LiveSession.model_fields)  # the contract's order
        rows = list(reader)
    by_key = {(r["platform"], r["session_id"]): r for r in rows}
    d1 = by_key[("douyin", "d1")]
    assert json.loads(d1["products_presented"])[0]["from"] == (NOW - timedelta(minutes=50)).isoformat()
    assert json.loads(d1["shelf_events"])[0]["event"] == "price_changed"
    assert by_key[("douyin", "d3")]["gmv_estimate"] == "" and by_key[("douyin", "d2")]["gmv_high"] == ""
    from_csv = [_from_csv(r) for r in rows]
    key = lambda d: (d["platform"], d["session_id"])  # noqa: E731
    assert sorted(from_jsonl, key=key) == expected
    assert sorted(from_csv, key=key) == expected


def test_export_live_sessions_since_applies_to_last_seen_live(stored, capsys):
    assert main(["export", "live_sessions", "--platform", "douyin", "--since", "45m", "--out", "-", "--quiet"]) == 0
    assert sorted(json.loads(line)["session_id"] for line in capsys.readouterr().out.splitlines()) == ["d0", "d3", "d4"]
    assert main(["export", "live_sessions", "--until", "24h", "--format", "csv", "--out", "-", "--quiet"]) == 0
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [(r["session_id"], r["gmv_estimate"]) for r in rows] == [("d5", "10000000.0")]


# --- the API ----------------------------------------------------------------------------------------------------

TOKEN = "sessions-token"


@pytest.fixture
def api(redis_client, mongo_db, tmp_path: Path) -> Iterator[Api]:
    from crawlers.api.app import ApiContext

    mongo_db.live_sessions.insert_many(_sessions())
    context = ApiContext(token=TOKEN, redis=redis_client, db=mongo_db, prefix="lfsessions", campaigns_dir=tmp_path)
    with serve_api(context) as client:
        yield client


def test_api_lists_sessions_newest_first_with_filters(api):
    code, rows = api.get("/v1/sessions")
    assert code == 200
    assert [(r["platform"], r["session_id"]) for r in rows] == [
        ("taobao", "d1"), ("douyin", "d4"), ("douyin", "d0"), ("douyin", "d3"), ("douyin", "d1"), ("douyin", "d2"),
        ("douyin", "d6"), ("douyin", "d5")]
    d1 = next(r for r in rows if (r["platform"], r["session_id"]) == ("douyin", "d1"))
    assert datetime.fromisoformat(d1["last_seen_live_at"]) == NOW - timedelta(hours=1)
    assert d1["last_seen_live_at"].endswith("+00:00") and d1["products_presented"][0]["from"].endswith("+00:00")
    assert "_id" not in d1 and d1["gmv_estimate"] == 5000.5

    def ids(**params: Any) -> list[str]:
        code, found = api.get("/v1/sessions", **params)
        assert code == 200, found
        return [r["session_id"] for r in found]

    assert ids(platform="douyin", since="45m") == ["d4", "d0", "d3"]
    assert ids(platform="douyin", status="live") == ["d4"]
    assert ids(platform="douyin", streamer_id="sA") == ["d1", "d2"]
    assert ids(room_id=DOUYIN_ROOM) == ["d4"]
    assert ids(platform="douyin", limit=2) == ["d4", "d0"]
    assert ids(platform="bilibili") == []


@pytest.mark.parametrize(("params", "says"), [
    ({"since": "soon"}, "expected a duration like 30m"), ({"platform": "mars"}, "platform"),
    ({"status": "paused"}, "status"), ({"limit": 0}, "limit"), ({"limit": 501}, "limit"),
])
def test_api_refuses_bad_session_queries_with_422(api, params, says):
    code, body = api.get("/v1/sessions", **params)
    assert code == 422 and says in json.dumps(body), body


def test_api_reads_one_session_and_needs_the_token(api):
    code, doc = api.get("/v1/sessions/douyin/d2")
    assert code == 200 and (doc["session_id"], doc["gmv_high"], doc["estimator_version"]) == ("d2", None, "1.1.0")
    assert api.get("/v1/sessions/taobao/d1")[1]["gmv_estimate"] == 10**8
    assert api.get("/v1/sessions/douyin/nope")[0] == 404
    assert api.get("/v1/sessions/mars/d1")[0] == 422
    for path in ("/v1/sessions", "/v1/sessions/douyin/d2"):
        for token in (None, "wrong"):
            assert api.get(path, token=token)[0] == 401


def test_api_monitor_list_shows_the_current_session(api, redis_client):
    from crawlers.monitor.registry import Registry

    registry = Registry(redis_client, "lfsessions")
    watched = registry.add("douyin", WEB_RID, 30, 3600)
    idle = registry.add("bilibili", "5440", 30, 3600)
    code, listed = api.get("/v1/monitors")
    assert code == 200
    sessions = {m["id"]: m["session"] for m in listed}
    assert sessions[idle.id] is None
    assert (sessions[watched.id]["session_id"], sessions[watched.id]["status"],
            sessions[watched.id]["gmv_low"]) == ("d4", "live", 90.0)


# --- monitor list -----------------------------------------------------------------------------------------------


def test_monitor_list_shows_each_monitored_rooms_current_session(cli_env, mongo_db, monkeypatch, capsys):
    from crawlers.monitor.registry import Registry

    monkeypatch.setenv("LIVEFLEET_MONGO_DB", mongo_db.name)
    mongo_db.live_sessions.insert_many([
        *_sessions(),
        # The same Douyin room (web_rid) broadcast before: the newer session is the current one.
        session("douyin", "d-earlier", last_live=NOW - timedelta(days=1), room_id="7300000000000000001",
                web_rid=WEB_RID, gmv_estimate=1.0, gmv_low=1.0, gmv_high=1.0),
        # A Taobao room whose shelf was never seen: its session, but no figures (not zeros).
        session("taobao", "523417747786", last_live=NOW - timedelta(minutes=5), room_id="523417747786",
                status="live"),
        # A Douyin streamer known by sec_uid: the streamers collection names its uid.
        session("douyin", "d-streamer", last_live=NOW - timedelta(minutes=1), room_id="7300000000000000002",
                streamer_id="u-sec", units_sold=3, gmv_estimate=30.0, gmv_low=29.5, gmv_high=30.5,
                viewers_peak=1234),
        # A Bilibili room the monitor saw live under its streamer target.
        session("bilibili", "9100:1780000000", last_live=NOW - timedelta(minutes=2), room_id="9100",
                streamer_id="other", viewers_peak=77),
    ])
    mongo_db.streamers.insert_one({"platform": "douyin", "streamer_id": "u-sec", "sec_id": SEC_UID})
    registry = Registry(cli_env, "clitest")
    room = registry.add("douyin", f"https://live.douyin.com/{WEB_RID}", 30, 3600)
    nothing = registry.add("bilibili", "5440", 30, 3600)
    shelfless = registry.add("taobao", "523417747786", 30, 3600)
    streamer = registry.add("douyin", SEC_UID, 30, 3600)
    seen_live = registry.add("bilibili", "https://space.bilibili.com/4242", 30, 3600)
    cli_env.hset(registry.keys.monitor_state(seen_live.id), "live_room_id", "9100")

    assert main(["monitor", "list", "--json"]) == 0
    listed = {m["id"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed[nothing.id]["session"] is None
    current = listed[room.id]["session"]
    assert current == {"session_id": "d4", "status": "live", "room_id": DOUYIN_ROOM,
                       "started_at": (NOW - timedelta(minutes=70)).isoformat(),
                       "last_seen_live_at": (NOW - timedelta(minutes=10)).isoformat(), "viewers_peak": 40,
                       "units_sold": 5, "gmv_estimate": 100.0, "gmv_low": 90.0, "gmv_high": 110.0,
                       "estimator_version": "1.0.0"}
    assert listed[shelfless.id]["session"]["gmv_estimate"] is None
    assert listed[shelfless.id]["session"]["units_sold"] is None
    assert listed[streamer.id]["session"]["session_id"] == "d-streamer"
    assert listed[seen_live.id]["session"]["session_id"] == "9100:1780000000"
    assert listed[seen_live.id]["live_room_id"] == "9100"

    assert main(["monitor", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-6:] == ["SESSION", "PEAK", "UNITS", "GMV", "[LOW,", "HIGH]"]
    line = {m.id: next(text for text in lines if text.startswith(m.id)) for m in (room, nothing, shelfless, streamer)}
    assert line[room.id].split()[-7:] == ["d4", "(live)", "40", "5", "100.00", "[90.00,", "110.00]"]
    assert "(" not in line[nothing.id] and "[" not in line[nothing.id]  # no session: nothing shown
    assert line[shelfless.id].rstrip().endswith("523417747786 (live)")  # no zeros for the unknown figures
    assert "1,234" in line[streamer.id] and "30.00 [29.50, 30.50]" in line[streamer.id]


# --- against the sandbox's truth --------------------------------------------------------------------------------


def _truth_sessions() -> tuple[list[dict[str, Any]], datetime]:
    """The sandbox Douyin world's sessions at two hours past its start, as its truth reports them."""
    from sandbox.douyin.world import DouyinWorld
    from sandbox.world import DEFAULT_START

    now = DEFAULT_START + 2 * 3600
    truth = DouyinWorld(7, 60).truth(now)
    return truth["sessions"], datetime.fromtimestamp(now, UTC)


def test_rankings_of_the_truths_sessions_come_out_in_the_truths_order(mongo_db):
    """Sessions stored with the truth's figures (as a crawl that read every minute would estimate them; a
    room without a shop: GMV and units unknown, as the builder stores them) rank as the truth orders them."""
    truths, now = _truth_sessions()
    assert len(truths) > 10 and any(t["has_shop"] for t in truths)
    docs = []
    for t in truths:
        last = datetime.fromtimestamp(t["ended_at"], UTC) if t["ended_at"] else now
        sales = {"units_sold": t["units"], "gmv_estimate": t["gmv"], "gmv_low": t["gmv"], "gmv_high": t["gmv"],
                 "estimator_version": "1.1.0",
                 "products_sold": [_sold(pid, v["units"], v["units"], v["units"], v["gmv"], v["gmv"], v["gmv"])
                                   for pid, v in t["products"].items() if v["units"]]} if t["has_shop"] else {}
        docs.append(session("douyin", t["session_id"], room_id=t["room_id"], web_rid=t.get("web_rid"),
                            streamer_id=t.get("streamer_id"), status=t["status"], last_live=last,
                            viewers_peak=t["viewers_peak"], **sales))
    mongo_db.live_sessions.insert_many(docs)
    since = now - timedelta(days=2)
    n = len(truths)

    def order(key: str) -> list[tuple[str, Any]]:
        known = [t for t in truths if key == "viewers_peak" or t["has_shop"]]
        return [(t["session_id"], t[key]) for t in sorted(known, key=lambda t: (-t[key], t["session_id"]))]

    rows = ranking.rank(mongo_db, "sessions", "gmv", "douyin", since, n).rows
    assert [(r["session_id"], r["gmv_estimate"]) for r in rows] == order("gmv")
    rows = ranking.rank(mongo_db, "sessions", "units", "douyin", since, n).rows
    assert [(r["session_id"], r["units_sold"]) for r in rows] == order("units")
    rows = ranking.rank(mongo_db, "sessions", "peak_viewers", "douyin", since, n).rows
    assert [(r["session_id"], r["viewers_peak"]) for r in rows] == order("viewers_peak")

    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in truths:
        if t.get("streamer_id"):
            per[t["streamer_id"]].append(t)
    expected = sorted(((sid, sum(t["gmv"] for t in ts if t["has_shop"]), sum(t["has_shop"] for t in ts),
                        sum(not t["has_shop"] for t in ts))
                       for sid, ts in per.items() if any(t["has_shop"] for t in ts)), key=lambda e: (-e[1], e[0]))
    rows = ranking.rank(mongo_db, "streamers", "session_gmv", "douyin", since, n).rows
    assert [(r["streamer_id"], r["sessions"], r["sessions_without_gmv"]) for r in rows] == [
        (sid, known, unknown) for sid, _gmv, known, unknown in expected]
    assert [r["session_gmv"] for r in rows] == pytest.approx([gmv for _sid, gmv, _k, _u in expected], abs=0.006)
    assert all(r["gmv_low"] == r["session_gmv"] == r["gmv_high"] for r in rows)

    # Products by what they sold over those sessions: the truth's per-product sums, in the truth's order.
    units: dict[str, int] = defaultdict(int)
    gmv: dict[str, float] = defaultdict(float)
    for t in truths:
        for pid, v in (t["products"] if t["has_shop"] else {}).items():
            if v["units"]:
                units[pid] += v["units"]
                gmv[pid] += v["gmv"]
    assert len(gmv) > 10
    rows = ranking.rank(mongo_db, "products", "session_gmv", "douyin", since, len(gmv)).rows
    expected_gmv = sorted(gmv.items(), key=lambda e: (-round(e[1], 2), e[0]))
    assert [r["product_id"] for r in rows] == [pid for pid, _ in expected_gmv]
    assert [r["session_gmv"] for r in rows] == pytest.approx([g for _, g in expected_gmv], abs=0.006)
    rows = ranking.rank(mongo_db, "products", "session_units", "douyin", since, len(units)).rows
    assert [(r["product_id"], r["session_units"]) for r in rows] == sorted(units.items(), key=lambda e: (-e[1], e[0]))
