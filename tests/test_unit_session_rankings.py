"""Pure parts of the session rankings, the ``live_sessions`` export and the monitors' current session:
which ``--by`` each entity takes, the refusals, the pipelines' windows and null handling, the table
cells, the CSV columns, and the monitor table (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crawlers.cli import monitor as monitor_cli
from crawlers.monitor.registry import Monitor, session_filter
from crawlers.reports import exporter, ranking
from models.sessions import LiveSession

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_every_entity_and_measure_is_either_a_pipeline_or_refused_with_what_to_rank_instead():
    for entity in ranking.ALL_ENTITIES:
        for by in ranking.ALL_METRICS:
            if (entity, by) in ranking.PIPELINES:
                assert (entity, by) not in ranking.REFUSED
                collection, pipeline = ranking.pipeline_for(entity, by, "douyin", NOW, 10)
                match = pipeline[0]["$match"]
                assert match["platform"] == "douyin" and {"$limit": 10} in pipeline
                if collection == "live_sessions":
                    assert match["last_seen_live_at"] == {"$gte": NOW}
            else:
                with pytest.raises(ValueError, match=f"{entity} cannot be ranked by {by}: .*rank "):
                    ranking.pipeline_for(entity, by, "douyin", NOW, 10)


def test_the_by_choices_depend_on_the_entity():
    assert ranking.BY_CHOICES["sessions"] == ("gmv", "units", "peak_viewers", "viewers_total", "uv_value")
    assert ranking.BY_CHOICES["streamers"] == ("followers", "peak_viewers", "viewers_total", "session_gmv")
    assert ranking.BY_CHOICES["rooms"] == ("peak_viewers", "viewers_total", "sales", "sales_growth")
    assert ranking.BY_CHOICES["products"] == ("sales", "sales_growth", "session_gmv", "session_units")
    assert ranking.ID_FIELDS["sessions"] == "session_id"


@pytest.mark.parametrize(("by", "field"), list(ranking.SESSION_FIELDS.items()))
def test_a_session_ranking_leaves_null_figures_out_and_sorts_by_the_figure_then_id(by, field):
    collection, pipeline = ranking.pipeline_for("sessions", by, "kuaishou", NOW, 5)
    assert collection == "live_sessions"
    assert pipeline[0]["$match"][field] == {"$type": "number"}  # null or missing: not ranked, not 0
    assert pipeline[1] == {"$sort": {field: -1, "session_id": 1}}
    projected = pipeline[-1]["$project"]
    assert projected.pop("_id") == 0 and set(projected) == set(ranking.SESSION_COLUMNS)
    assert {"gmv_estimate", "gmv_low", "gmv_high", "estimator_version"} <= set(projected)
    assert set(ranking.SESSION_COLUMNS) <= set(LiveSession.model_fields)  # the contract's names


def test_streamers_by_session_gmv_only_sums_known_gmv():
    collection, pipeline = ranking.pipeline_for("streamers", "session_gmv", "taobao", NOW, 3)
    assert collection == "live_sessions"
    assert pipeline[0]["$match"] == {"platform": "taobao", "last_seen_live_at": {"$gte": NOW},
                                     "streamer_id": {"$type": "string"}}
    assert {"$match": {"sessions": {"$gt": 0}}} in pipeline  # no session of known GMV: not ranked
    assert set(pipeline[-1]["$project"]) == {"_id", "streamer_id", "nickname", "session_gmv", "gmv_low", "gmv_high",
                                             "sessions", "sessions_without_gmv", "estimator_versions"}


def test_gmv_cells_show_the_bounds_and_nothing_for_unknown():
    assert ranking.gmv_cell(45678.0, 44000.0, 47000.5) == "45,678.00 [44,000.00, 47,000.50]"
    assert ranking.gmv_cell(10.0, 9.5, None) == "10.00 [9.50, -]"  # unbounded
    assert ranking.gmv_cell(None, None, None) is None
    assert ranking.gmv_cell(0.0, 0.0, 0.0) == "0.00 [0.00, 0.00]"  # a known 0 is shown as 0


def test_session_rows_as_the_table_shows_them():
    row = {"rank": 1, "session_id": "s1", "room_id": "r1", "streamer_id": None, "title": "t", "status": "live",
           "viewers_peak": 12, "gmv_estimate": 3.5, "gmv_low": 3.0, "gmv_high": 4.0, "estimator_version": "1.0.0"}
    (shown,) = ranking.display_rows("sessions", "peak_viewers", [row])
    assert shown == {"rank": 1, "session_id": "s1", "title": "t", "viewers_peak": 12,
                     "gmv [low, high]": "3.50 [3.00, 4.00]", "estimator_version": "1.0.0", "status": "live",
                     "room_id": "r1", "streamer_id": None}
    (by_gmv,) = ranking.display_rows("sessions", "gmv", [row])
    assert "gmv_estimate" not in by_gmv and list(by_gmv)[3] == "gmv [low, high]"
    table = ranking.format_table([by_gmv]).splitlines()
    assert table[1].split() == ["1", "s1", "t", "3.50", "[3.00,", "4.00]", "1.0.0", "live", "r1", "-"]
    (streamer,) = ranking.display_rows("streamers", "session_gmv", [
        {"rank": 1, "streamer_id": "u", "nickname": None, "session_gmv": 7.0, "gmv_low": 6.0, "gmv_high": None,
         "sessions": 2, "sessions_without_gmv": 1, "estimator_versions": ["1.0.0", "1.1.0"]}])
    assert streamer["session_gmv [low, high]"] == "7.00 [6.00, -]" and streamer["estimator_versions"] == "1.0.0,1.1.0"
    rooms = [{"rank": 1, "room_id": "r"}]
    assert ranking.display_rows("rooms", "sales", rooms) is rooms  # the other rankings as they were


def test_live_sessions_export_columns_and_window():
    assert exporter.columns("live_sessions") == list(LiveSession.model_fields)
    assert exporter.export_filter("live_sessions", "douyin", NOW, None) == {
        "platform": "douyin", "last_seen_live_at": {"$gte": NOW}}
    presented = [{"product_id": "p1", "from": NOW, "to": NOW, "sales_from": 1}]
    assert exporter.csv_cell(presented) == (
        '[{"product_id": "p1", "from": "2026-06-01T12:00:00+00:00", "to": "2026-06-01T12:00:00+00:00", '
        '"sales_from": 1}]')
    assert exporter.csv_cell([]) == "[]"


def _monitor(platform: str, kind: str, ident: str, live_room_id: str | None = None) -> Monitor:
    return Monitor(id=f"m-{ident}", platform=platform, target={"platform": platform, "kind": kind, "id": ident,
                                                                 "url": "u"},
                   seed={}, every_s=30.0, until="2026-06-01T18:00:00.000+00:00",
                   created_at="2026-06-01T12:00:00.000+00:00", live_room_id=live_room_id)


class _Streamers:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def find(self, query: dict[str, Any], projection: dict[str, Any]) -> _Streamers:
        return _Streamers([d for d in self.docs if all(d.get(k) == v for k, v in query.items())])

    def limit(self, n: int) -> list[dict[str, Any]]:
        return self.docs[:n]


class _Db:
    def __init__(self, streamers: list[dict[str, Any]]) -> None:
        self.streamers = _Streamers(streamers)


def test_a_monitors_sessions_are_found_by_room_id_web_rid_streamer_or_the_room_it_saw_live():
    db = _Db([{"platform": "douyin", "streamer_id": "uid1", "sec_id": "MS4w-sec"}])
    assert session_filter(db, _monitor("douyin", "room", "604946797621")) == {  # type: ignore[arg-type]
        "platform": "douyin", "$or": [{"room_id": "604946797621"}, {"web_rid": "604946797621"}]}
    assert session_filter(db, _monitor("douyin", "streamer", "MS4w-sec", "730")) == {  # type: ignore[arg-type]
        "platform": "douyin", "$or": [{"streamer_id": {"$in": ["MS4w-sec", "uid1"]}}, {"room_id": "730"}]}


def test_the_monitor_table_shows_the_current_session_and_nothing_without_one():
    watched, idle = _monitor("douyin", "room", "604946797621"), _monitor("bilibili", "room", "5440")
    plain = monitor_cli.format_table([watched, idle])
    assert "SESSION" not in plain  # without sessions, the table as it was
    sessions = {watched.id: {"session_id": "7301", "status": "live", "viewers_peak": 12345, "units_sold": None,
                             "gmv_estimate": None, "gmv_low": None, "gmv_high": None},
                idle.id: None}
    lines = monitor_cli.format_table([watched, idle], sessions).splitlines()
    assert lines[0].split()[-6:] == ["SESSION", "PEAK", "UNITS", "GMV", "[LOW,", "HIGH]"]
    assert lines[1].rstrip().endswith("7301 (live)  12,345")  # unknown units and GMV: blank, not 0
    assert lines[2].rstrip().endswith(idle.until[:19])
