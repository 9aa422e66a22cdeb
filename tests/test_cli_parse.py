"""``livefleet parse`` on saved payload files: JSON lines out, one clear line per bad file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawlers.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "bilibili"
ROOT = Path(__file__).resolve().parents[1]


def _input(kind: str, case: str) -> Path:
    (path,) = (FIXTURES / kind / case / "inputs").iterdir()
    return path


def _run(capsys, *args: str) -> tuple[int, list[dict], str]:
    status = main(["parse", "--platform", "bilibili", "--fetched-at", "2024-01-01T00:00:00+00:00", *args])
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return status, lines, captured.err


def test_recognises_each_payload_by_itself_and_prints_schema_fields(capsys):
    status, lines, err = _run(capsys, str(_input("room_info", "room_1_replay")))
    assert status == 0 and err == ""
    assert [line["type"] for line in lines] == ["room", "room_snapshot", "streamer"]
    room = lines[0]
    assert room["platform"] == "bilibili" and room["room_id"] == "5440" and room["streamer_id"] == "9617619"
    assert room["status"] == "replay" and room["fetched_at"] == "2024-01-01T00:00:00Z"
    assert lines[2]["followers"] == 11919499


@pytest.mark.parametrize(("kind", "case", "types"), [
    ("user_card", "mid_2", {"streamer"}),
    ("master_info", "uid_2", {"streamer"}),
    ("room_init", "short_id_76", {"room"}),
    ("area_room_list", "entertainment_page", {"room", "room_snapshot", "streamer"}),
    ("info_by_room", "app_room_3990262_2019", {"room", "room_snapshot", "streamer"}),
])
def test_every_real_payload_kind(capsys, kind, case, types):
    status, lines, err = _run(capsys, str(_input(kind, case)))
    assert status == 0, err
    assert {line["type"] for line in lines} == types


def test_bad_files_get_one_line_each_and_a_failing_status(capsys, tmp_path):
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"hello": "world"}', encoding="utf-8")
    broken = tmp_path / "broken.json"
    broken.write_text('{"code": 0, "data": {"room_id": 1,', encoding="utf-8")
    html = tmp_path / "page.html"
    html.write_text("<html><head><title>出错啦! - bilibili.com</title></head><body>502</body></html>", "utf-8")
    blocked = tmp_path / "blocked.json"
    blocked.write_text('{"code":-412,"message":"请求被拦截","ttl":1,"data":null}', encoding="utf-8")
    good = _input("user_card", "mid_2")
    status, lines, err = _run(capsys, str(unknown), str(broken), str(good), str(html), str(blocked),
                              str(tmp_path / "missing.json"))
    assert status == 1
    assert [line["type"] for line in lines] == ["streamer"]  # the good file still printed
    messages = err.splitlines()
    assert len(messages) == 5 and "Traceback" not in err
    assert messages[0].startswith(f"livefleet parse: {unknown}: UnknownPayloadError")
    assert messages[1].startswith(f"livefleet parse: {broken}: PermanentPageError")
    assert messages[2].startswith(f"livefleet parse: {html}: ")
    assert messages[3].startswith(f"livefleet parse: {blocked}: BlockedError")
    assert messages[4] == f"livefleet parse: {tmp_path / 'missing.json'}: cannot read: No such file or directory"


def test_unknown_platform_is_a_usage_error(capsys):
    assert main(["parse", "--platform", "myspace", "x.json"]) == 2
    assert "unknown platform 'myspace'" in capsys.readouterr().err


def test_console_script_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "crawlers", "parse", "--platform", "bilibili",
                             str(_input("master_info", "uid_2"))], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["type"] == "streamer"
