"""``livefleet crawl``: seeds for every platform, pushed as JSON to the shared queue."""

from __future__ import annotations

import json

import pytest

from crawlers.cli.main import main

pytestmark = pytest.mark.integration


def _seeds(client, spider: str) -> list[dict]:
    return [json.loads(x) for x in client.lrange(f"clitest:{spider}:seeds", 0, -1)]


def test_room_and_streamer_flags_use_each_platforms_own_ids(cli_env, capsys):
    assert main(["crawl", "douyin", "--room", "604946797621", "--streamer", "MS4wLjABAAAAxyz"]) == 0
    assert _seeds(cli_env, "douyin") == [{"kind": "room", "web_rid": "604946797621"},
                                         {"kind": "streamer", "sec_uid": "MS4wLjABAAAAxyz"}]
    assert main(["crawl", "taobao", "--room", "523417747786"]) == 0
    assert _seeds(cli_env, "taobao") == [{"kind": "room", "live_id": "523417747786"}]
    assert main(["crawl", "bilibili", "--area", "2:86", "--max-pages", "3"]) == 0
    assert _seeds(cli_env, "bilibili") == [{"kind": "area", "parent_area_id": 2, "area_id": 86, "max_pages": 3,
                                            "follow": ["rooms", "streamers"]}]
    assert "pushed 1 seeds for bilibili" in capsys.readouterr().out


def test_any_seed_as_json(cli_env):
    seed = {"kind": "categories", "types": [1, 6], "max_pages": 2}
    assert main(["crawl", "kuaishou", "--seed", json.dumps(seed)]) == 0
    assert _seeds(cli_env, "kuaishou") == [seed]


@pytest.mark.parametrize(("args", "message"), [
    (["crawl", "douyin", "--areas"], "--areas/--area are Bilibili's"),
    (["crawl", "taobao", "--streamer", "1"], "takes no --room/--streamer"),
    (["crawl", "douyin", "--seed", "{not json"], "--seed is not JSON"),
    (["crawl", "douyin", "--seed", "[1]"], "must be a JSON object with a kind"),
    (["crawl", "douyin"], "nothing to crawl"),
    (["crawl", "myspace", "--room", "1"], "unknown platform"),
])
def test_bad_requests_are_refused_and_nothing_is_pushed(cli_env, capsys, args, message):
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert cli_env.keys("clitest:*") == []
