"""Watchlists in a real Redis (``crawlers.watch.lists``) and ``livefleet watch`` run as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from crawlers.alerts.robots import EVENTS
from crawlers.cli.main import main
from crawlers.redis.keys import FleetKeys
from crawlers.watch import lists, subscribing
from settings.config import child_environment

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SEC_UID = "MS4wLjABAAAA" + "x" * 43


@pytest.fixture
def prefix() -> str:
    return f"watch{uuid.uuid4().hex[:8]}"


def _keys(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.keys(f"{prefix}:*"))


def _stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    return client.info("commandstats")


def _calls(before: dict, after: dict, command: str, what: str = "calls") -> float:
    name = f"cmdstat_{command}"
    return after.get(name, {}).get(what, 0) - before.get(name, {}).get(what, 0)


# -- the store ---------------------------------------------------------------------------------------------------


def test_an_import_with_bad_lines_writes_nothing_and_names_them(redis_client, prefix):
    lines = ["# rooms", "https://live.bilibili.com/5440 tier=hot", "not a room", "21452505 window=19:00-24:00",
             "21452506 tier=scorching", "https://space.bilibili.com/12345", "21452507 window=19:00-19:00"]
    with pytest.raises(lists.ImportRefused) as refused:
        lists.import_file(redis_client, prefix, "rooms", lines, source_name="rooms.txt", platform="bilibili")
    assert [n for n, _ in refused.value.refusals] == [3, 5, 7]
    assert "line 3: refused bilibili ID 'not'" in str(refused.value)
    assert "line 5: unknown tier 'scorching'" in str(refused.value) and "line 7: empty window" in str(refused.value)
    assert _keys(redis_client, prefix) == []  # not even the list

    # Into an existing list: nothing is added to it either, and its version does not move.
    lists.create_list(redis_client, prefix, "rooms", "bilibili")
    before = lists.version(redis_client, prefix)
    with pytest.raises(lists.ImportRefused):
        lists.import_file(redis_client, prefix, "rooms", lines, source_name="rooms.txt")
    assert lists.entries(redis_client, prefix, "rooms") == [] and lists.version(redis_client, prefix) == before


def test_ten_thousand_lines_in_one_transaction(redis_client, prefix):
    lists.create_list(redis_client, prefix, "big", "bilibili", tier="tail")
    lines = ["target,tier,window"] + [
        f"https://live.bilibili.com/{100000 + i},{'hot' if i % 10 == 0 else ''},{'19:00-24:00' if i % 2 else ''}"
        for i in range(10_000)] + ["https://live.bilibili.com/100000", "# the end"]
    version = lists.version(redis_client, prefix)
    before = _stats(redis_client)
    result = lists.import_file(redis_client, prefix, "big", lines, source_name="big.csv")
    after = _stats(redis_client)
    assert (result.entries, result.new, result.updated, result.duplicates) == (10_000, 10_000, 0, 1)
    assert result.version == version + 1 == lists.version(redis_client, prefix)  # one change
    assert lists.version(redis_client, prefix, "bilibili") == 2 and lists.version(redis_client, prefix, "douyin") == 0
    # One MULTI/EXEC holding one HSET of every entry, and little Redis time for it.
    assert _calls(before, after, "multi") == 1 and _calls(before, after, "exec") == 1
    assert _calls(before, after, "hset") == 1
    assert _calls(before, after, "hset", "usec") < 300_000
    (big,) = lists.list_lists(redis_client, prefix)
    assert big.size == 10_000 and big.counts == {"hot": 1000, "normal": 0, "tail": 9000}
    held = {e.key: e for e in lists.entries(redis_client, prefix, "big")}
    first = held["bilibili:room:100000"]
    assert first.tier == "hot" and first.windows is None and first.source == "import:big.csv:10002"
    assert held["bilibili:room:100001"].windows == "19:00-24:00@Asia/Shanghai"
    assert held["bilibili:room:100001"].source == "import:big.csv:3"


def test_re_adding_a_target_changes_its_tier_and_keeps_the_rest(redis_client, prefix):
    added = lists.add_entries(redis_client, prefix, "beauty", ["https://live.douyin.com/604946797621"],
                              windows="19:00-24:00", platform="douyin")
    assert added.created and added.new == 1
    (entry,) = lists.entries(redis_client, prefix, "beauty")
    assert (entry.key, entry.tier, entry.every_s, entry.windows) == (
        "douyin:room:604946797621", "normal", 60.0, "19:00-24:00@Asia/Shanghai")
    assert entry.target == {"platform": "douyin", "kind": "room", "id": "604946797621",
                            "url": "https://live.douyin.com/604946797621"}
    again = lists.add_entries(redis_client, prefix, "beauty", ["604946797621"], tier="hot")  # the same room, by ID
    assert (again.new, again.updated, again.created) == (0, 1, False)
    (changed,) = lists.entries(redis_client, prefix, "beauty")
    assert (changed.tier, changed.every_s, changed.windows) == ("hot", 30.0, "19:00-24:00@Asia/Shanghai")
    assert changed.added_at == entry.added_at and changed.updated_at >= entry.updated_at
    lists.add_entries(redis_client, prefix, "beauty", ["604946797621"], windows="always")
    (cleared,) = lists.entries(redis_client, prefix, "beauty")
    assert (cleared.tier, cleared.windows) == ("hot", None)

    # A refused target adds nothing, nor does a target of another platform.
    with pytest.raises(ValueError, match="1 target\\(s\\) refused, nothing added"):
        lists.add_entries(redis_client, prefix, "beauty", ["700000000001", "https://v.douyin.com/x/"])
    with pytest.raises(ValueError, match="is a douyin list, not bilibili"):
        lists.add_entries(redis_client, prefix, "beauty", ["5440"], platform="bilibili")
    assert len(lists.entries(redis_client, prefix, "beauty")) == 1

    removed, missing = lists.remove_entries(redis_client, prefix, "beauty",
                                            ["https://live.douyin.com/604946797621", "700000000009"])
    assert removed == ["douyin:room:604946797621"] and missing == ["douyin:room:700000000009"]
    assert lists.entries(redis_client, prefix, "beauty") == []


def test_watched_merges_lists_and_skips_stopped_ones(redis_client, prefix):
    lists.create_list(redis_client, prefix, "beauty", "douyin", tier="tail", windows="19:00-23:00")
    lists.create_list(redis_client, prefix, "food", "douyin", notify_only=True)
    lists.create_list(redis_client, prefix, "games", "bilibili")
    lists.add_entries(redis_client, prefix, "beauty", ["604946797621", SEC_UID])
    lists.add_entries(redis_client, prefix, "food", ["https://live.douyin.com/604946797621", "700000000001"],
                      tier="hot", windows="22:00-02:00")
    lists.add_entries(redis_client, prefix, "games", ["5440"])

    start = lists.version(redis_client, prefix, "douyin")
    merged = {e.key: e for e in lists.watched(redis_client, prefix, "douyin")}
    assert sorted(merged) == ["douyin:room:604946797621", "douyin:room:700000000001", f"douyin:streamer:{SEC_UID}"]
    both = merged["douyin:room:604946797621"]
    assert both.lists == ("beauty", "food") and both.tier == "hot" and both.every_s == 30.0
    assert both.windows == "19:00-02:00@Asia/Shanghai" and not both.notify_only  # beauty stores snapshots
    shanghai = ZoneInfo("Asia/Shanghai")
    assert both.in_window(datetime(2026, 6, 1, 20, 0, tzinfo=shanghai))
    assert not both.in_window(datetime(2026, 6, 1, 3, 0, tzinfo=shanghai))
    assert merged["douyin:room:700000000001"].notify_only and merged["douyin:room:700000000001"].lists == ("food",)
    assert merged[f"douyin:streamer:{SEC_UID}"].tier == "tail"  # the list's default
    assert [e.key for e in lists.watched(redis_client, prefix, "bilibili")] == ["bilibili:room:5440"]

    stopped = lists.stop_list(redis_client, prefix, "food")
    assert stopped.state == "stopped" and stopped.size == 2  # entries kept
    assert lists.version(redis_client, prefix, "douyin") == start + 1  # a worker sees the change
    merged = {e.key: e for e in lists.watched(redis_client, prefix, "douyin")}
    assert sorted(merged) == ["douyin:room:604946797621", f"douyin:streamer:{SEC_UID}"]
    assert merged["douyin:room:604946797621"].tier == "tail" and merged["douyin:room:604946797621"].lists == (
        "beauty",)
    lists.start_list(redis_client, prefix, "food")
    assert len(lists.watched(redis_client, prefix, "douyin")) == 3

    assert lists.delete_list(redis_client, prefix, "food") and not lists.delete_list(redis_client, prefix, "food")
    keys = FleetKeys(prefix)
    assert not redis_client.exists(keys.watch_entries("food")) and lists.get_list(redis_client, prefix, "food") is None
    assert [w.name for w in lists.list_lists(redis_client, prefix)] == ["beauty", "games"]


def test_concurrent_writers_lose_nothing(redis_client, prefix):
    lists.create_list(redis_client, prefix, "busy", "bilibili")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        client = redis.Redis(connection_pool=redis_client.connection_pool)
        try:
            for batch in range(5):
                lists.add_entries(client, prefix, "busy", [str(10_000 + n * 100 + batch * 10 + i) for i in range(10)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(lists.entries(redis_client, prefix, "busy")) == 400
    assert lists.version(redis_client, prefix) == 1 + 40


def test_names_and_platforms_are_checked(redis_client, prefix):
    for bad in ("", "Beauty", "-x", "a:b", "x" * 65, "日本"):
        with pytest.raises(ValueError, match="not a watchlist name"):
            lists.create_list(redis_client, prefix, bad, "douyin")
    with pytest.raises(ValueError, match="unknown platform 'tiktok'"):
        lists.create_list(redis_client, prefix, "x", "tiktok")
    lists.create_list(redis_client, prefix, "x", "douyin")
    with pytest.raises(ValueError, match="watchlist 'x' exists"):
        lists.create_list(redis_client, prefix, "x", "douyin")
    assert lists.create_list(redis_client, prefix, "x", "douyin", exist_ok=True).name == "x"
    with pytest.raises(ValueError, match="no watchlist 'nope': give --platform"):
        lists.add_entries(redis_client, prefix, "nope", ["5440"])
    with pytest.raises(ValueError, match="no watchlist 'nope'"):
        lists.stop_list(redis_client, prefix, "nope")


def test_subscribers_keep_their_secrets_out_of_every_listing(redis_client, prefix):
    lists.create_list(redis_client, prefix, "beauty", "douyin")
    ding = subscribing.add_subscriber(redis_client, prefix, "beauty", "dingtalk",
                                      "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-d1ng",
                                      secret="SEC-s3cr3t", events="stream_started,price_cut", price_cut_pct=10,
                                      allow="")
    wecom = subscribing.add_subscriber(redis_client, prefix, "beauty", "wecom",
                                       "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY-w3c0m",
                                       viewers_thresholds=[5000, 1000], allow="")
    found = {s.id: s for s in subscribing.subscribers(redis_client, prefix, "beauty")}
    assert found[ding].secret == "SEC-s3cr3t"  # kept for the sender
    assert found[ding].events == ("stream_started", "price_cut") and found[ding].price_cut_pct == 10.0
    assert found[wecom].viewers_thresholds == (1000, 5000) and found[wecom].events == EVENTS
    shown = json.dumps([s.public() for s in found.values()]) + repr(list(found.values()))
    shown += json.dumps(lists.get_list(redis_client, prefix, "beauty").as_dict())
    for secret in ("SEC-s3cr3t", "TOKEN-d1ng", "KEY-w3c0m"):
        assert secret not in shown
    assert "access_token=***" in shown and "key=***" in shown
    assert lists.get_list(redis_client, prefix, "beauty").subscribers == 2

    # The same URL again replaces the subscriber; removing it by id.
    assert subscribing.add_subscriber(redis_client, prefix, "beauty", "dingtalk",
                                      "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-d1ng", allow="") == ding
    assert subscribing.remove_subscriber(redis_client, prefix, "beauty", ding)
    assert not subscribing.remove_subscriber(redis_client, prefix, "beauty", ding)
    assert [s.id for s in subscribing.subscribers(redis_client, prefix, "beauty")] == [wecom]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "slack", "url": "https://hooks.example.com/x"}, "unknown alert kind 'slack'"),
    ({"kind": "dingtalk", "url": "http://127.0.0.1:9/hook"}, "loopback address"),
    ({"kind": "dingtalk", "url": "http://169.254.169.254/latest"}, "link-local address"),
    ({"kind": "dingtalk", "url": "ftp://hooks.example.com/x"}, "must be http:// or https://"),
    ({"kind": "webhook", "url": "https://hooks.example.com/x"}, "give it a secret"),
    ({"kind": "feishu", "url": "https://open.feishu.cn/hook/x", "events": "stream_started,bogus"},
     "unknown event\\(s\\) bogus"),
    ({"kind": "feishu", "url": "https://open.feishu.cn/hook/x", "price_cut_pct": 120}, "below 100"),
    ({"kind": "feishu", "url": "https://open.feishu.cn/hook/x", "price_cut_pct": float("nan")}, "below 100"),
    ({"kind": "feishu", "url": "https://open.feishu.cn/hook/x", "events": "stream_started", "price_cut_pct": 5},
     "does not take"),
    ({"kind": "feishu", "url": "https://open.feishu.cn/hook/x", "viewers_thresholds": "1000,lots"},
     "positive whole number"),
])
def test_refused_subscribers(redis_client, prefix, kwargs, message):
    lists.create_list(redis_client, prefix, "beauty", "douyin")
    with pytest.raises(ValueError, match=message):
        subscribing.add_subscriber(redis_client, prefix, "beauty", allow="", **kwargs)
    assert subscribing.subscribers(redis_client, prefix, "beauty") == []


def test_an_allowed_internal_receiver(redis_client, prefix):
    lists.create_list(redis_client, prefix, "beauty", "douyin")
    sub_id = subscribing.add_subscriber(redis_client, prefix, "beauty", "webhook", "http://127.0.0.1:8765/in",
                                        secret="s", allow="127.0.0.1:8765")
    assert [s.id for s in subscribing.subscribers(redis_client, prefix, "beauty")] == [sub_id]


# -- the command -------------------------------------------------------------------------------------------------


@pytest.fixture
def env(redis_server, redis_client, prefix, tmp_path) -> dict[str, str]:
    environment = child_environment(REDIS_URL=redis_server.url, LIVEFLEET_KEY_PREFIX=prefix,
                                    LIVEFLEET_VAR_DIR=str(tmp_path / "var"))
    for name in ("LIVEFLEET_WEBHOOK_ALLOW", "LIVEFLEET_WEBHOOK_SECRET", "MONGO_URI"):
        environment.pop(name, None)
    return environment


def livefleet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``livefleet watch ARGS`` as its own process (a new process each time: nothing held in memory)."""
    return subprocess.run([sys.executable, "-m", "crawlers", "watch", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_command_keeps_lists_across_processes(env, redis_client, prefix, tmp_path):
    added = livefleet(env, "add", "beauty", "--platform", "douyin", "https://live.douyin.com/604946797621",
                      SEC_UID, "--tier", "hot", "--window", "19:00-24:00")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "watchlist beauty: 2 added, 0 updated; list created\n"

    file = tmp_path / "more.txt"
    file.write_text("# more rooms\n700000000001 tier=tail\n700000000002,window=22:00-02:00\n700000000001\n"
                    "https://live.douyin.com/604946797621 tier=normal\n", encoding="utf-8")
    imported = livefleet(env, "import", "beauty", str(file))
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines()[0] == "imported 3 entries (1 duplicates)"

    bad = tmp_path / "bad.txt"
    bad.write_text("700000000003\nhttps://v.douyin.com/iRNBho6u/\n700000000004 tier=warm\n", encoding="utf-8")
    refused = livefleet(env, "import", "beauty", "--platform", "douyin", str(bad))
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.splitlines()[0].startswith("line 2: refused douyin short link")
    assert refused.stderr.splitlines()[1].startswith("line 3: unknown tier 'warm'")
    assert "2 of 3 lines refused, nothing imported" in refused.stderr

    # A new process sees what the others wrote.
    listed = livefleet(env, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (beauty,) = json.loads(listed.stdout)
    assert beauty["name"] == "beauty" and beauty["platform"] == "douyin" and beauty["state"] == "active"
    assert beauty["counts"] == {"hot": 2, "normal": 1, "tail": 1} and beauty["entries"] == 4
    shown = livefleet(env, "list", "beauty", "--json")
    entries = {e["key"]: e for e in json.loads(shown.stdout)["entries"]}
    assert entries["douyin:room:604946797621"]["tier"] == "normal"  # re-tiered by the import
    assert entries["douyin:room:700000000001"]["tier"] == "tail"
    assert entries["douyin:room:700000000002"]["windows"] == "22:00-02:00@Asia/Shanghai"
    assert entries["douyin:room:700000000002"]["tier"] == "hot"  # the list's default, from the first add
    table = livefleet(env, "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "PLATFORM", "STATE", "ENTRIES", "HOT", "NORMAL", "TAIL", "TIER", "WINDOWS",
                                "ALERTS", "NOTIFY-ONLY"]
    assert table[1].split() == ["beauty", "douyin", "active", "4", "2", "1", "1", "hot", "19:00-24:00@Asia/Shanghai",
                                "0"]

    assert livefleet(env, "remove", "beauty", "700000000001").stdout == "watchlist beauty: removed 1 entries\n"
    assert livefleet(env, "stop", "beauty").stdout == "watchlist beauty: stopped (3 entries)\n"
    assert lists.watched(redis_client, prefix, "douyin") == []
    assert json.loads(livefleet(env, "list", "--json").stdout)[0]["state"] == "stopped"
    assert livefleet(env, "start", "beauty").returncode == 0
    assert len(lists.watched(redis_client, prefix, "douyin")) == 3
    assert livefleet(env, "delete", "beauty").stdout == "watchlist beauty: deleted\n"
    gone = livefleet(env, "delete", "beauty")
    assert gone.returncode == 2 and gone.stderr == "livefleet watch: no watchlist 'beauty' (see livefleet watch list)\n"
    assert livefleet(env, "list").stdout == "no watchlists\n"


def test_alert_commands_never_print_secrets(env):
    assert livefleet(env, "add", "beauty", "--platform", "douyin", "604946797621").returncode == 0
    url = "https://oapi.dingtalk.com/robot/send?access_token=TOKEN-d1ng"
    added = livefleet(env, "alert", "add", "beauty", "--kind", "dingtalk", "--url", url, "--secret", "SEC-s3cr3t",
                      "--events", "stream_started,price_cut,viewers_crossed", "--price-cut-pct", "10",
                      "--viewers", "1000,5000")
    assert added.returncode == 0, added.stderr
    sub_id = added.stdout.split()[1]
    outputs = [added.stdout + added.stderr]
    for args in (("alert", "list", "beauty"), ("alert", "list", "beauty", "--json"), ("list",), ("list", "--json"),
                 ("list", "beauty"), ("list", "beauty", "--json")):
        done = livefleet(env, *args)
        assert done.returncode == 0, (args, done.stderr)
        outputs.append(done.stdout + done.stderr)
    for out in outputs:
        assert "SEC-s3cr3t" not in out and "TOKEN-d1ng" not in out
    (subscriber,) = json.loads(outputs[2])
    assert subscriber["url"] == "https://oapi.dingtalk.com/robot/send?access_token=***" and subscriber["signed"]
    assert subscriber["events"] == ["stream_started", "price_cut", "viewers_crossed"]
    assert subscriber["price_cut_pct"] == 10 and subscriber["viewers_thresholds"] == [1000, 5000]
    assert sub_id in outputs[1] and "access_token=***" in outputs[1]

    loopback = livefleet(env, "alert", "add", "beauty", "--kind", "feishu", "--url", "http://127.0.0.1:9/hook")
    assert loopback.returncode == 2 and "loopback address" in loopback.stderr and len(loopback.stderr.splitlines()) == 1
    no_secret = livefleet(env, "alert", "add", "beauty", "--kind", "webhook", "--url", "https://hooks.example.com/x")
    assert no_secret.returncode == 2 and "LIVEFLEET_WEBHOOK_SECRET" in no_secret.stderr
    assert livefleet(env, "alert", "remove", "beauty", sub_id).stdout == f"subscriber {sub_id} of beauty: removed\n"
    assert livefleet(env, "alert", "list", "beauty").stdout == "no alert subscribers\n"


@pytest.mark.parametrize(("args", "message"), [
    (["add", "x", "--platform", "douyin", "https://v.douyin.com/iRNBho6u/"], "short link"),
    (["add", "x", "--platform", "douyin", "604946797621", "--window", "25:00-26:00"], "not a time of day"),
    (["add", "x", "--platform", "douyin", "604946797621", "--window", "19:00-24:00", "--tz", "Mars/Base"],
     "unknown time zone 'Mars/Base'"),
    (["add", "x", "604946797621"], "no watchlist 'x': give --platform to create it"),
    (["add", "Bad:Name", "--platform", "douyin", "604946797621"], "not a watchlist name"),
    (["import", "x", "--platform", "douyin", "/nonexistent/file.txt"], "cannot read /nonexistent/file.txt"),
    (["stop", "x"], "no watchlist 'x'"),
    (["list", "x"], "no watchlist 'x'"),
    (["remove", "x", "604946797621"], "no watchlist 'x'"),
])
def test_refused_commands_are_one_line_and_store_nothing(env, redis_client, prefix, monkeypatch, capsys, args,
                                                          message):
    for name, value in env.items():
        if name in ("REDIS_URL", "LIVEFLEET_KEY_PREFIX", "LIVEFLEET_VAR_DIR"):
            monkeypatch.setenv(name, value)
    assert main(["watch", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and err.startswith("livefleet watch: ")
    assert _keys(redis_client, prefix) == []
