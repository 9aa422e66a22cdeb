"""Monitor targets: each platform's room/profile URLs and IDs accepted; everything else refused, never fetched."""

from __future__ import annotations

import pytest

from crawlers.monitor.watched import Target, TargetError, parse_target

SEC_UID = "MS4wLjABAAAA" + "a1B2c3D4e5F6g7H8i9J0k_L-m1N2o3P4q5R6s7T8u9V"  # 55 characters

ACCEPTED = [
    ("douyin", "https://live.douyin.com/604946797621", "room", "604946797621"),
    ("douyin", "https://live.douyin.com/604946797621?enter_from_merge=web_search#x", "room", "604946797621"),
    ("douyin", "live.douyin.com/604946797621/", "room", "604946797621"),
    ("douyin", "HTTPS://LIVE.DOUYIN.COM/604946797621", "room", "604946797621"),
    ("douyin", "  604946797621 ", "room", "604946797621"),
    ("douyin", f"https://www.douyin.com/user/{SEC_UID}", "streamer", SEC_UID),
    ("douyin", f"https://www.iesdouyin.com/share/user/{SEC_UID}?from=share", "streamer", SEC_UID),
    ("douyin", SEC_UID, "streamer", SEC_UID),
    ("kuaishou", "https://live.kuaishou.com/u/3x59tkbj2kecvgi", "room", "3x59tkbj2kecvgi"),
    ("kuaishou", "https://www.kuaishou.com/profile/3x59tkbj2kecvgi", "room", "3x59tkbj2kecvgi"),
    ("kuaishou", "ks9874203960", "room", "ks9874203960"),
    ("kuaishou", "https://live.kuaishou.com/u/Chen-0222C", "room", "Chen-0222C"),  # real kwaiIds carry hyphens
    ("taobao", "https://tbzb.taobao.com/live?liveId=523417747786", "room", "523417747786"),
    ("taobao", "https://huodong.m.taobao.com/act/talent/live.html?id=523417747786", "room", "523417747786"),
    ("taobao", "523417747786", "room", "523417747786"),
    ("bilibili", "https://live.bilibili.com/5440", "room", "5440"),
    ("bilibili", "https://live.bilibili.com/blanc/5440?spm=x", "room", "5440"),
    ("bilibili", "https://space.bilibili.com/9617619", "streamer", "9617619"),
    ("bilibili", "5440", "room", "5440"),
]


@pytest.mark.parametrize(("platform", "text", "kind", "ident"), ACCEPTED)
def test_accepted(platform: str, text: str, kind: str, ident: str) -> None:
    target = parse_target(platform, text)
    assert (target.platform, target.kind, target.id) == (platform, kind, ident)
    assert parse_target(platform, target.url) == target  # the canonical URL names the same target


