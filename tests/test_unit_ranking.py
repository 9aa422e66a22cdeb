"""Pure parts of ``livefleet rank`` / ``export``: windows, refusals, tables, CSV cells, progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crawlers.reports import exporter as export
from crawlers.reports import ranking

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "back"), [("30m", timedelta(minutes=30)), ("24h", timedelta(hours=24)),
                                            ("7d", timedelta(days=7)), ("90s", timedelta(seconds=90)),
                                            ("1.5h", timedelta(minutes=90)), (" 2w ", timedelta(days=14))])
def test_since_takes_durations(text, back):
    assert ranking.parse_since(text, NOW) == NOW - back


def test_since_takes_iso_times_in_any_zone_and_utc_without_one():
    assert ranking.parse_since("2026-06-01T20:00:00+08:00", NOW) == NOW
    assert ranking.parse_since("2026-06-01T12:00:00", NOW) == NOW
    assert ranking.parse_since("2026-06-01T20:00:00+08:00").tzinfo == UTC


@pytest.mark.parametrize("text", ["24", "h", "3x", "-1h", "yesterday", ""])
def test_since_refuses_anything_else(text):
    with pytest.raises(ValueError, match="duration like 30m"):
        ranking.parse_since(text, NOW)


def test_every_combination_is_either_a_pipeline_or_refused_with_a_reason():
    for entity in ranking.ENTITIES:
        for by in ranking.METRICS:
            if (entity, by) in ranking.REFUSED:
                with pytest.raises(ValueError, match=f"{entity} cannot be ranked by {by}: .*rank "):
                    ranking.pipeline_for(entity, by, "douyin", NOW, 10)
            else:
                collection, pipeline = ranking.pipeline_for(entity, by, "douyin", NOW, 10)
                assert collection in {"streamers", "room_snapshots", "product_snapshots"}
                match = pipeline[0]["$match"]
                assert match["platform"] == "douyin"
                assert NOW in (match.get("captured_at", {}).get("$gte"), match.get("last_seen_at", {}).get("$gte"))
                assert {"$limit": 10} in pipeline


def test_refusals_name_what_to_rank_instead():
    with pytest.raises(ValueError, match="rank rooms --by sales_growth"):
        ranking.pipeline_for("streamers", "sales_growth", "taobao", NOW, 5)
    with pytest.raises(ValueError, match="unknown --by 'likes'"):
        ranking.pipeline_for("rooms", "likes", "taobao", NOW, 5)
    with pytest.raises(ValueError, match="nothing to rank"):
        ranking.pipeline_for("shops", "sales", "taobao", NOW, 5)
    with pytest.raises(ValueError, match="--limit must be at least 1"):
        ranking.pipeline_for("rooms", "sales", "taobao", NOW, 0)


def test_text_width_counts_wide_characters_twice():
    assert ranking.text_width("abc") == 3
    assert ranking.text_width("直播间") == 6
    assert ranking.text_width("Ｆｕｌｌ") == 8  # full-width letters
    assert ranking.text_width("ｶﾀｶﾅ") == 4  # half-width katakana stay narrow


def test_table_columns_line_up_with_cjk_text():
    rows = [{"rank": 1, "room_id": "7", "title": "橙子专场 全场包邮", "sales": 299990},
            {"rank": 2, "room_id": "12345", "title": "fruit", "sales": 7, "extra": None}]
    lines = ranking.format_table(rows, ("rank", "room_id", "title", "sales")).splitlines()
    assert lines[0].split() == ["rank", "room_id", "title", "sales", "extra"]
    assert lines[1].startswith("   1  7        橙子专场 全场包邮  299,990")
    # The sales column ends at the same terminal column on every line (numbers are right-aligned).
    ends = [ranking.text_width(line[: line.rindex(cell) + len(cell)])
            for line, cell in zip(lines, ("sales", "299,990", "7"), strict=True)]
    assert len(set(ends)) == 1, lines
    assert lines[2].rstrip().endswith("-")  # a missing value is shown as -
    assert ranking.format_table([]) == "(no rows)"


def test_csv_cells():
    at = datetime(2026, 6, 1, 12, 0, 1, 123000, tzinfo=UTC)
    assert export.csv_cell(None) == ""
    assert export.csv_cell(True) == "true" and export.csv_cell(False) == "false"
    assert export.csv_cell(0.1 + 0.2) == "0.30000000000000004"  # repr: floats round-trip
    assert export.csv_cell(at) == "2026-06-01T12:00:01.123000+00:00"
    assert export.csv_cell({"a": [1, "二"]}) == '{"a": [1, "二"]}'
    assert export.csv_cell("604946797621") == "604946797621"


def test_csv_columns_follow_the_contract():
    rooms = export.columns("rooms")
    assert rooms[:3] == ["platform", "fetched_at", "source_url"]
    assert {"room_id", "streamer_id", "peak_viewers", "viewers_total"} <= set(rooms)
    assert rooms[-2:] == ["first_seen_at", "last_seen_at"]
    assert "first_seen_at" not in export.columns("room_snapshots")
    assert "payload" in export.columns("quarantine")
    with pytest.raises(ValueError, match="unknown collection"):
        export.columns("users")


def test_export_filter():
    since, until = NOW - timedelta(hours=1), NOW
    assert export.export_filter("rooms", "douyin", since, until) == {
        "platform": "douyin", "last_seen_at": {"$gte": since, "$lt": until}}
    assert export.export_filter("product_snapshots", None, since, None) == {"captured_at": {"$gte": since}}
    assert export.export_filter("quarantine", None, None, None) == {}


def test_jsonl_line_keeps_text_and_writes_iso_times():
    at = datetime(2026, 6, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))
    assert export.jsonl_line({"title": "直播", "at": at}) == '{"title": "直播", "at": "2026-06-01T20:00:00+08:00"}'
