"""Table tests of the mtop H5 signing helpers (spiders/taobao/sign.py).

Known vectors were computed outside Python (``printf '%s' '<token>&<t>&<appKey>&<data>' |
md5sum``) and are checked again here against hashlib on the spec string.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from spiders.taobao.sign import (
    APP_KEY,
    JSV,
    mtop_data,
    mtop_sign,
    mtop_url,
    parse_ret,
    resign_url,
    token_expired,
    token_from_cookie,
)

TOKEN = "e1c6a1f4b3d2c5a6978897a6b5c4d3e2"
T = "1717236000000"
DATA = '{"liveId":"523417747786","creatorId":null}'
BASE = "https://h5api.m.taobao.com"
API = "mtop.mediaplatform.live.livedetail"

# (token, t, appKey, data, md5 hex computed with md5sum)
VECTORS = [
    (TOKEN, T, APP_KEY, DATA, "7d62b4ce2399027920b30422d28cd848"),
    ("abc", "1", "12574478", "{}", "82e4858577a3f3756dcc35b9d3128f2a"),
    ("tok", "1700000000000", "12574478", '{"q":"乒乓球拍 2"}', "3d0336f24986b612904e6e7afda2dd12"),
]


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


@pytest.mark.parametrize(("token", "t", "app_key", "data", "expected"), VECTORS)
def test_sign_known_vectors(token: str, t: str, app_key: str, data: str, expected: str) -> None:
    spec = f"{token}&{t}&{app_key}&{data}"
    assert hashlib.md5(spec.encode("utf-8")).hexdigest() == expected
    assert mtop_sign(token, t, app_key, data) == expected


def test_sign_is_lowercase_hex_and_order_matters() -> None:
    sign = mtop_sign(TOKEN, T, APP_KEY, DATA)
    assert len(sign) == 32 and sign == sign.lower() and int(sign, 16) >= 0
    assert mtop_sign(T, TOKEN, APP_KEY, DATA) != sign


@pytest.mark.parametrize(
    ("cookie", "expected"),
    [
        (f"{TOKEN}_1717236000000", (TOKEN, 1717236000000)),
        (f'"{TOKEN}_1717236000000"', (TOKEN, 1717236000000)),
        (f" {TOKEN}_1717236000000 ", (TOKEN, 1717236000000)),
        (TOKEN, (TOKEN, None)),
        (f"{TOKEN}_", (TOKEN, None)),
        (f"{TOKEN}_soon", (TOKEN, None)),
        (f"{TOKEN}_1717236000000_x", (TOKEN, None)),
    ],
)
def test_token_from_cookie(cookie: str, expected: tuple[str, int | None]) -> None:
    assert token_from_cookie(cookie) == expected


@pytest.mark.parametrize("cookie", ["", "   ", "_1717236000000", '""'])
def test_token_from_cookie_refuses_no_token(cookie: str) -> None:
    with pytest.raises(ValueError, match="no token"):
        token_from_cookie(cookie)


@pytest.mark.parametrize(
    ("cookie", "now", "expired"),
    [
        (f"{TOKEN}_1000", 999, False),
        (f"{TOKEN}_1000", 1000, True),
        (f"{TOKEN}_1000", 5000, True),
        (TOKEN, 10**15, False),  # no expiry: the gateway decides
    ],
)
def test_token_expired(cookie: str, now: int, expired: bool) -> None:
    assert token_expired(cookie, now) is expired


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"liveId": "1", "creatorId": None}, '{"liveId":"1","creatorId":null}'),
        ({"itemNumId": "546416107509"}, '{"itemNumId":"546416107509"}'),
        ({"q": "乒乓球拍", "n": 20}, '{"q":"乒乓球拍","n":20}'),
        ('{"liveId": "1"}', '{"liveId": "1"}'),  # a string is sent (and signed) as given
    ],
)
def test_mtop_data(data: object, expected: str) -> None:
    assert mtop_data(data) == expected  # type: ignore[arg-type]


def test_mtop_url_layout_and_signature() -> None:
    url = mtop_url(BASE, API, "4.0", {"liveId": "523417747786", "creatorId": None}, token=TOKEN, t=T)
    assert url.startswith(f"{BASE}/h5/{API}/4.0/?")
    assert _query(url) == [
        ("jsv", JSV),
        ("appKey", APP_KEY),
        ("t", T),
        ("sign", "7d62b4ce2399027920b30422d28cd848"),
        ("api", API),
        ("v", "4.0"),
        ("type", "jsonp"),
        ("dataType", "jsonp"),
        ("callback", "mtopjsonp1"),
        ("data", DATA),
    ]


def test_mtop_url_json_variant_and_sandbox_base() -> None:
    base = "http://127.0.0.1:8080/h5api.m.taobao.com/"
    url = mtop_url(base, API, "4.0", DATA, token=TOKEN, t=T, jsonp=False)
    assert url.startswith(f"http://127.0.0.1:8080/h5api.m.taobao.com/h5/{API}/4.0/?")
    query = dict(_query(url))
    assert (query["type"], query["dataType"]) == ("originaljson", "json")
    assert "callback" not in query


def test_mtop_url_sends_exactly_what_it_signed() -> None:
    # Spaces, plus signs, ampersands and CJK survive the round trip through the URL.
    data = {"q": "a+b c&d=e 乒乓", "n": "20"}
    url = mtop_url(BASE, "mtop.x", "1.0", data, token="tok", t=123, app_key="999")
    query = dict(_query(url))
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    assert query["data"] == text and query["t"] == "123" and query["appKey"] == "999"
    assert query["sign"] == hashlib.md5(f"tok&123&999&{text}".encode()).hexdigest()
    assert "+" not in urlsplit(url).query  # a literal + would be read back as a space


def test_resign_keeps_data_bytes_and_replaces_t_and_sign() -> None:
    url = mtop_url(BASE, API, "4.0", {"liveId": "1", "q": "乒 乓+"}, token="old", t="1")
    again = resign_url(url, token="new", t="2")
    before, after = urlsplit(url).query.split("&"), urlsplit(again).query.split("&")
    assert [p for p in before if not p.startswith(("t=", "sign="))] == [
        p for p in after if not p.startswith(("t=", "sign="))
    ]
    query = dict(_query(again))
    assert query["t"] == "2"
    assert query["sign"] == mtop_sign("new", "2", APP_KEY, query["data"])
    assert again.split("?")[0] == url.split("?")[0]


def test_resign_foreign_url_decodes_like_the_server() -> None:
    # A URL encoded by another client (form encoding: + for space, lower-case escapes, appKey
    # of its own) is re-signed for the data text the gateway will decode.
    url = "https://h5api.m.taobao.com/h5/mtop.x/1.0/?appKey=34675810&t=1&sign=x&data=%7b%22q%22%3a%22a+b%22%7d&api=mtop.x"
    again = resign_url(url, token="tok", t="9")
    assert "data=%7b%22q%22%3a%22a+b%22%7d" in again
    assert dict(_query(again))["sign"] == mtop_sign("tok", "9", "34675810", '{"q":"a b"}')


def test_resign_adds_missing_t_and_sign_before_data() -> None:
    url = f"{BASE}/h5/mtop.x/1.0/?api=mtop.x&data=%7B%7D#frag"
    again = resign_url(url, token="tok", t="5")
    assert again == (
        f"{BASE}/h5/mtop.x/1.0/?api=mtop.x&t=5&sign={mtop_sign('tok', '5', APP_KEY, '{}')}&data=%7B%7D#frag"
    )


@pytest.mark.parametrize("url", [f"{BASE}/h5/mtop.x/1.0/", f"{BASE}/h5/mtop.x/1.0/?t=1&sign=2"])
def test_resign_needs_data(url: str) -> None:
    with pytest.raises(ValueError, match="no data parameter"):
        resign_url(url, token="tok", t="1")


@pytest.mark.parametrize(
    ("ret", "expected"),
    [
        (["SUCCESS::调用成功"], [("SUCCESS", "调用成功")]),
        (["FAIL_SYS_TOKEN_EMPTY::令牌为空"], [("FAIL_SYS_TOKEN_EMPTY", "令牌为空")]),
        (["FAIL_SYS_TOKEN_EXOIRED::令牌过期"], [("FAIL_SYS_TOKEN_EXOIRED", "令牌过期")]),
        (
            ["FAIL_SYS_USER_VALIDATE", "RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"],
            [("FAIL_SYS_USER_VALIDATE", ""), ("RGV587_ERROR", "SM::哎哟喂,被挤爆啦,请稍后重试")],
        ),
        (["ERRCODE_QUERY_DETAIL_FAIL::宝贝不存在"], [("ERRCODE_QUERY_DETAIL_FAIL", "宝贝不存在")]),
        ([], []),
        ((" SUCCESS :: ok ",), [("SUCCESS", "ok")]),
    ],
)
def test_parse_ret(ret: list[str], expected: list[tuple[str, str]]) -> None:
    assert parse_ret(ret) == expected


@pytest.mark.parametrize("ret", ["SUCCESS::调用成功", None, [1], {"SUCCESS": 1}])
def test_parse_ret_refuses_non_lists(ret: object) -> None:
    with pytest.raises(ValueError, match="list of strings"):
        parse_ret(ret)  # type: ignore[arg-type]