REFUSED = [
    # other hosts, lookalikes and authority tricks
    ("douyin", "https://douyin.com.evil.io/604946797621", "not a douyin host"),
    ("douyin", "https://evil.io/live.douyin.com/604946797621", "not a douyin host"),
    ("douyin", "https://live.douyin.com.evil.io/604946797621", "not a douyin host"),
    ("douyin", "https://evil-live.douyin.com/604946797621", "not a douyin host"),
    ("douyin", "https://live.douyin.com@evil.io/604946797621", "user info"),
    ("douyin", "https://user:pw@live.douyin.com/604946797621", "user info"),
    ("douyin", "https://live.douyin.com:8080/604946797621", "port 8080"),
    ("douyin", "https://live.kuaishou.com/u/3x59tkbj2kecvgi", "not a douyin host"),
    ("bilibili", "https://live.douyin.com/604946797621", "not a bilibili host"),
    # addresses
    ("douyin", "http://127.0.0.1/604946797621", "local or IP address"),
    ("douyin", "http://localhost/604946797621", "local or IP address"),
    ("douyin", "localhost:6379", "local or IP address"),
    ("douyin", "http://[::1]/604946797621", "local or IP address"),
    ("douyin", "http://10.0.0.7/604946797621", "local or IP address"),
    ("douyin", "http://192.168.1.1/604946797621", "local or IP address"),
    ("douyin", "http://169.254.169.254/latest/meta-data", "local or IP address"),
    ("douyin", "http://2130706433/604946797621", "local or IP address"),
    ("douyin", "http://0x7f.1/604946797621", "local or IP address"),
    # schemes
    ("douyin", "file:///etc/passwd", "not file: URLs"),
    ("douyin", "ftp://live.douyin.com/604946797621", "not ftp: URLs"),
    ("douyin", "data:text/html,<b>604946797621</b>", "not data: URLs"),
    ("douyin", "javascript:alert(1)", "not javascript: URLs"),
    ("douyin", "gopher://live.douyin.com/604946797621", "not gopher: URLs"),
    # short links (would have to be fetched)
    ("douyin", "https://v.douyin.com/iRNBho6u/", "short link"),
    ("kuaishou", "https://v.kuaishou.com/abc123", "short link"),
    ("taobao", "https://m.tb.cn/h.5Zxyz", "short link"),
    ("bilibili", "https://b23.tv/abcdef", "short link"),
    # wrong shapes
    ("douyin", "https://live.douyin.com/7312345678901234567", "not a douyin room ID"),  # a session room_id
    ("douyin", "https://live.douyin.com/abc", "not a douyin room ID"),
    ("douyin", "https://live.douyin.com/", "not a douyin room or profile page"),
    ("douyin", "https://www.douyin.com/user/not-a-sec-uid", "not a douyin streamer ID"),
    ("douyin", "https://www.douyin.com/video/7312345678901234567", "not a douyin room or profile page"),
    ("douyin", "12345", "not of the shape"),
    ("douyin", "MS4wLjABAAAAshort", "not of the shape"),
    ("taobao", "https://tbzb.taobao.com/live?id=523417747786", "not a taobao room ID"),
    ("taobao", "https://tbzb.taobao.com/live?liveId=52341x", "not a taobao room ID"),
    ("taobao", "abc", "not of the shape"),
    ("bilibili", "https://live.bilibili.com/abc", "not a bilibili room ID"),
    ("bilibili", "0042", "not of the shape"),
    ("kuaishou", "a", "not of the shape"),
    # junk
    ("douyin", "", "empty"),
    ("douyin", "   ", "empty"),
    ("douyin", "https://live.douyin.com/6049 46797621", "spaces"),
    ("douyin", "https://live.douyin.com\\@evil.io/604946797621", "backslashes"),
    ("nosuch", "604946797621", "unknown platform"),
]


@pytest.mark.parametrize(("platform", "text", "message"), REFUSED)
def test_refused(platform: str, text: str, message: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(platform, text)
    assert message in str(info.value)


def test_trailing_newline_is_stripped() -> None:
    assert parse_target("douyin", "604946797621\n").id == "604946797621"


def test_seed_follows_the_shelf_only() -> None:
    assert parse_target("douyin", "https://live.douyin.com/604946797621").seed() == {
        "kind": "room", "web_rid": "604946797621", "follow": ["products"]}
    # A Douyin profile names no room page: it follows the live room (by handle), then its shelf.
    assert parse_target("douyin", SEC_UID).seed() == {"kind": "streamer", "sec_uid": SEC_UID,
                                                      "follow": ["rooms", "products"]}
    assert parse_target("taobao", "523417747786").seed() == {
        "kind": "room", "live_id": "523417747786", "follow": ["products"]}
    assert parse_target("bilibili", "https://space.bilibili.com/9617619").seed() == {
        "kind": "streamer", "uid": "9617619", "follow": ["rooms"]}
    assert parse_target("kuaishou", "ks9874203960").seed()["principal_id"] == "ks9874203960"


def test_target_round_trips_through_a_dict() -> None:
    target = parse_target("bilibili", "5440")
    assert Target(**target.as_dict()) == target
