"""Watchlist windows and tiers (``crawlers.watch.lists``), and the lines of an import file: no Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crawlers.alerts.robots import redact_url
from crawlers.watch.lists import (
    DEFAULT_TZ,
    TIERS,
    ImportRefused,
    Windows,
    parse_import,
    parse_tier,
    parse_windows,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(hour: int, minute: int = 0, day: int = 1, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(2026, 6, day, hour, minute, tzinfo=zone)


def test_tiers_and_their_parser():
    assert TIERS == {"hot": 30.0, "normal": 60.0, "tail": 300.0}
    assert [parse_tier(t) for t in ("hot", " Normal ", "TAIL")] == ["hot", "normal", "tail"]
    for bad in ("warm", "", "hot,tail", "30"):
        with pytest.raises(ValueError, match="unknown tier .*hot \\(every 30s\\), normal \\(every 60s\\), tail"):
            parse_tier(bad)


@pytest.mark.parametrize("text", [None, "", "  ", "always", "ALWAYS", "00:00-24:00", "0:00-24:00"])
def test_no_windows_is_always(text):
    windows = parse_windows(text)
    assert windows.always and windows.text is None and str(windows) == "always"
    assert windows.contains(at(3)) and windows.next_change(at(3)) is None


def test_one_evening_window_in_the_default_zone():
    windows = parse_windows("19:00-24:00")
    assert DEFAULT_TZ == "Asia/Shanghai" and windows.text == "19:00-24:00@Asia/Shanghai"
    assert not windows.contains(at(18, 59))
    assert windows.contains(at(19, 0)) and windows.contains(at(23, 59))  # the start is in, the end is out
    assert not windows.contains(at(0, 0, day=2))
    assert not windows.contains(datetime(2026, 6, 1, 23, 59, 59, 999_999, tzinfo=SHANGHAI) + timedelta(microseconds=1))
    # The same instants written in another zone: 11:00 UTC is 19:00 in Shanghai.
    assert windows.contains(datetime(2026, 6, 1, 11, 0, tzinfo=UTC))
    assert not windows.contains(datetime(2026, 6, 1, 10, 59, tzinfo=UTC))


def test_a_window_crossing_midnight():
    windows = parse_windows("22:00-02:00")
    assert windows.text == "22:00-02:00@Asia/Shanghai"
    assert [windows.contains(at(h)) for h in (21, 22, 23, 0, 1, 2, 3)] == [False, True, True, True, True, False, False]
    assert windows.contains(at(1, 59)) and not windows.contains(at(2, 0))
    # Written as its two halves it is the same window; "22:00-00:00" ends at midnight.
    assert parse_windows("22:00-24:00,00:00-02:00") == windows
    assert parse_windows("22:00-00:00").text == "22:00-24:00@Asia/Shanghai"


def test_several_windows_are_merged_and_written_one_way():
    windows = parse_windows(" 19:00-21:00 , 12:00-14:00,20:00-24:00 ")
    assert windows.text == "12:00-14:00,19:00-24:00@Asia/Shanghai"
    assert windows.contains(at(13)) and not windows.contains(at(15)) and windows.contains(at(23, 30))
    assert parse_windows(windows.text) == windows  # the canonical text reads back the same
    assert parse_windows("7:05-9:30").text == "07:05-09:30@Asia/Shanghai"
    assert parse_windows("08:00-10:00,22:00-02:00").text == "08:00-10:00,22:00-02:00@Asia/Shanghai"


def test_time_zones():
    utc = parse_windows("19:00-24:00@UTC")
    assert utc.text == "19:00-24:00@UTC" and parse_windows("19:00-24:00", tz="UTC") == utc
    assert utc.contains(datetime(2026, 6, 1, 19, 0, tzinfo=UTC)) and not utc.contains(at(19))  # 19:00 Shanghai = 11 UTC
    assert parse_windows("19:00-24:00@Asia/Shanghai", tz="UTC").text == "19:00-24:00@Asia/Shanghai"  # @ wins
    both = parse_windows("19:00-24:00@Asia/Shanghai;09:00-10:00@Europe/Paris")
    assert both.text == "19:00-24:00@Asia/Shanghai;09:00-10:00@Europe/Paris"
    paris_9 = datetime(2026, 6, 1, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 15:30 in Shanghai
    assert both.contains(paris_9) and both.contains(at(20)) and not both.contains(at(12))
    # Daylight saving: Paris windows follow the Paris clock in winter and in summer.
    winter = parse_windows("09:00-10:00@Europe/Paris")
    assert winter.contains(datetime(2026, 1, 15, 8, 30, tzinfo=UTC))  # 09:30 CET
    assert winter.contains(datetime(2026, 7, 15, 7, 30, tzinfo=UTC))  # 09:30 CEST


@pytest.mark.parametrize(("text", "message"), [
    ("25:00-26:00", "hours 00-23"),
    ("19:60-20:00", "minutes 00-59"),
    ("24:00-02:00", "24:00 only as an end"),
    ("19:00-24:30", "24:00 only as an end"),
    ("19:00-19:00", "empty window"),
    ("7pm-9pm", "not a time window: '7pm-9pm'"),
    ("19:00", "not a time window"),
    ("19:00-24:00,", "not a time window: ''"),
    ("19:00-24:00@Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("19:00-24:00@../../etc/passwd", "unknown time zone"),
    ("19:00-24:00@", "no time zone after '@'"),
    ("19:00-20:00@UTC,21:00-22:00", "@ZONE ends a group"),
    ("@UTC", "no time span"),
])
def test_bad_windows_are_refused_saying_why(text, message):
    with pytest.raises(ValueError, match=message.replace("(", "\\(").replace(")", "\\)")):
        parse_windows(text)


def test_an_unknown_default_zone_is_refused():
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere'"):
        parse_windows("19:00-24:00", tz="Nowhere")


def test_next_change_is_when_a_window_next_opens_or_closes():
    windows = parse_windows("22:00-02:00")
    assert windows.next_change(at(21, 30)) == at(22)
    assert windows.next_change(at(23)) == at(2, day=2)
    assert windows.next_change(at(1)) == at(2)
    assert windows.next_change(at(22)) == at(2, day=2)  # at the opening instant: the next change is the close
    assert windows.next_change(at(2)) == at(22)
    # Two windows; adjacent ones are one window (no change at 14:00).
    two = parse_windows("12:00-14:00,14:00-15:00,19:00-24:00")
    assert two.next_change(at(13)) == at(15) and two.next_change(at(16)) == at(19)
    assert two.next_change(at(20)) == at(0, day=2) and two.next_change(at(0, 30, day=2)) == at(12, day=2)
    # The answer is in the caller's zone; the instant is the same.
    utc = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 20:00 in Shanghai
    change = two.next_change(utc)
    assert change == at(0, day=2) and change.tzinfo == UTC
    # Always, or windows of two zones covering the day between them: no change ever.
    assert parse_windows("00:00-12:00@UTC;12:00-24:00@UTC").next_change(utc) is None


def test_next_change_across_daylight_saving():
    paris = ZoneInfo("Europe/Paris")
    windows = parse_windows("01:00-04:00@Europe/Paris")
    # 2026-03-29: clocks go from 02:00 to 03:00; the window still closes at 04:00 local (02:00 UTC).
    start = datetime(2026, 3, 29, 1, 30, tzinfo=paris)
    assert windows.next_change(start) == datetime(2026, 3, 29, 4, 0, tzinfo=paris)
    assert windows.next_change(start).astimezone(UTC) == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_windows("19:00-24:00").contains(datetime(2026, 6, 1, 20, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_windows("19:00-24:00").next_change(datetime(2026, 6, 1, 20, 0))


def test_union_takes_either_window_and_always_wins():
    evening, night = parse_windows("19:00-23:00"), parse_windows("22:00-02:00")
    assert evening.union(night).text == "19:00-02:00@Asia/Shanghai"
    assert evening.union(Windows()).always and Windows().union(night).always
    mixed = evening.union(parse_windows("09:00-10:00@UTC"))
    assert mixed.text == "19:00-23:00@Asia/Shanghai;09:00-10:00@UTC"
    assert parse_windows("00:00-12:00").union(parse_windows("12:00-24:00")).always


# -- import lines ------------------------------------------------------------------------------------------------


def test_import_lines_with_tiers_windows_comments_and_duplicates():
    lines = [
        "# beauty streamers, evenings",
        "",
        "https://live.douyin.com/604946797621 tier=hot window=19:00-24:00",
        "  604946797621  ",  # the same room by ID: a duplicate, its tier and window kept
        "https://www.douyin.com/user/MS4wLjABAAAA" + "a" * 43 + ", tier=tail, window=22:00-02:00@UTC",
        "700000000001 window=12:00-14:00,19:00-24:00@Asia/Shanghai",
        "700000000002 window=always",
    ]
    parsed = parse_import("douyin", lines, tier="normal", source_name="beauty.txt")
    assert parsed.lines == 7 and parsed.duplicates == 1
    rows = {row.key: row for row in parsed.rows}
    assert list(rows) == ["douyin:room:604946797621", "douyin:streamer:MS4wLjABAAAA" + "a" * 43,
                          "douyin:room:700000000001", "douyin:room:700000000002"]
    room = rows["douyin:room:604946797621"]
    assert (room.tier, str(room.windows), room.source) == ("normal", "19:00-24:00@Asia/Shanghai", "import:beauty.txt:4")
    streamer = rows["douyin:streamer:MS4wLjABAAAA" + "a" * 43]
    assert (streamer.tier, str(streamer.windows)) == ("tail", "22:00-02:00@UTC")
    assert str(rows["douyin:room:700000000001"].windows) == "12:00-14:00,19:00-24:00@Asia/Shanghai"
    assert rows["douyin:room:700000000002"].windows == Windows()  # "always" given: not the same as not given


def test_a_later_line_changes_what_it_gives():
    parsed = parse_import("bilibili", ["5440 tier=hot", "5440 window=19:00-24:00", "5440 tier=tail"],
                          source_name="f")
    (row,) = parsed.rows
    assert (row.tier, row.windows.text, parsed.duplicates) == ("tail", "19:00-24:00@Asia/Shanghai", 2)


def test_csv_with_a_header():
    lines = ["\ufefftarget,tier,window", "https://live.bilibili.com/5440,hot,19:00-24:00",
             '21452505,,"12:00-14:00,19:00-24:00"', "6,tail,"]
    rows = {row.key: row for row in parse_import("bilibili", lines, source_name="rooms.csv").rows}
    assert (rows["bilibili:room:5440"].tier, str(rows["bilibili:room:5440"].windows)) == (
        "hot", "19:00-24:00@Asia/Shanghai")
    assert rows["bilibili:room:21452505"].tier is None  # not given: the entry's or the list's
    assert str(rows["bilibili:room:21452505"].windows) == "12:00-14:00,19:00-24:00@Asia/Shanghai"
    assert rows["bilibili:room:6"].tier == "tail" and rows["bilibili:room:6"].windows is None


def test_every_refused_line_is_named_and_none_is_taken():
    lines = ["5440", "https://v.douyin.com/iRNBho6u/", "# fine", "5441 tier=warm", "5442 window=25:00-26:00",
             "5443 colour=red", "http://127.0.0.1/5444", "5445"]
    with pytest.raises(ImportRefused) as refused:
        parse_import("bilibili", lines, source_name="f")
    numbers = [n for n, _ in refused.value.refusals]
    assert numbers == [2, 4, 5, 6, 7] and refused.value.lines == 8
    text = str(refused.value)
    assert text.startswith("5 of 8 lines refused, nothing imported")
    for expected in ("line 2: refused bilibili URL", "line 4: unknown tier 'warm'", "line 5: not a time of day",
                     "line 6: unknown field 'colour'", "line 7: refused bilibili URL 'http://127.0.0.1/5444'"):
        assert expected in text


def test_redacted_urls():
    assert redact_url("https://oapi.dingtalk.com/robot/send?access_token=abc123") == \
        "https://oapi.dingtalk.com/robot/send?access_token=***"
    assert redact_url("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k-1&debug=1") == \
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***&debug=1"
    assert redact_url("https://open.feishu.cn/open-apis/bot/v2/hook/0f1e2d3c") == \
        "https://open.feishu.cn/open-apis/bot/v2/hook/***"
    assert redact_url("https://hooks.example.com/in?a=1") == "https://hooks.example.com/in?a=1"
