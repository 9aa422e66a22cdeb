"""One Kuaishou person, seen through four payload kinds under three of their names (eid principalId,
a kwaiId set later, the bare user id), lands as ONE streamer document and ONE room document in
the real store (the identity rule of spiders/kuaishou/records.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spiders.kuaishou import pages
from tests.fixture_cases import FIXTURES
from tests.plugins.store import run_store, store_pipeline

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LIVE = "https://live.kuaishou.com"
UID, EID, KWAI_ID = "932369500", "3x59tkbj2kecvgi", "zixia520"
#: The real follow-living list (2021-07): user{principalId = eid 3x59tkbj2kecvgi, user_id 932369500}.
FOLLOW = FIXTURES / "kuaishou/follow_living/myfollow_living_2021/inputs"
AUTHOR = {  # web author/userInfo, as docs/kuaishou_formats.md lists its keys
    "id": EID, "name": "紫霞", "description": "每晚八点", "avatar": "https://p2.a.yximgs.com/a.jpg", "living": True,
    "originUserId": int(UID), "counts": {"fan": "1.2万", "follow": "830", "photo": 387},
}  # fmt: skip


def _page(author: dict) -> bytes:
    item = {"liveStream": {"id": "4SLhBtIwqZ4", "caption": "等你来", "type": "live"}, "author": author,
            "gameInfo": {"name": "和平精英", "watchingCount": "2.7万"}, "isLiving": True}  # fmt: skip
    state = json.dumps({"liveroom": {"playList": [item]}}, ensure_ascii=False)
    return f"<html><script>window.__INITIAL_STATE__={state};(function(){{var s;}})()</script></html>".encode()


def _observations() -> list:
    follow = next(Path(FOLLOW).iterdir()).read_bytes()
    userinfo = json.dumps({"data": {"result": 1, "userInfo": AUTHOR}}).encode()
    # Later the user sets a kwaiId: the room URL (principalId) changes, the user id does not.
    app_profile = {"result": 1, "userProfile": {
        "ownerCount": {"fan": 12345, "follow": 831, "photo": 388},
        "profile": {"user_id": int(UID), "user_name": "紫霞✨", "kwaiId": KWAI_ID, "headurl": "https://p2/b.jpg"}}}
    payloads = [
        (follow, None, "follow_living", T0),
        (userinfo, f"{LIVE}/live_api/baseuser/userinfo/byid?principalId={EID}", None, T0 + timedelta(minutes=1)),
        (_page({**AUTHOR, "id": KWAI_ID}), f"{LIVE}/u/{KWAI_ID}", None, T0 + timedelta(minutes=2)),
        (json.dumps(app_profile).encode(), None, "profile", T0 + timedelta(minutes=3)),
        # A list names them by principalId only: a lead, never a second document.
        (json.dumps({"data": {"list": [{"id": "x", "living": True, "author": {"id": KWAI_ID, "name": "紫霞"}}]}})
         .encode(), f"{LIVE}/live_api/gameboard/list?gameId=1000", None, T0 + timedelta(minutes=4)),
    ]
    records = []
    for body, url, kind, at in payloads:
        records += pages.parse(body, url=url, fetched_at=at, kind=kind)
    return records


def test_one_person_through_four_payload_kinds_is_one_streamer(tmp_path, mongo_server, mongo_db):
    records = _observations()
    assert {r.kind for r in records} == {"streamer", "room", "room_snapshot", "lead"}
    stored = [r for r in records if r.collection]  # as the spider yields them: leads only steer the crawl
    pipeline = store_pipeline(tmp_path, "kuaishou", LIVEFLEET_MONGO_URI=mongo_server.url,
                              LIVEFLEET_MONGO_DB=mongo_db.name, LIVEFLEET_STORE_FLUSH_SECONDS=0.05)
    assert not [r for r in run_store(pipeline, stored) if isinstance(r, Exception)]
    (streamer,) = mongo_db.streamers.find({"platform": "kuaishou"})
    assert (streamer["streamer_id"], streamer["sec_id"], streamer["handle"]) == (UID, EID, KWAI_ID)
    assert (streamer["nickname"], streamer["followers"], streamer["room_id"]) == ("紫霞✨", 12345, UID)
    assert streamer["first_seen_at"].replace(tzinfo=UTC) == T0
    assert streamer["last_seen_at"].replace(tzinfo=UTC) == T0 + timedelta(minutes=3)
    (room,) = mongo_db.rooms.find({"platform": "kuaishou"})
    assert (room["room_id"], room["streamer_id"], room["web_rid"]) == (UID, UID, KWAI_ID)  # the newest URL
    assert (room["status"], room["peak_viewers"]) == ("live", 27000)
    assert {s["room_id"] for s in mongo_db.room_snapshots.find({})} == {UID}
    assert mongo_db.room_snapshots.count_documents({}) == 2
