"""Douyin push messages (``spiders/douyin/push.py``) on real decoded samples.

The cases live in ``tests/fixtures/douyin/push/webcast/<case>/`` (``inputs/``, ``meta.json``,
``output.json`` = ``{"records": [...], "events": [...]}``), one level deeper than the
``pages`` cases because push files are not a ``pages`` kind (they also give events).
Sources: Johnserf-Seed/f2 ``tests/data/douyin/webcast/dict/*.json`` and VideoData/DY-Data's
relay docs (PROVENANCE.tsv). No public decoded sample of ``WebcastLikeMessage`` with its
``total`` nor of ``WebcastControlMessage`` was found: those tests build the message from the
field names of saermart/DouyinLiveWebFetcher ``protobuf/douyin.proto`` (LikeMessage
``count``/``total``, ControlMessage ``status``), and say so.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from models.errors import PageError, PermanentPageError
from spiders.douyin import push

CASES_DIR = Path(__file__).parent / "fixtures" / "douyin" / "push" / "webcast"
CASES = sorted(path for path in CASES_DIR.iterdir() if (path / "meta.json").is_file())
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _input(case: Path) -> Path:
    (path,) = (case / "inputs").iterdir()
    return path


def _case(name: str) -> Path:
    return CASES_DIR / name


def _messages(name: str) -> list[dict[str, Any]]:
    loaded = push.load_messages(_input(_case(name)).read_bytes())
    assert loaded is not None
    return loaded


def _out(result: push.PushResult) -> dict[str, list[dict[str, Any]]]:
    return {"records": [r.to_json_dict() for r in result.records],
            "events": [e.to_json_dict() for e in result.events]}  # fmt: skip


def _parse(messages: Any, **kwargs: Any) -> dict[str, list[dict[str, Any]]]:
    body = json.dumps(messages, ensure_ascii=False).encode()
    return _out(push.parse(body, fetched_at=kwargs.pop("fetched_at", T0), **kwargs))


def test_cases_exist() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_case_output(case: Path) -> None:
    meta = json.loads((case / "meta.json").read_text())
    result = push.parse(
        _input(case).read_bytes(), url=meta["url"], fetched_at=datetime.fromisoformat(meta["fetched_at"])
    )
    assert _out(result) == json.loads((case / "output.json").read_text())


def test_exact_counts_from_the_real_messages() -> None:
    stats = _parse(_messages("room_stats_2024-07-06"))["records"]
    assert stats == [{"type": "room_snapshot", "platform": "douyin", "room_id": "7388523424571869991",
                      "captured_at": "2024-07-06T16:55:38.163000Z", "viewers_now": 2252}]  # fmt: skip
    seq = _parse(_messages("room_user_seq_2024-07-05"))["records"][0]
    assert (seq["viewers_now"], seq["viewers_total"]) == (497, 6597)


def test_display_text_is_never_taken_for_an_exact_count() -> None:
    (stats,) = copy.deepcopy(_messages("room_stats_2024-07-06"))
    for key in ("total", "display_value"):
        del stats[key]
    stats.update(display_short="1.2万", display_middle="1.2万", display_long="1.2万在线观众")
    assert _parse(stats) == {"records": [], "events": []}
    seq = copy.deepcopy(_messages("room_user_seq_2024-07-05"))[0]
    del seq["totalUser"]
    seq["totalPvForAnchor"] = "10万+"
    assert "viewers_total" not in _parse(seq)["records"][0]
    seq["totalPvForAnchor"] = "81234"
    assert _parse(seq)["records"][0]["viewers_total"] == 81234


def _camel_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {push._camel(k): _camel_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_camel_keys(v) for v in obj]
    return obj


def _list_suffix(obj: dict[str, Any]) -> dict[str, Any]:
    # protobuf-js toObject() names repeated fields <name>List
    return {(f"{k}List" if isinstance(v, list) else k): v for k, v in obj.items()}


@pytest.mark.parametrize("name", ["room_stats_2024-07-06", "room_user_seq_2024-07-05", "product_change_2024-07-06",
                                  "live_shopping_2024-07-06"])  # fmt: skip
def test_snake_case_camel_case_and_list_suffix_read_alike(name: str) -> None:
    messages = _messages(name)
    expected = _parse(messages)
    assert expected["records"] or expected["events"]
    assert _parse(_camel_keys(messages)) == expected
    assert _parse([_list_suffix(_camel_keys(m)) for m in messages]) == expected


def test_relay_payload_form_reads_like_the_flat_form() -> None:
    (stats,) = _messages("room_stats_2024-07-06")
    fields = {k: v for k, v in stats.items() if k != "common"}
    relay = {
        "code": 200,
        "msg": "成功",
        "data": {
            "messages": [
                {
                    "method": "WebcastRoomStatsMessage",
                    "msg_id": 1,
                    "payload": {"room_id": 7388523424571869991, **fields},
                }
            ]
        },
    }
    assert _parse(relay)["records"] == [{"type": "room_snapshot", "platform": "douyin",
                                         "room_id": "7388523424571869991", "captured_at": "2026-01-01T00:00:00Z",
                                         "viewers_now": 2252}]  # fmt: skip


def test_one_message_a_list_and_json_lines_give_the_same() -> None:
    messages = [*_messages("room_stats_2024-07-06"), *_messages("room_user_seq_2024-07-05"),
                *_messages("product_change_2024-07-06"), *_messages("gift_2024-06-20")]  # fmt: skip
    as_list = push.parse(json.dumps(messages).encode(), fetched_at=T0)
    as_lines = push.parse("\n".join(json.dumps(m) for m in messages).encode() + b"\n", fetched_at=T0)
    one_by_one = [push.parse(json.dumps(m).encode(), fetched_at=T0) for m in messages]
    assert _out(as_list) == _out(as_lines)
    assert _out(as_list)["records"] == [r for one in one_by_one for r in _out(one)["records"]]
    assert [r.kind for r in as_list.records] == ["room_snapshot"] * 3


def test_likes_total_from_a_like_message_built_from_the_proto() -> None:
    # saermart protobuf/douyin.proto LikeMessage{common=1, count=2, total=3, ..., user=5}: no public decoded sample.
    like = {"common": {"method": "WebcastLikeMessage", "roomId": "7388523424571869991", "createTime": "1720284938163"},
            "count": "12", "total": "98765",
            "user": {"id": "111222333444", "nickname": "某观众", "secUid": "MS4wLjABAAAAviewer"}}  # fmt: skip
    (snapshot,) = _parse(like)["records"]
    assert snapshot["likes"] == 98765 and snapshot["captured_at"] == "2024-07-06T16:55:38.163000Z"


@pytest.mark.parametrize(("status", "expected"), [(3, "ended"), ("3", "ended"), (1, None), (2, None)])
def test_control_message_status_3_ends_the_room(status: Any, expected: str | None) -> None:
    # saermart liveMan.py _parseControlMsg: status == 3 -> 直播间已结束 (no public decoded sample).
    control = {"common": {"method": "WebcastControlMessage", "roomId": "7388523424571869991",
                          "createTime": "1720290000000"}, "status": status}  # fmt: skip
    records = _parse(control)["records"]
    assert [r.get("status") for r in records] == ([expected] if expected else [])


def test_product_change_sequence_gives_listed_and_delisted() -> None:
    (first,) = _messages("product_change_2024-07-06")
    second = copy.deepcopy(first)
    second["update_timestamp"] = str(int(first["update_timestamp"]) + 60)
    gone = second["update_product_info"].pop(1)["promotion_id"]  # index 1
    second["update_product_info"].append({"index": 199, "promotion_id": "3700000000000000001"})
    for entry in second["update_product_info"]:
        entry.pop("explain_type", None)
    events = _parse([first, second])["events"]
    assert [(e["event"], e["promotion_id"]) for e in events] == [
        ("explained", "3691984502923623681"),
        ("listed", "3700000000000000001"),
        ("delisted", gone),
    ]
    listed = events[1]
    assert listed["at"] == "2024-07-06T17:34:59Z" and listed["rank_in_room"] == 199
    assert listed["room_id"] == "7388530890839837503"


def test_product_change_alone_explains_the_current_product() -> None:
    out = _parse(_messages("product_change_2024-07-06"))
    assert out["records"][0]["product_count"] == 198
    assert out["events"] == [
        {
            "type": "product_event",
            "platform": "douyin",
            "room_id": "7388530890839837503",
            "at": "2024-07-06T17:33:59Z",
            "event": "explained",
            "promotion_id": "3691984502923623681",
            "rank_in_room": 10,
            "explain_type": "2,1",
        }
    ]


def test_live_shopping_gives_its_product_and_a_sold_out_event() -> None:
    out = _parse(_messages("live_shopping_2024-07-06"))
    assert [r["type"] for r in out["records"]] == ["product"]
    (event,) = out["events"]
    assert (event["event"], event["product_id"], event["msg_type"]) == ("sold_out", "3607009049079634959", "7")


# --- viewers' identities never come out --------------------------------------------------------------

_PERSON_KEYS = {"user", "ranks", "ranksList", "seats", "seatsList", "toUser", "anchor", "users"}


def _person_values(obj: Any, inside: bool = False) -> set[str]:
    """Every scalar under a person-holding key (user, ranks, seats, ...), as text."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            found |= _person_values(value, inside or key in _PERSON_KEYS)
    elif isinstance(obj, list):
        for value in obj:
            found |= _person_values(value, inside)
    elif inside and obj is not None and not isinstance(obj, bool):
        found.add(str(obj))
    return found


