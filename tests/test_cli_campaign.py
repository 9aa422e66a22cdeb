"""``livefleet campaign validate|run|runs``: refusals that enqueue nothing, and a real run with a real worker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from crawlers.cli.main import main

ROOT = Path(__file__).resolve().parents[1]

TINY = """\
name: tiny
depth: rooms
max_pages: 1
platforms:
  bilibili:
    areas: ["2"]
"""


@pytest.fixture
def env(monkeypatch, tmp_path, redis_server, redis_client, mongo_server, sandbox):
    prefix, db_name = f"cc{uuid.uuid4().hex[:6]}", f"cli_campaign_{uuid.uuid4().hex[:6]}"
    for name, value in {"REDIS_URL": redis_server.url, "MONGO_URI": mongo_server.url,
                        "LIVEFLEET_VAR_DIR": str(tmp_path), "LIVEFLEET_KEY_PREFIX": prefix,
                        "LIVEFLEET_MONGO_DB": db_name, "LIVEFLEET_SANDBOX_URL": sandbox.url,
                        "LIVEFLEET_RATE_BILIBILI": "0", "LIVEFLEET_HEARTBEAT_SECONDS": "1"}.items():
        monkeypatch.setenv(name, value)
    client: MongoClient = MongoClient(mongo_server.url)
    try:
        yield {"redis": redis_client, "db": client[db_name], "prefix": prefix, "tmp": tmp_path}
    finally:
        client.drop_database(db_name)
        client.close()


def _queued_seeds(env) -> int:
    return sum(env["redis"].llen(f"{env['prefix']}:{s}:seeds") for s in ("bilibili", "douyin", "kuaishou", "taobao"))


def test_validate_the_shipped_folder(capsys):
    assert main(["campaign", "validate", str(ROOT / "settings" / "campaigns")]) == 0
    out = capsys.readouterr().out
    assert "ok   " in out and "example.yaml: example, '30 9,21 * * *' (Asia/Shanghai)" in out
    assert "note: bilibili: depth products is out of its spider's reach; it goes to streamers" in out


def test_validate_names_file_line_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace('areas: ["2"]', 'areas: ["2"]\n    keywords: [口红]'))
    assert main(["campaign", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"bad  {bad}:7: platforms.bilibili.keywords: bilibili has no keyword search" in out


@pytest.mark.integration
def test_a_bad_file_is_refused_and_enqueues_nothing(env, capsys):
    bad = env["tmp"] / "bad.yaml"
    bad.write_text(TINY.replace("depth: rooms", "depth: rooms\nschedule: {cron: '0 * * * *', timezone: Nowhere}")
                   .replace('areas: ["2"]', 'areas: ["2"]\n    rooms: ["https://live.bilibili.com.evil.cn/1"]'))
    assert main(["campaign", "run", str(bad), "--no-wait"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: schedule.timezone: unknown time zone 'Nowhere'" in err
    assert f"{bad}:8: platforms.bilibili.rooms[0]: " in err
    assert _queued_seeds(env) == 0
    assert env["db"]["campaign_runs"].count_documents({}) == 0


@pytest.mark.integration
def test_run_without_a_worker_warns_and_leaves_the_seeds_waiting(env, capsys):
    path = env["tmp"] / "tiny.yaml"
    path.write_text(TINY)
    assert main(["campaign", "run", str(path), "--no-wait"]) == 0
    captured = capsys.readouterr()
    assert "warning: no live worker for bilibili" in captured.err
    run_id = captured.out.split()[1]
    seeds = [json.loads(s) for s in env["redis"].lrange(f"{env['prefix']}:bilibili:seeds", 0, -1)]
    assert seeds == [{"kind": "area", "parent_area_id": 2, "area_id": 0, "max_pages": 1, "follow": ["rooms"],
                      "crawl": run_id, "priority": 0}]
    document = env["db"]["campaign_runs"].find_one({"_id": run_id})
    assert document["status"] == "running" and document["trigger"] == "manual" and document["firing"] is None


@pytest.mark.integration
def test_run_with_a_local_worker_is_recorded_done_with_its_counts(env, capsys):
    path = env["tmp"] / "tiny.yaml"
    path.write_text(TINY)
    assert main(["campaign", "run", str(path), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    run_id = out.split()[1]
    document = env["db"]["campaign_runs"].find_one({"_id": run_id})
    assert document["status"] == "done", (document, (env["tmp"] / "log").iterdir())
    assert document["ended_at"] > document["started_at"]
    # One area list page, then each listed room's own page.
    listed = document["counts"]["items"]["rooms"]
    assert document["counts"]["pages"] >= 2 and listed >= 1
    stored = env["db"]["rooms"].count_documents({"platform": "bilibili"})
    assert stored >= 1 and document["counts"]["items"]["room_snapshots"] >= stored
    assert json.loads(out.strip().splitlines()[-1])["_id"] == run_id  # the run document, last
    assert _queued_seeds(env) == 0
    assert main(["campaign", "runs", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["_id"] for r in runs] == [run_id] and runs[0]["status"] == "done"
    assert main(["campaign", "runs"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["run", "status", "started", "ended", "pages", "items", "dead", "errors"]
    assert table[1].startswith(run_id) and " done " in table[1]


@pytest.mark.integration
def test_scheduler_once_runs_what_is_due_and_records_its_end(env, caplog):
    folder = env["tmp"] / "campaigns"
    folder.mkdir()
    (folder / "minutely.yaml").write_text(TINY.replace("depth: rooms", "depth: rooms\n"
                                                       "schedule: {cron: '* * * * *', timezone: UTC}\n"
                                                       "caps: {duration: 1s}"))
    (folder / "broken.yaml").write_text("name: broken\nplatforms: {}\n")
    with caplog.at_level("INFO"):
        assert main(["scheduler", "--dir", str(folder), "--once"]) == 0
    assert "broken.yaml:2: platforms: no platform" in caplog.text
    # First sight of the campaign: this minute's firing came before the fleet knew it.
    assert env["db"]["campaign_runs"].count_documents({}) == 0
    env["redis"].set(f"{env['prefix']}:campaign:tiny:since", 0)  # as if known since long ago
    with caplog.at_level("INFO"):
        assert main(["scheduler", "--dir", str(folder), "--once"]) == 0
    (document,) = env["db"]["campaign_runs"].find({})
    assert document["trigger"] == "schedule" and document["firing"].second == 0
    assert document["status"] == "capped_duration" and document["ended_at"] is not None  # no worker: the cap
