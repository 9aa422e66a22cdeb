"""The Douyin part of the sandbox, run as a subprocess and checked over HTTP and in Chromium.

Answers are compared with the real payloads in ``tests/fixtures/sandbox_shapes/douyin``
(copied from the shared real fixtures; see the PROVENANCE.tsv there): every key we send
must exist in the real answer (or be one of the few listed extras other real captures
document) with the same JSON type. The room page is rendered in a real browser when
``/usr/bin/chromium`` exists; those tests are skipped otherwise.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from sandbox.douyin.sign import sign, signed_at
from tests.plugins.sandbox import SandboxProcess, start_sandbox

pytestmark = pytest.mark.integration

SHAPES = Path(__file__).parent / "fixtures" / "sandbox_shapes" / "douyin"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36"
TTWID = {"ttwid": "1%7CtestTTWID%7C1780000000%7Cabc"}
LIVE = "/live.douyin.com"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: The real pages' state line, found the way streamlink finds it.
PACE = re.compile(r'self\.__pace_f\.push\(\[\d+,("\w+:.+?")\]\)</script>')


# -- helpers ---------------------------------------------------------------------------------------
def real(name: str) -> Any:
    return json.loads((SHAPES / name).read_text(encoding="utf-8"))


def real_page_line(prefix: str) -> Any:
    """The JSON of the real room page's RSC line starting with ``prefix`` (e.g. ``a:``)."""
    html = (SHAPES / "live_douyin_room_604946797621_page.html").read_text(encoding="utf-8")
    for literal in re.findall(r'self\.__pace_f\.push\(\[\d+, ?(".*?")\]\)</script>', html, re.S):
        line = json.loads(literal)
        if line.startswith(prefix):
            return json.loads(line[len(prefix) :])
    raise AssertionError(prefix)


def shape_errors(want: Any, got: Any, path: str = "$", extra: frozenset[str] = frozenset()) -> list[str]:
    """Keys we send that the real payload lacks (outside ``extra``), and JSON type differences."""
    if want is None or got is None:
        return []  # real captures null out some fields; nothing to compare
    if isinstance(want, bool) != isinstance(got, bool) or type(want) is not type(got):
        if not (isinstance(want, int | float) and isinstance(got, int | float) and not isinstance(got, bool)):
            return [f"{path}: {type(want).__name__} vs {type(got).__name__}"]
    errors: list[str] = []
    if isinstance(want, dict):
        errors += [f"{path}.{k}: not in the real payload" for k in got if k not in want and k not in extra]
        for key in want.keys() & got.keys():
            errors += shape_errors(want[key], got[key], f"{path}.{key}", extra)
    elif isinstance(want, list) and want and got:
        for i, item in enumerate(got):
            errors += min((shape_errors(w, item, f"{path}[{i}]", extra) for w in want), key=len)
    return errors