def test_no_viewer_identity_appears_anywhere_in_the_output() -> None:
    relay = json.loads(_input(_case("relay_monitor_messages_2021-01-28")).read_bytes())["data"]["messages"]
    relay += json.loads(_input(_case("relay_chat_messages_2021-09-05")).read_bytes())["data"]["messages"]
    batch = [*_messages("room_user_seq_2024-07-05"), *_messages("gift_2024-06-20"), *_messages("social_2024-06-20"),
             *relay, *_messages("room_stats_2024-07-06"), *_messages("product_change_2024-07-06")]  # fmt: skip
    # A like and a member message of a metric room, each with its viewer.
    for method, extra in (("WebcastLikeMessage", {"count": "3", "total": "4567"}),
                          ("WebcastMemberMessage", {"memberCount": "321"})):  # fmt: skip
        batch.append({"common": {"method": method, "roomId": "7388138219981900562", "createTime": "1720190990000"},
                      "user": {"id": "98765432101234", "nickname": "路过的小明", "displayId": "xiaoming_88",
                               "secUid": "MS4wLjABAAAAxiaomingsecuid", "avatarThumb": {"urlList": [
                                   "https://p3.douyinpic.com/aweme/100x100/xiaoming.jpeg"]}}, **extra})  # fmt: skip
    people = {value for value in _person_values(batch) if len(value) >= 4}
    assert len(people) > 100  # nicknames, ids, sec_uids, avatars
    out = json.dumps(_parse(batch), ensure_ascii=False)
    assert json.loads(out)["records"]  # the metrics did come out
    leaked = sorted(value for value in people if value in out)
    assert leaked == []


