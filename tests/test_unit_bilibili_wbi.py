"""WBI signing against the vectors Bilibili's public API notes publish (known answers).

Vector 1: SocialSisterYi/bilibili-API-collect docs/misc/sign/wbi.md
  @ cfc5fddcc8a94b74d91970bb5b4eaeb349addc47 (2026-01-23): the nav answer (code -101)
  with img_key 7cd084941338484aae1ad9425b84077c / sub_key 4932caff0ff746eab6f01bf08b70ac45,
  mixin_key ea1db124af3c7062474693fa704f4ff8, params {foo: '114', bar: '514', zab: 1919810},
  wts 1702204169 -> w_rid 8f6f2b5b3d485fe1886cec6a0be8c5d4, and the encoding example.
Vector 2: the same file as it was @ 27308c22c83e14bb67ac39425574dfbe32aa0b89 (2023-12-10),
  with the keys of that day: img_key 653657f524a547ac981ded72ea172057 / sub_key
  6e4909c702f846728e64f6007736a338, mixin_key 72136226c6a73669787ee4fd02a74c27, the same
  params, wts 1684746387 -> w_rid 90efcab09403023875b8516f07e9f9de.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from spiders.bilibili import wbi

NAV_2026 = (
    '{"code":-101,"message":"账号未登录","ttl":1,"data":{"isLogin":false,"wbi_img":{"img_url":'
    '"https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png","sub_url":'
    '"https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png"}}}'
).encode()
PARAMS = {"foo": "114", "bar": "514", "zab": 1919810}

VECTORS = [
    pytest.param("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45",
                 "ea1db124af3c7062474693fa704f4ff8", 1702204169, "8f6f2b5b3d485fe1886cec6a0be8c5d4",
                 id="wbi.md@cfc5fddc"),
    pytest.param("653657f524a547ac981ded72ea172057", "6e4909c702f846728e64f6007736a338",
                 "72136226c6a73669787ee4fd02a74c27", 1684746387, "90efcab09403023875b8516f07e9f9de",
                 id="wbi.md@27308c22"),
]  # fmt: skip


def test_the_table_is_a_permutation_of_64() -> None:
    assert sorted(wbi.MIXIN_KEY_ENC_TAB) == list(range(64))


def test_keys_come_from_a_logged_out_nav_answer() -> None:
    keys = wbi.keys_from_nav(NAV_2026)
    assert keys == ("7cd084941338484aae1ad9425b84077c", "4932caff0ff746eab6f01bf08b70ac45")


@pytest.mark.parametrize("payload", [b'{"code":-101,"data":{"isLogin":false}}', b'{"code":0}',
                                     b'{"data":{"wbi_img":{"img_url":"","sub_url":"x"}}}'])
def test_a_nav_answer_without_keys_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        wbi.keys_from_nav(payload)


@pytest.mark.parametrize(("img", "sub", "mixin", "wts", "w_rid"), VECTORS)
def test_known_answers(img: str, sub: str, mixin: str, wts: int, w_rid: str) -> None:
    keys = wbi.WbiKeys(img, sub)
    assert wbi.mixin_key(img, sub) == keys.mixin == mixin
    assert wbi.sign(PARAMS, keys, wts) == {"w_rid": w_rid, "wts": str(wts)}
    assert wbi.sign(PARAMS, mixin, wts)["w_rid"] == w_rid  # a bare mixin key does as well


def test_the_doc_final_query() -> None:
    url = "https://api.bilibili.com/x/test?foo=114&bar=514&zab=1919810"
    signed = wbi.sign_url(url, wbi.WbiKeys("7cd084941338484aae1ad9425b84077c",
                                           "4932caff0ff746eab6f01bf08b70ac45"), 1702204169)
    assert urlsplit(signed).query == "foo=114&bar=514&zab=1919810&w_rid=8f6f2b5b3d485fe1886cec6a0be8c5d4&wts=1702204169"
    # Signing again (a retry, a later download) replaces the old signature.
    again = wbi.sign_url(signed, wbi.WbiKeys("7cd084941338484aae1ad9425b84077c",
                                             "4932caff0ff746eab6f01bf08b70ac45"), 1702204170)
    assert [k for k, _ in parse_qsl(urlsplit(again).query)] == ["foo", "bar", "zab", "w_rid", "wts"]
    assert dict(parse_qsl(urlsplit(again).query))["wts"] == "1702204170"


def test_encoding_is_encode_uri_component() -> None:
    # wbi.md's example: upper-case hex, space as %20.
    assert wbi._query({"foo": "one one four", "bar": "五一四", "baz": 1919810}.items()) == (
        "bar=%E4%BA%94%E4%B8%80%E5%9B%9B&baz=1919810&foo=one%20one%20four"
    )


def test_reserved_marks_are_dropped_from_values_only() -> None:
    assert wbi._query([("k", "a!b'c(d)e*f~g"), ("a&b", "x y")]) == "a%26b=x%20y&k=abcdef~g"


def test_bad_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        wbi.mixin_key("short", "keys")
