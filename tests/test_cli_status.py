"""``livefleet status [--json]``: reads the fleet's Redis, starts nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawlers.cli.main import main
from crawlers.health.heartbeat import server_time
from crawlers.redis.keys import FleetKeys, SpiderKeys
from settings.config import child_environment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fleet(redis_client):
    """A little fleet state under prefix ``clistatus``: a queue, a lease, a dead letter, a live worker."""
    keys, workers = SpiderKeys("clistatus", "kuaishou"), FleetKeys("clistatus")
    redis_client.zadd(keys.requests, {"a": -2 * 2**32 + 1, "b": -2 * 2**32 + 2, "c": 3})
    redis_client.zadd(keys.leases, {"1": int(server_time(redis_client) * 1000) + 60_000})
    redis_client.rpush(keys.dead, json.dumps({"error": "boom", "attempts": 3}))
    redis_client.hset(keys.stats, mapping={"item_scraped_count": 12, "livefleet/spider/pages/kuaishou/room": 9,
                                           "livefleet/spider/blocked/kuaishou": 1})
    now = server_time(redis_client)
    beat = {"worker": "h:7:kuaishou", "host": "h", "pid": 7, "spider": "kuaishou", "interval": 5.0, "leases": 1,
            "prefetched": 0, "counters": {"items": 12, "pages": 9, "blocked": 1, "errors": 0}, "beat_at": now}
    redis_client.set(workers.worker("h:7:kuaishou"), json.dumps(beat), ex=15)
    redis_client.zadd(workers.workers, {"h:7:kuaishou": now})
    return redis_client


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MONGO_URI", raising=False)
    monkeypatch.setenv("LIVEFLEET_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("LIVEFLEET_KEY_PREFIX", "clistatus")
    return tmp_path


@pytest.mark.integration
def test_text(env, monkeypatch, redis_server, fleet, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"Redis {redis_server.url} (REDIS_URL)" in out.splitlines()[0]
    assert "workers: 1 live, 0 stale" in out
    assert next(line for line in out.splitlines() if "h:7:kuaishou" in line).split()[:3] == [
        "h:7:kuaishou", "kuaishou", "live"]
    row = next(line for line in out.splitlines() if line.strip().startswith("kuaishou ")).split()
    assert row[:8] == ["kuaishou", "3", "2:2", "0:1", "1", "0", "1", "0"]  # queued, priorities, leased, ...
    assert row[-2:] == ["10.0%", "0.0%"]


@pytest.mark.integration
def test_json_is_one_document(env, monkeypatch, redis_server, fleet, capsys):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["status", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)  # the whole output parses as one document
    assert document["redis"] == redis_server.url and document["prefix"] == "clistatus"
    kuaishou = document["platforms"]["kuaishou"]
    assert kuaishou["queue"]["by_priority"] == [{"priority": 2, "requests": 2}, {"priority": 0, "requests": 1}]
    assert (kuaishou["leased"], kuaishou["dead_letters"], kuaishou["block_rate"]) == (1, 1, 0.1)
    assert [(w["worker"], w["state"]) for w in document["workers"]] == [("h:7:kuaishou", "live")]
    assert document["fleet"]["queued"] == 3


@pytest.mark.integration
def test_uses_the_running_embedded_redis(env, redis_server, fleet, capsys):
    run = env / "run"
    run.mkdir()
    (run / "redis.json").write_text(json.dumps({"url": redis_server.url, "pid": redis_server.pid,
                                                "data_dir": str(env / "data" / "redis")}))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"(embedded, pid {redis_server.pid})" in out.splitlines()[0]
    assert "workers: 1 live" in out


@pytest.mark.parametrize("as_json", [False, True])
def test_without_redis_it_says_so_and_starts_nothing(env, as_json, capsys):
    run = env / "run"
    run.mkdir()  # a record left by an embedded Redis that has exited
    (run / "redis.json").write_text(json.dumps({"url": "redis://127.0.0.1:1/0", "pid": 2**22 + 12345,
                                                "data_dir": str(env / "data" / "redis")}))
    assert main(["status"] + (["--json"] if as_json else [])) == 3  # a service unreachable
    captured = capsys.readouterr()
    if as_json:
        assert json.loads(captured.out)["error"].startswith("no Redis is running")
    else:
        assert captured.out == ""
    assert captured.err.startswith("livefleet status: no Redis is running") and len(captured.err.splitlines()) == 1
    assert sorted(p.name for p in env.iterdir()) == ["run"]  # no data, no log: nothing was started
    assert json.loads((run / "redis.json").read_text())["pid"] == 2**22 + 12345


def test_unreachable_redis_url(env, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", "redis://:secret@127.0.0.1:1/0")
    assert main(["status", "--json"]) == 3
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["redis"] == "redis://:***@127.0.0.1:1/0" and "does not answer" in document["error"]
    assert "secret" not in document["error"] and "secret" not in captured.err


@pytest.mark.integration
def test_python_dash_m_prints_only_the_json(env, redis_server, fleet):
    environment = child_environment(REDIS_URL=redis_server.url, LIVEFLEET_VAR_DIR=str(env),
                                    LIVEFLEET_KEY_PREFIX="clistatus")
    result = subprocess.run([sys.executable, "-m", "crawlers", "status", "--json"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout)["fleet"]["workers_live"] == 1


def _status(**extra):
    fleet = {"workers_live": 0, "workers_stale": 2, "queued": 0, "leased": 0, "leases_expired": 0, "dead_letters": 0,
             "seeds": 0, "counters": {"items": 0}, "items_per_minute": 0.0, "attempts": 0, "block_rate": None,
             "error_rate": None}
    return {"prefix": "p", "at": 1_780_000_000.0, "state": {}, "workers": [], "platforms": {}, "fleet": fleet,
            "identities": [], **extra}


def test_stale_workers_are_one_summary_line_when_there_are_any():
    from crawlers.cli.output import plain
    from crawlers.cli.status import render

    text = plain(*render(_status(stale={"count": 2, "newest_seen": 1_779_999_000.0})))
    (line,) = [line for line in text.splitlines() if "heartbeat expired" in line]
    assert line.strip() == ("2 worker(s) gone without leaving: heartbeat expired; the newest was last seen at "
                            "2026-05-28 20:10:00 UTC")
    for quiet in (_status(), _status(stale={"count": 0, "newest_seen": None})):
        assert "heartbeat expired" not in plain(*render(quiet))
    unknown = plain(*render(_status(stale={"count": 1, "newest_seen": None})))
    assert "1 worker(s) gone without leaving: heartbeat expired\n" in unknown