# --- not push messages; hostile shapes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b"{}",
        b'{"method": "hello"}',
        b'[{"common": {}}]',
        b"<html></html>",
        b'{"status_code": 0, "data": {}}',
        b'{"method": "WebcastRoomStatsMessage"}\nnot json',
    ],
)
def test_what_is_not_push_messages_is_said_so(body: bytes) -> None:
    assert push.load_messages(body) is None
    with pytest.raises(PermanentPageError, match="not Douyin push messages"):
        push.parse(body, fetched_at=T0)


def test_a_message_without_a_room_gives_nothing_unless_the_url_names_it() -> None:
    (stats,) = copy.deepcopy(_messages("room_stats_2024-07-06"))
    del stats["common"]["roomId"]
    assert _parse(stats) == {"records": [], "events": []}
    url = "wss://webcast5-ws-web-lf.douyin.com/webcast/im/push/v2/?room_id=7388523424571869991"
    assert _parse(stats, url=url)["records"][0]["room_id"] == "7388523424571869991"


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj[:2]) if isinstance(obj, list) else []
    for key, value in items:
        out.append((*path, key))
        out += _paths(value, (*path, key))
    return out


@pytest.mark.parametrize("name", ["room_stats_2024-07-06", "room_user_seq_2024-07-05", "product_change_2024-07-06",
                                  "live_shopping_2024-07-06"])  # fmt: skip
@pytest.mark.parametrize("value", [None, "x", -1, True, [], {}, "1.5e3"])
def test_any_field_of_any_type_raises_at_most_a_page_error(name: str, value: Any) -> None:
    messages = _messages(name)
    for path in _paths(messages):
        mutated = copy.deepcopy(messages)
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
        try:
            push.parse_messages(mutated, fetched_at=T0)
        except PageError:
            pass