class Answer:
    """An HTTP answer: status, headers and raw body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    sb: SandboxProcess,
    path: str,
    params: dict[str, Any],
    *,
    body: bytes | None = None,
    signed: bool = True,
    ts: int | None = None,
    signature: str | None = None,
    ua: str = UA,
    cookies: dict[str, str] | None = TTWID,
) -> Answer:
    """Sign the raw query (and body) like a client of the real site and send it."""
    raw = urlencode(params)
    if signed:
        raw += "&a_bogus=" + quote(signature or sign(raw, ua, body or b"", ts=ts), safe="")
    headers = {"User-Agent": ua}
    if cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(f"{sb.url}{path}?{raw}", data=body, headers=headers)
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return Answer(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def enter_params(web_rid: str) -> dict[str, Any]:
    return {
        "aid": 6383,
        "app_name": "douyin_web",
        "live_id": 1,
        "device_platform": "web",
        "web_rid": web_rid,
        "msToken": "",
    }


def enter(sb: SandboxProcess, web_rid: str, **kw: Any) -> Answer:
    return call(sb, f"{LIVE}/webcast/room/web/enter/", enter_params(web_rid), **kw)


def shelf_page(sb: SandboxProcess, room: dict[str, Any], offset: int, post: bool = False, **kw: Any) -> Answer:
    params = {
        "device_platform": "webapp",
        "aid": 6383,
        "room_id": room["id_str"],
        "author_id": room["owner_user_id_str"],
    }
    params.update({"offset": offset, "limit": 20})
    return call(sb, f"{LIVE}/live/promotions/page/", params, body=b"" if post else None, **kw)


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxProcess]:
    process = start_sandbox("--platforms", "douyin", "--time-scale", "0", "--no-chaos")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def truth(sb: SandboxProcess) -> dict[str, Any]:
    return sb.truth("douyin")


def _pick(truth: dict[str, Any], *, status: int = 2, min_products: int = 0) -> dict[str, Any]:
    return next(
        r for r in truth["rooms"] if r["status"] == status and r["product_count"] >= min_products and not r["fault"]
    )


# -- shapes ------------------------------------------------------------------------------------------
def test_enter_answer_has_the_real_shape(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    room = _pick(truth, min_products=1)
    got = enter(sb, room["web_rid"]).json()
    envelope = real("webcast_room_web_enter_via_tikhub_fetch_user_live_videos_room_7542418868329827091.json")
    documented = frozenset({"extra", "now", "qrcode_url", "enter_mode", "partition_road_map", "partition"})
    documented |= {"sub_partition", "id_str", "type", "title", "avatar_thumb", "url_list", "follow_info"}
    documented |= {"follow_status", "follow_status_str"}
    envelope_only = {**envelope, "data": {k: v for k, v in envelope["data"].items() if k != "data"}}
    got_envelope = {**got, "data": {k: v for k, v in got["data"].items() if k != "data"}}
    assert shape_errors(envelope_only, got_envelope, extra=documented) == []
    assert {"data", "enter_room_id", "user", "room_status"} <= set(got["data"])
    # The room object: every key is one a real room object has (the 2024 enter object or the page's room).
    page_room = real_page_line("a:")[3]["state"]["roomStore"]["roomInfo"]["room"]
    enter_room = real("webcast_room_web_enter_data0_room_object_7384780141332876032_2024-06-26.json")
    obj = got["data"]["data"][0]
    assert shape_errors({**page_room, **enter_room}, obj) == []
    assert list(obj)[:5] == list(enter_room)[:5] == ["id_str", "status", "status_str", "title", "user_count_str"]
    assert obj["id_str"] == room["id_str"] and obj["room_view_stats"]["display_value"] == room["user_count"]
    assert obj["owner"]["id_str"] == room["owner_user_id_str"] and got["data"]["room_status"] == 0


def test_shelf_detail_and_profile_have_the_real_shapes(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    room = _pick(truth, min_products=1)
    page = shelf_page(sb, room, 0).json()
    app_item = real("dydata_liveroom_current_explaining_product.json")["data"]["promotions"][0]
    # Keys of the web shelf (PLATFORMS.md §1.2, Jakesoso/TikTok_helper cart_info.json) beyond the app list's.
    web_only = {"campaign_info", "category", "detail_cover", "is_campaign", "leaf_category", "real_index"}
    web_only |= {"regular_price", "can_sold", "explain_type", "first_cid", "second_cid", "height", "width"}
    web_only |= {"url_list", "campaign_id", "campaign_type", "end_time", "is_preheat", "left_stock", "start_time"}
    web_only |= {"style"}
    for item in page["promotions"]:
        assert shape_errors(app_item, item, extra=frozenset(web_only)) == []
        assert isinstance(item["min_price"], int) and isinstance(item["shop_id"], int)
    detail_want = real("dydata_promotion_detail.json")["data"]
    pid = page["promotions"][0]["promotion_id"]
    form = urlencode({"bff_type": 2, "ec_promotion_id": pid, "promotion_ids": pid, "room_id": room["id_str"]})
    detail = call(sb, f"{LIVE}/ecom/product/detail/saas/pc/", {"aid": 6383, "is_h5": 1}, body=form.encode()).json()
    assert shape_errors(detail_want, detail) == [] and detail["promotions"][0]["base_info"]["promotion_id"] == pid
    streamer = next(s for s in truth["streamers"] if s["uid"] == room["owner_user_id_str"])
    profile_answer = call(
        sb, "/www.douyin.com/aweme/v1/web/user/profile/other/", {"aid": 6383, "sec_user_id": streamer["sec_uid"]}
    )
    profile = profile_answer.json()
    profile_want = real("dydata_user_profile_info.repaired.json")["data"]
    assert shape_errors(profile_want, profile, extra=frozenset({"live_status", "room_id_str"})) == []
    user = profile["user"]
    assert (user["uid"], user["sec_uid"], user["follower_count"]) == (
        streamer["uid"],
        streamer["sec_uid"],
        streamer["follower_count"],
    )
    # room_id is a JSON number beyond 2^53, exact in the bytes: read as text it equals the id string.
    assert f'"room_id":{room["id_str"]},' in profile_answer.body.decode() and user["room_id_str"] == room["id_str"]


def test_home_page_embeds_categories_and_sets_visitor_cookies(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    reply = sb.get(f"{LIVE}/")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    names = {c.split("=", 1)[0] for c in reply.set_cookies}
    assert {"ttwid", "__ac_nonce"} <= names
    html = reply.body.decode()
    blob = re.search(r'\{\\"pathname\\":\\"/\\",\\"categoryData.*?\]\\n', html)  # dart_simple_live's regex
    assert blob is not None
    ours = json.loads(json.loads('"' + blob.group(0) + '"')[:-1].rstrip("]"))["categoryData"]
    want = real_page_line("8:")[3]["categoryData"]
    assert ours == truth["categories"]
    assert shape_errors(want, ours) == [] and list(ours[0]["partition"]) == list(want[0]["partition"])


# -- pages over plain HTTP -----------------------------------------------------------------------------
def test_room_page_is_a_captcha_without_ttwid_and_a_data_free_shell_with_it(
    sb: SandboxProcess, truth: dict[str, Any]
) -> None:
    room = _pick(truth)
    page = sb.get(f"{LIVE}/{room['web_rid']}")
    text = page.body.decode()
    assert page.status == 200 and "<title>验证码中间页</title>" in text
    assert 'id="captcha_container"' in text and "captcha-verify-image" in text
    shell = sb.get(f"{LIVE}/{room['web_rid']}", cookies=TTWID)
    html = shell.body.decode()
    assert shell.status == 200 and "验证码" not in html
    assert room["title"] not in html and room["id_str"] not in html, "a plain HTTP client gets no room data"
    assert not [m for m in PACE.findall(html) if "state" in m]


# -- signatures ---------------------------------------------------------------------------------------
def test_apis_need_a_fresh_signature_and_ttwid(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    room = _pick(truth, min_products=1)
    assert enter(sb, room["web_rid"]).json()["status_code"] == 0
    now = int(time.time())  # signatures carry real time, whatever the world's time is
    other_query = sign(urlencode({"aid": 6383, "web_rid": room["web_rid"]}), UA)
    refusals = [
        enter(sb, room["web_rid"], signed=False),
        enter(sb, room["web_rid"], cookies=None),
        enter(sb, room["web_rid"], ts=now - 600),  # signed ten minutes ago
        shelf_page(sb, room, 0, ts=now - 330),
        call(sb, f"{LIVE}/webcast/room/web/enter/", {"aid": 6383, "web_rid": "1"}, signature=other_query),
        enter(sb, room["web_rid"], signature=sign(urlencode(enter_params(room["web_rid"])), "curl/8.0")),
    ]
    for answer in refusals:
        assert (answer.status, answer.body) == (200, b""), answer.headers.get("x-sandbox-reject")
    reasons = [a.headers.get("x-sandbox-reject") for a in refusals]
    assert reasons == ["unsigned", "no ttwid", "stale", "stale", "query mismatch", "user-agent mismatch"]


# -- values ----------------------------------------------------------------------------------------------
def test_shelf_pages_cover_the_truth_and_are_logged(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    room = _pick(truth, min_products=25)
    want = truth["shelves"][room["web_rid"]]
    items, offset, pages = [], 0, 0
    while offset != -1:
        page = shelf_page(sb, room, offset, post=pages % 2 == 1).json()
        assert page["total"] == len(want) and page["status_code"] == 0
        items += page["promotions"]
        offset, pages = page["next_offset"], pages + 1
    assert pages == -(-len(want) // 20)
    assert [i["index"] for i in items] == list(range(1, len(want) + 1))
    for got, expected in zip(items, want, strict=True):
        assert (got["product_id"], got["promotion_id"], got["min_price"]) == (
            expected["product_id"],
            expected["promotion_id"],
            expected["min_price"],
        )
        assert got.get("sale_num") == expected["sale_num"]
        assert got["max_price"] == expected["max_price"] and got["regular_price"] == expected["regular_price"]
    served = [r for r in sb.served("douyin", room["id_str"]) if r["endpoint"] == "promotions"]
    logged = {r["product_id"]: r for r in served}
    assert set(logged) == {w["product_id"] for w in want}
    assert all(logged[w["product_id"]]["sale_num"] == w["sale_num"] for w in want)
    # Another session's id, or another author, sees nothing.
    other = dict(room, owner_user_id_str="1")
    assert shelf_page(sb, other, 0).json()["promotions"] == []
    ended = _pick(truth, status=4)
    page = shelf_page(sb, ended, 0).json()
    assert (page["promotions"], page["total"], page["next_offset"]) == ([], 0, -1)


def test_enter_values_offline_unknown_and_served_log(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    live = _pick(truth)
    data = enter(sb, live["web_rid"]).json()["data"]
    obj = data["data"][0]
    assert (obj["status"], obj["like_count"], obj["title"]) == (2, live["like_count"], live["title"])
    rows = [r for r in sb.served("douyin", live["id_str"]) if r["endpoint"] == "enter"]
    assert (
        rows
        and rows[-1]["online"] == obj["room_view_stats"]["display_value"]
        and rows[-1]["web_rid"] == live["web_rid"]
    )
    ended = _pick(truth, status=4)
    data = enter(sb, ended["web_rid"]).json()["data"]
    assert (data["room_status"], data["prompts"], data["data"][0]["status"]) == (2, "直播已结束", 4)
    assert data["enter_room_id"] == ended["id_str"] and data["user"]["id_str"] == ended["owner_user_id_str"]
    missing = enter(sb, "99999999999").json()
    assert missing["status_code"] == 30003 and missing["data"]["prompts"] == "直播间不存在"
    gone = call(sb, "/www.douyin.com/aweme/v1/web/user/profile/other/", {"sec_user_id": "MS4wLjABAAAAnope"}).json()
    assert gone["status_code"] != 0 and gone["user"] is None


def test_partition_lists_page_through_live_rooms(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    live = {r["web_rid"]: r for r in truth["rooms"] if r["status"] == 2}
    seen: list[dict[str, Any]] = []
    offset = 0
    while True:
        params = {"aid": 6383, "count": 15, "offset": offset, "partition": 720, "partition_type": 1, "req_from": 2}
        page = call(sb, f"{LIVE}/webcast/web/partition/detail/room/v2/", params).json()["data"]["data"]
        seen += page
        offset += 15
        if len(page) < 15:  # a short page is the last one
            break
    assert [i["web_rid"] for i in seen] and {i["web_rid"] for i in seen} == set(live)
    values = [i["room"]["room_view_stats"]["display_value"] for i in seen]
    assert values == sorted(values, reverse=True)
    assert all(i["room"]["room_view_stats"]["display_value"] == live[i["web_rid"]]["user_count"] for i in seen)
    sub = truth["categories"][0]["sub_partition"][0]["partition"]
    params = {"count": 50, "offset": 0, "partition": sub["id_str"], "partition_type": sub["type"]}
    rows = call(sb, f"{LIVE}/webcast/web/partition/detail/room/v2/", params).json()["data"]["data"]
    assert {i["web_rid"] for i in rows} == {w for w, r in live.items() if r["partition"]["id_str"] == sub["id_str"]}


def test_fault_rooms_break_the_way_real_answers_do(sb: SandboxProcess, truth: dict[str, Any]) -> None:
    faults = truth["faults"]
    rooms = {r["web_rid"]: r for r in truth["rooms"]}
    body = enter(sb, faults["truncated_json"][0]).body
    assert body.startswith(b'{"data":')
    with pytest.raises(ValueError):
        json.loads(body)
    html = shelf_page(sb, rooms[faults["html_page"][0]], 0)
    assert html.status == 200 and html.headers["content-type"].startswith("text/html")
    broken_id = faults["missing_id"][0]
    web_rid = next(w for w, items in truth["shelves"].items() if any(i["product_id"] == broken_id for i in items))
    room = rooms[web_rid]
    entries, offset = [], 0
    while offset != -1:
        page = shelf_page(sb, room, offset).json()
        entries += page["promotions"]
        offset = page["next_offset"]
    assert sum("product_id" not in e for e in entries) == 1


# -- in Chromium -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # `make test` installs Debian's chromium when it is missing: its absence is a broken setup, not a skip.
    assert Path(CHROMIUM).exists(), f"Chromium is not installed at {CHROMIUM} (make install puts it there)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _page_state(html: str) -> Any:
    lines = [m for m in PACE.findall(html) if "state" in m and "roomStore" in m]
    assert len(lines) == 1
    line = json.loads(lines[0])
    return json.loads(line[line.index(":") + 1 :])


def test_room_page_renders_the_state_in_a_browser(sb: SandboxProcess, truth: dict[str, Any], browser: Any) -> None:
    live, ended = _pick(truth, min_products=1), _pick(truth, status=4)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{sb.url}{LIVE}/{live['web_rid']}")
        assert page.title() == "验证码中间页", "first visit without ttwid: the captcha"
        page.reload()  # the captcha answer set ttwid
        page.wait_for_function("window.__LIVEFLEET_READY__ === true")
        assert page.evaluate("document.body.dataset.ready") == "live"
        html = page.content()
        line = _page_state(html)
        want = real_page_line("a:")
        assert line[:3] == ["$", "$L11", None] and list(line[3]) == list(want[3]) == ["state", "children"]
        state = line[3]["state"]
        assert list(state)[0] == "appStore" and set(state) <= set(want[3]["state"]) | {"isLiveModal"}
        info = state["roomStore"]["roomInfo"]
        assert list(info) == list(want[3]["state"]["roomStore"]["roomInfo"])
        assert info["web_rid"] == live["web_rid"] and info["roomId"] == info["room"]["id_str"] == live["id_str"]
        assert info["room"] == enter(sb, live["web_rid"]).json()["data"]["data"][0]
        assert state["userStore"]["odin"]["user_unique_id"].isdigit()
        # dart_simple_live's state regex finds the same state.
        found = re.search(r'\{\\"state\\":\{\\"appStore.*?\]\\n', html)
        assert found is not None and '\\"roomId\\":\\"' + live["id_str"] in found.group(0)
        assert live["title"] in page.inner_text("#root") and page.title().startswith(live["title"])
        page.goto(f"{sb.url}{LIVE}/{ended['web_rid']}")
        page.wait_for_function("window.__LIVEFLEET_READY__ === true")
        info = _page_state(page.content())[3]["state"]["roomStore"]["roomInfo"]
        assert page.evaluate("document.body.dataset.ready") == "ended" and "room" not in info
        assert info["roomId"] == ended["id_str"] and info["anchor"]["id_str"] == ended["owner_user_id_str"]
        page.goto(f"{sb.url}{LIVE}/99999999999")
        page.wait_for_function("window.__LIVEFLEET_READY__ === true")
        assert page.evaluate("document.body.dataset.ready") == "missing" and "直播间不存在" in page.inner_text("#root")
        page.goto(f"{sb.url}{LIVE}/{truth['faults']['truncated_json'][0]}")  # its enter answer is cut short
        page.wait_for_function("window.__LIVEFLEET_READY__ === true")
        assert page.evaluate("document.body.dataset.ready") == "error" and "roomStore" not in "".join(
            PACE.findall(page.content())
        )
    finally:
        context.close()


def test_page_signer_matches_the_python_verifier(sb: SandboxProcess, truth: dict[str, Any], browser: Any) -> None:
    room = _pick(truth, min_products=1)
    context = browser.new_context(user_agent=UA)
    try:
        page = context.new_page()
        page.goto(f"{sb.url}{LIVE}/")  # the signer page; also hands out ttwid
        cases = [
            ("aid=6383&web_rid=1", "", UA),
            ("keyword=%E5%A5%BD%E7%89%A9&count=10", "", "Mozilla/5.0 好物"),
            ("aid=6383&room_id=7646376107435079915", "ec_promotion_id=1&room_id=2", UA),
            ("", "", ""),
        ]
        for query, body, ua in cases:
            js = page.evaluate(
                "a => window.bdms.init._v[2].p[42].apply(null, [0, 1, 8, a[0], a[1], a[2]])", [query, body, ua]
            )
            ts = signed_at(js)
            assert ts is not None and js == sign(query, ua, body, ts=ts)
        # A request signed in the page and sent by the page is accepted (POST, empty body).
        params = urlencode(
            {"device_platform": "webapp", "aid": 6383, "room_id": room["id_str"], "offset": 0, "limit": 5}
        )
        got = page.evaluate(
            """q => fetch("/live.douyin.com/live/promotions/page/?" + q + "&a_bogus=" +
                 encodeURIComponent(window.bdms.init._v[2].p[42].apply(null, [0, 1, 8, q, "", navigator.userAgent])),
                 {method: "POST", body: ""}).then(r => r.json())""",
            params,
        )
        assert [i["index"] for i in got["promotions"]] == list(range(1, min(5, room["product_count"]) + 1))
    finally:
        context.close()


# -- a moving world and chaos (own sandbox: these change its clock and settings) -------------------------
def test_world_moves_and_blocks_answer_like_douyin() -> None:
    process = start_sandbox("--platforms", "douyin", "--time-scale", "0", "--no-chaos", "--streamers", "120")
    try:
        before = process.truth("douyin")
        rooms = {r["web_rid"]: r for r in before["rooms"]}
        process.clock(advance_seconds=3 * 3600)
        after = process.truth("douyin")
        # Three hours on, rooms went live or ended; every new broadcast has a new room_id.
        assert any(r["status"] != rooms[r["web_rid"]]["status"] for r in after["rooms"])
        assert any(r["id_str"] != rooms[r["web_rid"]]["id_str"] for r in after["rooms"])
        # Shelves change while live (listed, delisted): the same product is paired by its id.
        earlier = {(w, p["product_id"]): p for w, shelf in before["shelves"].items() for p in shelf}
        grew = [
            (a["sale_num"], earlier[(w, a["product_id"])]["sale_num"])
            for w, shelf in after["shelves"].items() for a in shelf
            if (w, a["product_id"]) in earlier and a["sale_num"] is not None
        ]
        assert all(a >= b for a, b in grew) and any(a > b for a, b in grew)
        process.set_config(block_rate=1.0)
        web_rid = next(iter(rooms))
        assert enter(process, web_rid).body == b""
        blocked = process.get(f"{LIVE}/{web_rid}", cookies=TTWID)
        assert (
            blocked.status == 200
            and b"<title>\xe9\xaa\x8c\xe8\xaf\x81\xe7\xa0\x81\xe4\xb8\xad\xe9\x97\xb4\xe9\xa1\xb5" in blocked.body
        )
        process.set_config(block_rate=0.0, rate_limit=1.0)
        answers = [enter(process, web_rid).body for _ in range(6)]
        assert b"" in answers and any(a for a in answers), "over the limit: empty bodies, as Douyin's risk control"
    finally:
        process.stop()
