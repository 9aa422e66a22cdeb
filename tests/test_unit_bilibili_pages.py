"""Hand-written tests of the Bilibili parsers: blocks, errors, detection, robustness.

The field-by-field expectations on the real payloads are generated from the fixture
tree (test_unit_parsers.py); this file covers what a fixture cannot: envelopes the
platform sends instead of data, inputs that are not JSON, and payloads that drift.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from models.entities import Room, RoomSnapshot, Streamer
from models.errors import (
    BlockedError,
    GoneError,
    PermanentPageError,
    RetryablePageError,
    UnknownPayloadError,
)
from spiders.bilibili import pages
from spiders.bilibili.detect import KINDS, detect, kind_from_url, room_lists
from tests.fixture_cases import Case, iter_cases, run
from tests.fixture_cases import key_paths as _key_paths
from tests.fixture_cases import value_at as _at

T0 = datetime(2024, 1, 1, tzinfo=UTC)
LIVE = "https://api.live.bilibili.com"
GET_INFO_URL = f"{LIVE}/room/v1/Room/get_info?room_id=1"

CASES = iter_cases(platform="bilibili")
VALID = [case for case in CASES if not case.is_error]
BY_ID = {case.id: case for case in CASES}


def _body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _payload(case_id: str) -> dict[str, Any]:
    return json.loads(BY_ID[case_id].body)


def test_every_kind_has_a_real_fixture() -> None:
    assert {case.kind for case in VALID} == set(KINDS)
    assert set(pages.PARSERS) == set(KINDS)


# --- blocks ----------------------------------------------------------------------------------------

# The body Bilibili sends with HTTP 412 (openresty), byte for byte as documented.
BODY_412 = '{"code":-412,"message":"请求被拦截","ttl":1,"data":null}'.encode()


@pytest.mark.parametrize("url", [GET_INFO_URL, None], ids=["with-url", "bare"])
def test_412_body_is_a_block(url: str | None) -> None:
    with pytest.raises(BlockedError) as raised:
        pages.parse(BODY_412, url=url, fetched_at=T0)
    assert raised.value.code == -412
    assert "请求被拦截" in raised.value.reason
    assert raised.value.platform == "bilibili"
    assert raised.value.url == url


@pytest.mark.parametrize("code", [-412, -352, -799, -509, -401])
def test_block_codes_in_a_200_envelope(code: int) -> None:
    body = _body({"code": code, "msg": "blocked", "message": "blocked", "data": []})
    with pytest.raises(BlockedError) as raised:
        pages.parse(body, url=GET_INFO_URL, fetched_at=T0, kind="room_info")
    assert raised.value.code == code
    assert isinstance(raised.value, RetryablePageError)


def test_352_with_v_voucher_is_a_block() -> None:
    body = _body({"code": -352, "message": "-352", "ttl": 1, "data": {"v_voucher": "voucher_0b1c-uuid"}})
    with pytest.raises(BlockedError) as raised:
        pages.parse(body, url=f"{LIVE}/xlive/web-room/v1/index/getInfoByRoom?room_id=1", fetched_at=T0)
    assert raised.value.code == -352


def test_v_voucher_under_code_0_is_a_block() -> None:
    # Missing or stale WBI signature: "success" with a voucher instead of data.
    body = _body({"code": 0, "message": "0", "ttl": 1, "data": {"v_voucher": "voucher_0b1c-uuid"}})
    with pytest.raises(BlockedError, match="v_voucher") as raised:
        pages.parse(body, fetched_at=T0, kind="info_by_room")
    assert raised.value.code == 0


# --- gone and other error codes --------------------------------------------------------------------

GONE = [
    ("room_init", {"code": 60004, "msg": "直播间不存在", "message": "直播间不存在", "data": {}}),
    ("room_info", {"code": 1, "msg": "房间不存在", "message": "房间不存在", "data": []}),
    ("room_info", {"code": 1, "msg": "", "message": "", "data": []}),
    ("user_card", {"code": -404, "message": "啥都木有", "ttl": 1}),
    ("master_info", {"code": 1, "msg": "参数错误", "message": "参数错误", "data": []}),
    (None, {"code": 60004, "msg": "直播间不存在", "message": "直播间不存在", "data": {}}),
]


@pytest.mark.parametrize(("kind", "payload"), GONE, ids=[f"{k}-{p['code']}" for k, p in GONE])
def test_gone(kind: str | None, payload: dict[str, Any]) -> None:
    with pytest.raises(GoneError):
        pages.parse(_body(payload), fetched_at=T0, kind=kind)


def test_user_without_a_room_is_gone() -> None:
    payload = {"code": 0, "message": "0", "ttl": 1, "data": {"roomStatus": 0, "roundStatus": 0, "roomid": 0}}
    with pytest.raises(GoneError, match="roomStatus 0"):
        pages.parse(_body(payload), url=f"{LIVE}/room/v1/Room/getRoomInfoOld?mid=3", fetched_at=T0)


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        (
            "play_info",
            {"code": 19002005, "message": "房间已加密", "data": None},
            "Bilibili code 19002005: 房间已加密",
        ),
        ("room_info", {"code": 1, "msg": "参数错误", "data": {"room_id": 1}}, "Bilibili code 1: 参数错误"),
        ("user_card", {"code": -400, "message": "请求错误"}, "Bilibili code -400: 请求错误"),
        (None, {"code": -101, "message": "账号未登录"}, "Bilibili code -101: 账号未登录"),
        ("room_info", {"code": "oops", "data": {}}, "envelope code is not a number"),
        ("room_info", [1, 2], "expected a JSON object"),
    ],
)
def test_other_error_codes_are_permanent(kind: str | None, payload: Any, expected: str) -> None:
    with pytest.raises(PermanentPageError) as raised:
        pages.parse(_body(payload), fetched_at=T0, kind=kind)
    assert type(raised.value) is PermanentPageError
    assert expected in raised.value.reason


# --- inputs that are not JSON ----------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   \n", b"\xef\xbb\xbf"], ids=["empty", "blank", "bom-only"])
def test_empty_body_is_retryable(body: bytes) -> None:
    with pytest.raises(RetryablePageError, match="empty body") as raised:
        pages.parse(body, url=GET_INFO_URL, fetched_at=T0)
    assert not isinstance(raised.value, BlockedError)


CAPTCHA = "<!DOCTYPE html><html><head><title>验证码</title></head><body>请完成安全验证</body></html>"
OPENRESTY_412 = "<html><head><title>412 Precondition Failed</title></head><body>openresty</body></html>"
BAD_GATEWAY = "<html><head><title>502 Bad Gateway</title></head><body><hr>nginx</body></html>"
LIVE_PAGE = (
    "<!DOCTYPE html><html><head><title>哔哩哔哩直播，二次元弹幕直播平台</title></head><body>"
    + "<div>" * 2000
    + "<script>window.__NEPTUNE_IS_MY_WAIFU__={};var verify=403;</script></body></html>"
)


@pytest.mark.parametrize(
    ("html", "error"),
    [
        (CAPTCHA, BlockedError),
        (OPENRESTY_412, BlockedError),
        (BAD_GATEWAY, RetryablePageError),
        (LIVE_PAGE, PermanentPageError),  # the site's own HTML: fetching again gives the same
        ("<html><body>Hello</body></html>", PermanentPageError),
    ],
    ids=["captcha", "412-page", "502-page", "real-page", "plain"],
)
def test_html_where_json_was_expected(html: str, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        pages.parse(html.encode(), url=GET_INFO_URL, fetched_at=T0)
    assert type(raised.value) is error
    assert "HTML" in raised.value.reason


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"code": 0, "data": {',
            "malformed JSON: Expecting property name enclosed in double quotes at line 1",
        ),
        (b'{"code": 0,}', "line 1 column 12 (char 11)"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_malformed_json_is_permanent(body: bytes, expected: str) -> None:
    with pytest.raises(PermanentPageError) as raised:
        pages.parse(body, url=GET_INFO_URL, fetched_at=T0)
    assert expected in raised.value.reason


def test_bom_and_jsonp_are_unwrapped() -> None:
    body = BY_ID["bilibili/room_init/short_id_76"].body
    expected = [r.to_json_dict() for r in pages.parse(body, fetched_at=T0, kind="room_init")]
    for wrapped in (b"\xef\xbb\xbf" + body, b"jQuery1_2(" + body + b");", b"/**/ cb(" + body + b")"):
        assert [r.to_json_dict() for r in pages.parse(wrapped, fetched_at=T0, kind="room_init")] == expected


# --- wrong shapes ----------------------------------------------------------------------------------


def test_missing_room_id_names_the_field() -> None:
    payload = _payload("bilibili/room_info/room_1_replay")
    del payload["data"]["room_id"]
    with pytest.raises(PermanentPageError) as raised:
        pages.parse(_body(payload), url=GET_INFO_URL, fetched_at=T0)
    assert "ValidationError: room_id: Field required" in raised.value.reason


def test_missing_streamer_id_names_the_field() -> None:
    payload = _payload("bilibili/master_info/uid_2")
    del payload["data"]["info"]["uid"]
    with pytest.raises(PermanentPageError, match="ValidationError: streamer_id: Field required"):
        pages.parse(_body(payload), fetched_at=T0, kind="master_info")


def test_unreadable_count_names_its_path() -> None:
    payload = _payload("bilibili/rec_list/homepage")
    payload["data"]["recommend_room_list"][3]["online"] = "lots"
    with pytest.raises(PermanentPageError, match=r"data\.recommend_room_list\.3\.online: not a count"):
        pages.parse(_body(payload), fetched_at=T0, kind="rec_list")


def test_list_that_is_not_a_list() -> None:
    with pytest.raises(PermanentPageError, match="data: expected a list, got dict"):
        pages.parse(_body({"code": 0, "data": {"roomid": 1}}), fetched_at=T0, kind="area_room_list")


@pytest.mark.parametrize(
    "payload",
    [
        {"code": 0, "data": {"something": "else"}},
        {"code": 0, "data": None},
        {"code": 0, "data": []},
        {"x": 1},
    ],
)
def test_unknown_payload(payload: Any) -> None:
    with pytest.raises(UnknownPayloadError):
        pages.parse(_body(payload), fetched_at=T0)


def test_unknown_kind_argument() -> None:
    with pytest.raises(UnknownPayloadError, match="nope"):
        pages.parse(b"{}", fetched_at=T0, kind="nope")


def test_empty_maps_give_no_records() -> None:
    # PHP backends send [] for an empty map.
    assert pages.parse(_body({"code": 0, "data": []}), fetched_at=T0, kind="status_by_uids") == []
    payload = {"code": 0, "data": {"by_uids": [], "by_room_ids": {}}}
    assert pages.parse(_body(payload), fetched_at=T0, kind="room_base_info") == []


# --- kinds: by URL, by shape -----------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.url], ids=lambda c: c.id)
def test_kind_from_fixture_url(case: Case) -> None:
    assert kind_from_url(case.url) == case.kind


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_detect_each_kind_without_url(case: Case) -> None:
    assert detect(json.loads(case.body)) == case.kind


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_parse_without_kind_matches_fixture(case: Case) -> None:
    # Kind from the URL, else from the shape: the same records as with the kind given.
    assert [r.to_json_dict() for r in run(case, with_kind=False)] == case.expected


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8081/room/v1/Room/get_info?room_id=1", "room_info"),
        ("https://api.live.bilibili.com/room/v1/room/GET_INFO", "room_info"),
        ("https://api.live.bilibili.com/room/v1/Room/room_init/", "room_init"),
        ("https://api.live.bilibili.com/xlive/web-room/v1/index/getInfoByRoom?room_id=1", "info_by_room"),
        ("https://api.live.bilibili.com//xlive/app-room/v1/index/getInfoByRoom", "info_by_room"),
        ("https://api.live.bilibili.com/room/v1/Area/getList", "area_list"),
        ("https://api.live.bilibili.com/room/v1/Area/getRoomList?page=2", "area_room_list"),
        ("https://api.live.bilibili.com/xlive/web-room/v1/index/getDanmuInfo?id=1", None),
        ("https://api.live.bilibili.com/room/v1/Room/get_info_extra", None),
        ("", None),
        (None, None),
    ],
)
def test_kind_from_url(url: str | None, kind: str | None) -> None:
    assert kind_from_url(url) == kind


def test_detect_refuses_non_envelopes() -> None:
    assert detect([1, 2]) is None
    assert detect({"code": 0}) is None
    assert detect({"code": -412, "data": None}) is None


def test_parsers_registry_takes_bytes() -> None:
    case = BY_ID["bilibili/room_info/room_1_replay"]
    records = pages.PARSERS["room_info"](case.body, url=case.url, fetched_at=T0)
    assert [type(r) for r in records] == [Room, RoomSnapshot, Streamer]


# --- decisions worth pinning beyond the fixtures ---------------------------------------------------


def test_text_counts_keep_their_text() -> None:
    payload = _payload("bilibili/room_info/room_1_replay")
    payload["data"]["online"] = "1.2万+"
    room, snapshot, _ = pages.parse(_body(payload), url=GET_INFO_URL, fetched_at=T0)
    assert (room.viewers_now, room.viewers_now_text, room.viewers_now_is_lower_bound) == (
        12000,
        "1.2万+",
        True,
    )
    assert snapshot.viewers_now == 12000


def test_beijing_live_time_becomes_utc() -> None:
    payload = _payload("bilibili/room_info/room_1_replay")
    payload["data"].update(live_status=1, live_time="2021-03-01 19:20:00")
    room, snapshot, streamer = pages.parse(_body(payload), url=GET_INFO_URL, fetched_at=T0)
    assert room.started_at == datetime(2021, 3, 1, 11, 20, tzinfo=UTC)
    assert (room.status, snapshot.status, streamer.is_live) == ("live", "live", True)


def test_unverified_badge_and_unknown_status() -> None:
    payload = _payload("bilibili/room_info/room_1_replay")
    payload["data"]["new_pendants"]["badge"] = {"name": "", "position": 0, "value": "", "desc": ""}
    payload["data"]["live_status"] = 7
    room, _, streamer = pages.parse(_body(payload), url=GET_INFO_URL, fetched_at=T0)
    assert (streamer.verified, streamer.verify_text) == (False, None)
    assert room.status == "unknown"


def test_round_status_means_replay_in_room_info_old() -> None:
    payload = _payload("bilibili/room_info_old/mid_322892")
    payload["data"].update(live_status=0, roundStatus=1)
    (room,) = pages.parse(_body(payload), fetched_at=T0, kind="room_info_old")
    assert room.status == "replay"
    assert room.streamer_id is None  # no URL, no mid: never guessed
    assert room.viewers_now is None and room.popularity == 268602


def test_gold_rank_never_reads_viewers() -> None:
    payload = _payload("bilibili/gold_rank/repaired")
    for item in payload["data"]["OnlineRankItem"]:
        item["uid"] = "not-an-id"  # would break any parser that read it
    url = f"{LIVE}/xlive/general-interface/v1/rank/getOnlineGoldRank?roomId=7&ruid=1&page=1&pageSize=50"
    (snapshot,) = pages.parse(_body(payload), url=url, fetched_at=T0)
    assert snapshot.model_dump(exclude_none=True) == {
        "platform": "bilibili", "room_id": "7", "captured_at": T0, "viewers_now": 45, "source_url": url,
    }  # fmt: skip


def test_room_base_info_dedupes_a_room_asked_twice() -> None:
    payload = _payload("bilibili/room_base_info/rooms_3_and_1")
    payload["data"]["by_uids"] = {"9617619": payload["data"]["by_room_ids"]["5440"]}
    records = pages.parse(_body(payload), fetched_at=T0, kind="room_base_info")
    assert [r.room_id for r in records if isinstance(r, Room)] == ["23058", "5440"]


# --- robustness: drifted payloads ------------------------------------------------------------------

# Keys that carry a record's identity: without them a record cannot be built (and must not be).
ID_KEYS = frozenset({"room_id", "roomid", "uid", "mid", "id", "onlineNum"})
PRIMARY = {"room": Room, "streamer": Streamer, "area": pages.Area, "room_snapshot": RoomSnapshot}


def _primary_count(records: list[Any], case: Case) -> int:
    primary = PRIMARY[case.expected[0]["type"]]
    return sum(isinstance(r, primary) for r in records)


ROBUST = [case for case in VALID if case.expected]


@pytest.mark.parametrize("case", ROBUST, ids=lambda c: c.id)
def test_dropping_any_optional_key_keeps_the_records(case: Case) -> None:
    payload = json.loads(case.body)
    expected = sum(1 for r in case.expected if r["type"] == case.expected[0]["type"])
    problems = []
    for path in _key_paths(payload["data"], ("data",)):
        mutated = copy.deepcopy(payload)
        parent, key = _at(mutated, path[:-1]), path[-1]
        leaf = not isinstance(parent[key], dict | list)
        del parent[key]
        try:
            records = pages.parse(_body(mutated), url=case.url, fetched_at=T0, kind=case.kind)
        except PermanentPageError as exc:
            # Only losing an identity or a whole container may fail (wrong shape, named by path).
            if key not in ID_KEYS and leaf:
                problems.append(f"{path}: {exc.reason}")
            continue
        if leaf and key not in ID_KEYS and _primary_count(records, case) != expected:
            problems.append(f"{path}: {_primary_count(records, case)} records instead of {expected}")
    assert not problems


@pytest.mark.parametrize("case", ROBUST, ids=lambda c: c.id)
def test_null_optional_values_keep_the_records(case: Case) -> None:
    payload = json.loads(case.body)
    expected = sum(1 for r in case.expected if r["type"] == case.expected[0]["type"])
    for path in _key_paths(payload["data"], ("data",)):
        if path[-1] in ID_KEYS:
            continue
        mutated = copy.deepcopy(payload)
        parent = _at(mutated, path[:-1])
        if isinstance(parent[path[-1]], dict | list):
            continue
        parent[path[-1]] = None
        records = pages.parse(_body(mutated), url=case.url, fetched_at=T0, kind=case.kind)
        assert _primary_count(records, case) == expected, path


def _add_unknown_keys(obj: Any) -> None:
    if isinstance(obj, dict):
        for value in list(obj.values()):
            _add_unknown_keys(value)
        # Maps keyed by ID (by_room_ids, the uid map; empty ones too, like by_uids) get no key:
        # a new key there is a new entry, not a new field.
        if obj and not all(key.isdigit() for key in obj):
            obj["x_new_field"] = {"nested": [1, "two", None], "online": "not a count"}
    elif isinstance(obj, list):
        for value in obj:
            _add_unknown_keys(value)


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_unknown_keys_change_nothing(case: Case) -> None:
    payload = json.loads(case.body)
    _add_unknown_keys(payload["data"])
    records = pages.parse(_body(payload), url=case.url, fetched_at=T0, kind=case.kind)
    assert [r.to_json_dict() for r in records] == case.expected


@pytest.mark.parametrize("case", ROBUST, ids=lambda c: c.id)
def test_only_identities_left_still_gives_records(case: Case) -> None:
    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            kept = {k: strip(v) for k, v in obj.items() if k in ID_KEYS or isinstance(v, dict | list)}
            return {k: v for k, v in kept.items() if v not in ({}, [])}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    payload = json.loads(case.body)
    payload["data"] = strip(payload["data"])
    records = pages.parse(_body(payload), url=case.url, fetched_at=T0, kind=case.kind)
    types = Counter(type(r).__name__ for r in records)
    assert types[PRIMARY[case.expected[0]["type"]].__name__] >= 1
    # Nothing observed, nothing claimed: no snapshot without a status or a count.
    assert all(r.status or r.viewers_now is not None for r in records if isinstance(r, RoomSnapshot))


# -- live-room objects in list answers no endpoint parser knows -------------------------------------
def _real_room_objects() -> list[dict[str, Any]]:
    """Every live-room object in the real list fixtures (area lists, recommendations, followed rooms)."""
    found = []
    for case in CASES:
        if case.kind in ("area_room_list", "rec_list", "room_list") and case.expected and "error" not in case.expected:
            data = json.loads(case.body)["data"]
            found += [item for _, items in room_lists(data) for item in items]
    return found


def test_room_objects_in_an_unknown_list_answer_are_read_by_meaning() -> None:
    """A list answer of a shape no endpoint parser knows, carrying real room objects two levels
    down, is recognised by content (``room_list``) and read by the same room reader: the same
    rooms as when each object is read alone."""
    by_id = {str(o.get("room_id") or o.get("roomid")): o for o in _real_room_objects()}
    objects = list(by_id.values())
    assert len(objects) >= 5
    payload = {"code": 0, "message": "0", "ttl": 1,
               "data": {"module_info": {"title": "x"}, "cards": {"items": objects}, "has_more": 0}}
    assert detect(payload) == "room_list"
    records = pages.parse(_body(payload), fetched_at=T0)
    rooms = {r.room_id: r for r in records if isinstance(r, Room)}
    assert set(rooms) == set(by_id)
    for obj in objects:
        alone = pages.parse(_body({"code": 0, "data": {"list": [obj]}}), fetched_at=T0, kind="room_list")
        assert rooms[alone[0].room_id] == alone[0]
    # A viewer-facing list with no room objects is not taken for one.
    assert detect({"code": 0, "data": {"list": [{"uid": 1, "uname": "someone"}]}}) is None
