"""``livefleet parse`` recognises payloads by content only, ``--explain`` says why, push files work.

Real fixtures of every kind of every platform are copied under misleading names (another
kind's name, another platform's, a wrong extension): the kinds still come out right.
"""

from __future__ import annotations

import importlib
import json
import shutil
import zlib
from pathlib import Path

import pytest

from crawlers.cli.main import main
from spiders.douyin.detect import KINDS as DOUYIN_KINDS
from tests.fixture_cases import Case, iter_cases

PUSH = Path(__file__).parent / "fixtures" / "douyin" / "push" / "webcast"
# One single-input, successful case per (platform, kind).
_FIRST: dict[tuple[str, str], Case] = {}
for _case in iter_cases():
    if not _case.is_error and not _case.is_multi:
        _FIRST.setdefault((_case.platform, _case.kind), _case)
CASES = list(_FIRST.values())
_LIES = [
    "room_page.html",
    "shelf.json",
    "taobao_item_detail.json",
    "bilibili_room_info.json",
    "kuaishou_live_page.html",
    "user_profile.txt",
    "push_messages.jsonl",
    "WebcastRoomStatsMessage.json",
    "noext",
]


def _run(
    capsys: pytest.CaptureFixture[str], platform: str, *args: str, at: str = "2024-01-01T00:00:00+00:00"
) -> tuple[int, list[dict], list[str]]:
    status = main(["parse", "--platform", platform, "--fetched-at", at, *args])
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err.splitlines()


def test_every_platform_and_kind_is_covered() -> None:
    assert {platform for platform, _ in _FIRST} == {"bilibili", "douyin", "kuaishou", "taobao"}
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_misleading_file_names_do_not_change_the_kind(capsys, tmp_path, case: Case) -> None:
    lie = tmp_path / _LIES[zlib.crc32(case.id.encode()) % len(_LIES)]
    shutil.copyfile(case.input_path, lie)
    status, lines, err = _run(capsys, case.platform, "--explain", str(lie), at=case.fetched_at.isoformat())
    expected = "push" if case.kind == "ws_shopping" else case.kind  # a push message: push.py parses it
    assert err[0].startswith(f"livefleet parse: {lie}: kind {expected}: "), err
    assert len(err[0]) > len(f"livefleet parse: {lie}: kind {expected}: ") + 5  # the marker is named
    if case.url is None and case.kind != "ws_shopping":  # nothing but the content was ever needed
        assert status == 0, err
        assert lines == case.expected


def test_the_same_content_under_two_names_gives_the_same_output(capsys, tmp_path) -> None:
    case = _FIRST[("douyin", "shelf")]
    a, b = tmp_path / "room_page.html", tmp_path / "enter.json"
    shutil.copyfile(case.input_path, a)
    shutil.copyfile(case.input_path, b)
    assert _run(capsys, "douyin", str(a))[:2] == _run(capsys, "douyin", str(b))[:2]


def test_explain_names_the_marker(capsys, tmp_path) -> None:
    shelf = tmp_path / "x.json"
    shutil.copyfile(_FIRST[("douyin", "shelf")].input_path, shelf)
    page = tmp_path / "y.json"
    shutil.copyfile(_FIRST[("douyin", "room_page")].input_path, page)
    bili = tmp_path / "z.html"
    shutil.copyfile(_FIRST[("bilibili", "room_info")].input_path, bili)
    _, _, err = _run(capsys, "douyin", "--explain", str(shelf), str(page))
    assert "promotions" in err[0] and "__pace_f" in err[1]
    _, _, err = _run(capsys, "bilibili", "--explain", str(bili))
    assert "room_id" in err[0] and "live_status" in err[0]  # the shape test's source


def test_explain_says_when_kind_or_url_decided(capsys, tmp_path) -> None:
    case = _FIRST[("bilibili", "room_info")]
    _, _, err = _run(capsys, "bilibili", "--explain", "--kind", "room_info", str(case.input_path))
    assert err[0].endswith("kind room_info: given by --kind")
    url = "https://api.live.bilibili.com/room/v1/Room/get_info?room_id=1"
    _, _, err = _run(capsys, "bilibili", "--explain", "--url", url, str(case.input_path))
    assert "kind room_info: the path of --url" in err[0]


@pytest.mark.parametrize("platform", ["bilibili", "douyin", "kuaishou", "taobao"])
def test_an_unusable_payload_names_the_kinds_tried(capsys, tmp_path, platform: str) -> None:
    unknown = tmp_path / "room_info.json"  # the name of a real kind: it must not help
    unknown.write_text('{"hello": "world", "data": {"x": 1}}', encoding="utf-8")
    good = tmp_path / "good.json"
    shutil.copyfile(_FIRST[("douyin", "room_enter")].input_path, good)
    files = [str(unknown), str(good)] if platform == "douyin" else [str(unknown)]
    status, lines, err = _run(capsys, platform, "--explain", *files)
    assert status == 1
    assert "Traceback" not in "\n".join(err)
    assert err[0].startswith(f"livefleet parse: {unknown}: no kind: ")
    assert err[1].startswith(f"livefleet parse: {unknown}: UnknownPayloadError: ")
    tried = err[1].split("; kinds tried: ")[1].split(", ")
    assert set(tried) >= set(importlib.import_module(f"spiders.{platform}.detect").KINDS)
    if platform == "douyin":  # nothing lost: the good file still printed, and push was tried too
        assert all(kind in err[1] for kind in (*DOUYIN_KINDS, "push"))
        assert {line["type"] for line in lines} >= {"room", "streamer"}


def test_push_messages_as_json_lines_print_records_then_events(capsys, tmp_path) -> None:
    lines_file = tmp_path / "msgs.json"
    messages = []
    for case in ("room_stats_2024-07-06", "room_user_seq_2024-07-05", "gift_2024-06-20", "product_change_2024-07-06",
                 "live_shopping_2024-07-06"):  # fmt: skip
        (path,) = (PUSH / case / "inputs").iterdir()
        loaded = json.loads(path.read_bytes())
        messages += loaded if isinstance(loaded, list) else [loaded]
    lines_file.write_text("\n".join(json.dumps(m, ensure_ascii=False) for m in messages) + "\n", encoding="utf-8")
    status, lines, err = _run(capsys, "douyin", "--explain", str(lines_file))
    assert status == 0, err
    assert err == [f"livefleet parse: {lines_file}: kind push: decoded webcast push message(s): method "
                   "(or common.method) names a Webcast*Message"]  # fmt: skip
    assert [line["type"] for line in lines] == ["room_snapshot"] * 3 + ["product"] + ["product_event"] * 2
    assert {line["event"] for line in lines if line["type"] == "product_event"} == {"explained", "sold_out"}
    snapshots = {line["room_id"]: line for line in lines if line["type"] == "room_snapshot"}
    assert snapshots["7388523424571869991"]["viewers_now"] == 2252


def test_one_push_message_and_a_relay_envelope(capsys) -> None:
    (stats,) = (PUSH / "room_stats_2024-07-06" / "inputs").iterdir()
    (relay,) = (PUSH / "relay_chat_messages_2021-09-05" / "inputs").iterdir()
    status, lines, err = _run(capsys, "douyin", str(stats), str(relay))
    assert status == 0, err
    assert [line["type"] for line in lines] == ["room_snapshot"]
