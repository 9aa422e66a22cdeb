"""The chat-robot alerts without a network: signatures against published known answers, the bodies
against the documented examples, the robots' answers, the dedup key, the text, and secrets kept out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from crawlers.alerts.robots import (
    UNKNOWN,
    Alert,
    answer_ok,
    build_request,
    dingtalk_sign,
    feishu_sign,
    redact_url,
    render_text,
    send_alert,
)
from crawlers.feeds.delivery import DELIVERY_HEADER, verify_signature

CST = timezone(timedelta(hours=8))
AT = datetime(2024, 5, 1, 21, 30, tzinfo=CST)
DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=d0c5e2a1b7f3token"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/5e3d587e-feishu-token"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-wecom-key"
WEBHOOK = "https://hooks.example.com/livefleet"


def alert(event: str = "stream_ended", **overrides: Any) -> Alert:
    fields: dict[str, Any] = {"event": event, "platform": "douyin", "streamer_id": "MS4wLjAB", "streamer_name": "小杨",
                              "room_id": "7350000000000000001", "session_id": "7350000000000000001", "at": AT,
                              "data": {"duration_s": 4980, "peak_viewers": 12345, "gmv_estimate": 13500,
                                       "gmv_low": 12000, "gmv_high": 15000}}
    fields.update(overrides)
    return Alert(**fields)


def shape(value: Any) -> Any:
    """A JSON value's structure: its keys and the types of its leaves (the first item of a list)."""
    if isinstance(value, Mapping):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


# -- signatures: known answers -------------------------------------------------------------------------------


def test_dingtalk_sign_matches_the_published_known_answer() -> None:
    # docs.rs crate `dingding` 0.1.1, src/signature.rs, test `creates_expected_signature`: the rule of
    # https://open.dingtalk.com/document/robots/customize-robot-security-settings (HmacSHA256 with the secret
    # as key over "<timestamp ms>\n<secret>", Base64, then URL-encoded) for timestamp 1700000000000, "secret".
    assert quote(dingtalk_sign("secret", "1700000000000"), safe="") == (
        "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D")


def test_dingtalk_request_appends_millisecond_timestamp_and_urlencoded_sign() -> None:
    request = build_request("dingtalk", DINGTALK, "secret", alert(), now=1700000000.0)
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "oapi.dingtalk.com", "/robot/send")
    # The documented URL: ...?access_token=XXXXXX&timestamp=XXX&sign=XXX, sign URL-encoded once.
    assert parts.query == ("access_token=d0c5e2a1b7f3token&timestamp=1700000000000"
                           "&sign=OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D")
    # The same value from the documentation's Python sample, step by step.
    secret, timestamp = "SEC0123456789abcdef", "1714570200123"
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), digestmod=hashlib.sha256)
    signed = build_request("dingtalk", DINGTALK, secret, alert(), now=1714570200.123)
    assert parse_qs(urlsplit(signed.url).query)["timestamp"] == [timestamp]
    assert parse_qs(urlsplit(signed.url).query)["sign"] == [base64.b64encode(mac.digest()).decode()]


def test_dingtalk_without_secret_sends_the_url_as_given() -> None:
    assert build_request("dingtalk", DINGTALK, None, alert(), now=1700000000.0).url == DINGTALK


def test_feishu_sign_uses_the_string_as_key_over_an_empty_message() -> None:
    # https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot, 签名校验, its Python sample:
    #   string_to_sign = '{}\n{}'.format(timestamp, secret)
    #   hmac_code = hmac.new(string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    #   sign = base64.b64encode(hmac_code).decode('utf-8')
    # Known answer ("my-secret-value", 1710000000) from a public third-party test suite
    # (ci_owner_agent feishu_notifier tests), which agrees with the rule; the timestamp 1599360473 is the doc's.
    assert feishu_sign("my-secret-value", "1710000000") == "2iM2rIX295itfpOTtE5kQShIIb5MpehitpjbkbXxhaE="
    key = b"1599360473\nmy-secret-value"
    assert feishu_sign("my-secret-value", "1599360473") == base64.b64encode(
        hmac.new(key, b"", hashlib.sha256).digest()).decode()
    # The common mistake (DingTalk's rule: the secret as key) gives another value, which Feishu refuses.
    dingtalk_style = base64.b64encode(hmac.new(b"my-secret-value", b"1710000000\nmy-secret-value",
                                               hashlib.sha256).digest()).decode()
    assert feishu_sign("my-secret-value", "1710000000") != dingtalk_style


def test_feishu_request_carries_second_timestamp_and_sign_in_the_body() -> None:
    request = build_request("feishu", FEISHU, "my-secret-value", alert(), now=1710000000.9)
    body = json.loads(request.body)
    assert request.url == FEISHU
    assert body["timestamp"] == "1710000000" and body["sign"] == "2iM2rIX295itfpOTtE5kQShIIb5MpehitpjbkbXxhaE="
    assert "timestamp" not in json.loads(build_request("feishu", FEISHU, None, alert(), now=1.0).body)


def test_generic_webhook_is_signed_by_the_feeds_scheme_with_the_alert_key_as_delivery_id() -> None:
    request = build_request("webhook", WEBHOOK, "whsec", alert(), now=1700000000.0)
    assert verify_signature("whsec", request.body, request.headers, now=1700000000.0)
    assert not verify_signature("other", request.body, request.headers, now=1700000000.0)
    assert request.headers[DELIVERY_HEADER] == alert().key
    body = json.loads(request.body)
    assert set(body) == {"alert"}
    assert body["alert"]["key"] == alert().key and body["alert"]["at"] == "2024-05-01T21:30:00+08:00"
    assert body["alert"]["data"]["peak_viewers"] == 12345
    with pytest.raises(ValueError, match="always signed"):
        build_request("webhook", WEBHOOK, None, alert(), now=1.0)


# -- bodies: the documented examples' shapes ------------------------------------------------------------------


def test_dingtalk_body_has_the_documented_markdown_shape() -> None:
    # https://open.dingtalk.com/document/orgapp/custom-robot-access, markdown (without the optional "at").
    documented = {"msgtype": "markdown", "markdown": {"title": "杭州天气", "text": "#### 杭州天气 \n > 9度，西北风1级"}}
    body = json.loads(build_request("dingtalk", DINGTALK, "s", alert(), now=1.0).body)
    assert shape(body) == shape(documented)
    assert body["markdown"]["title"] == "【下播提醒】小杨 下播了 (douyin)"


def test_feishu_body_has_the_documented_signed_post_shape() -> None:
    # https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot: 富文本 (post) and the signed request.
    documented = {"timestamp": "1599360473", "sign": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "msg_type": "post",
                  "content": {"post": {"zh_cn": {"title": "项目更新通知",
                                                 "content": [[{"tag": "text", "text": "项目有更新: "}]]}}}}
    body = json.loads(build_request("feishu", FEISHU, "s", alert(), now=1599360473.0).body)
    assert shape(body) == shape(documented)
    lines = [paragraph[0]["text"] for paragraph in body["content"]["post"]["zh_cn"]["content"]]
    assert "时长 Duration: 1h23m" in lines and "峰值在线 Peak viewers: 12,345" in lines


def test_wecom_body_has_the_documented_markdown_shape_and_ignores_a_secret() -> None:
    # https://developer.work.weixin.qq.com/document/path/91770, markdown类型.
    documented = {"msgtype": "markdown",
                  "markdown": {"content": "实时新增用户反馈<font color=\"warning\">132例</font>"}}
    request = build_request("wecom", WECOM, "ignored", alert(), now=1.0)
    assert shape(json.loads(request.body)) == shape(documented)
    assert request.url == WECOM and request.body == build_request("wecom", WECOM, None, alert(), now=2.0).body


def test_wecom_markdown_is_capped_at_4096_utf8_bytes() -> None:
    long = alert("product_listed", watchlist="榜" * 5000, data={"product_id": "p1", "title": "好货" * 3000})
    content = json.loads(build_request("wecom", WECOM, None, long, now=1.0).body)["markdown"]["content"]
    assert len(content.encode()) <= 4096


@pytest.mark.parametrize(("kind", "url"), [("dingtalk", "https://oapi.dingtalk.com/robot/send"),
                                           ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
                                           ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/"),
                                           ("slack", WEBHOOK)])
def test_a_url_that_is_not_the_robots_is_refused(kind: str, url: str) -> None:
    with pytest.raises(ValueError):
        build_request(kind, url, "s", alert(), now=1.0)


# -- answers ----------------------------------------------------------------------------------------------------

ANSWERS = [
    # (kind, status, body, ok, retryable, code) -- bodies as the services document or were seen to send them
    ("dingtalk", 200, {"errcode": 0, "errmsg": "ok"}, True, False, 0),
    ("dingtalk", 200, {"errcode": 310000, "errmsg": "sign not match"}, False, False, 310000),
    ("dingtalk", 200, {"errcode": 310000, "errmsg": "keywords not in content"}, False, False, 310000),
    ("dingtalk", 200, {"errcode": 310000, "errmsg": "invalid timestamp"}, False, False, 310000),
    ("dingtalk", 200, {"errcode": 300001, "errmsg": "token is not exist"}, False, False, 300001),
    ("dingtalk", 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}, False, True, 130101),
    ("wecom", 200, {"errcode": 0, "errmsg": "ok"}, True, False, 0),
    ("wecom", 200, {"errcode": 45009, "errmsg": "api freq out of limit"}, False, True, 45009),
    ("wecom", 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [x]"}, False, False, 93000),
    ("feishu", 200, {"code": 0, "msg": "success", "data": {}}, True, False, 0),
    ("feishu", 200, {"StatusCode": 0, "StatusMessage": "success"}, True, False, 0),
    ("feishu", 200, {"code": 19021, "data": {}, "msg": "sign match fail or timestamp is not within one hour from "
                     "current time", "StatusCode": 0}, False, False, 19021),
    ("feishu", 200, {"code": 11232, "data": {}, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]"
                     "appID[1500]"}, False, True, 11232),
    ("feishu", 400, {"code": 9499, "msg": "Bad Request", "data": {}}, False, False, 9499),
    ("feishu", 200, {"code": 9499, "msg": "too many request"}, False, True, 9499),
    ("feishu", 200, {"code": 19024, "msg": "Key Words Not Found"}, False, False, 19024),
    ("dingtalk", 502, None, False, True, None),
    ("wecom", 429, {"errcode": 45009}, False, True, 45009),
    ("feishu", 200, None, False, False, None),
    ("dingtalk", 200, {"hello": "world"}, False, False, None),
    ("webhook", 204, None, True, False, None),
    ("webhook", 401, {"error": "bad signature"}, False, False, None),
    ("webhook", 429, None, False, True, None),
    ("webhook", 503, None, False, True, None),
]


@pytest.mark.parametrize(("kind", "status", "body", "ok", "retryable", "code"), ANSWERS)
def test_answers_are_judged_on_status_and_body(kind: str, status: int, body: Any, ok: bool, retryable: bool,
                                               code: int | None) -> None:
    raw = b"" if body is None else json.dumps(body).encode()
    verdict = answer_ok(kind, status, raw if body is not None or kind == "webhook" else b"<html>gateway</html>")
    assert (verdict.ok, verdict.retryable, verdict.code) == (ok, retryable, code), verdict.reason
    if not ok and code is not None:
        assert str(code) in verdict.reason


# -- the alert: key, text ---------------------------------------------------------------------------------------


def test_the_same_event_seen_by_two_workers_has_one_key() -> None:
    first = alert("product_listed", data={"product_id": "3589", "title": "面霜", "price": 99})
    second = alert("product_listed", at=AT + timedelta(seconds=40), streamer_name=None,
                   data={"product_id": "3589", "title": "面霜 旗舰款", "price": "99.00"})
    assert first.key == second.key and len(first.key) == 40
    assert first.key != alert("product_listed", data={"product_id": "3590"}).key
    assert first.key != alert("product_delisted", data={"product_id": "3589"}).key
    assert first.key != alert("product_listed", session_id="7350000000000000002", data={"product_id": "3589"}).key
    assert alert("viewers_crossed", data={"threshold": 10000, "viewers": 10020}).key == alert(
        "viewers_crossed", data={"threshold": "10000.0", "viewers": 11000}).key
    assert alert("viewers_crossed", data={"threshold": 10000}).key != alert(
        "viewers_crossed", data={"threshold": 50000}).key
    assert alert("price_cut", data={"product_id": "1", "price": 19.9}).key == alert(
        "price_cut", data={"product_id": "1", "price": "19.90", "old_price": 25}).key
    assert alert("price_cut", data={"product_id": "1", "price": 19.9}).key != alert(
        "price_cut", data={"product_id": "1", "price": 17.9}).key
    assert alert("stream_started").key == alert("stream_started", data={}, at=AT + timedelta(minutes=2)).key
    assert alert(room_id="r1", session_id=None).key != alert(room_id="r2", session_id=None).key


@pytest.mark.parametrize("bad", [{"event": "went_viral"}, {"platform": "tiktok"}, {"streamer_id": ""},
                                 {"at": datetime(2024, 5, 1, 21, 30)}, {"event": "product_listed", "data": {}},
                                 {"event": "viewers_crossed", "data": {"viewers": 5}}])
def test_an_alert_that_cannot_be_told_or_deduplicated_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        alert(**bad)


def test_stream_ended_text_reads_duration_peak_and_gmv_range() -> None:
    title, text = render_text(alert())
    assert title == "【下播提醒】小杨 下播了 (douyin)"
    assert "时长 Duration**: 1h23m" in text and "峰值在线 Peak viewers**: 12,345" in text
    assert "预估GMV Est. GMV**: ¥1.2万–1.5万" in text and "2024-05-01 21:30:00 UTC+08:00" in text


def test_unknown_values_are_a_dash_never_zero() -> None:
    title, text = render_text(alert(streamer_name=None, data={}))
    assert title == "【下播提醒】MS4wLjAB 下播了 (douyin)"
    for label in ("时长 Duration", "峰值在线 Peak viewers", "预估GMV Est. GMV"):
        assert f"**{label}**: {UNKNOWN}" in text
    assert "¥0" not in text and ": 0" not in text
    _, product = render_text(alert("price_cut", data={"product_id": "9", "price": 59}))
    assert f"**价格 Price**: {UNKNOWN} → ¥59.00" in product and f"**商品 Product**: {UNKNOWN} (9)" in product
    _, started = render_text(alert("stream_started", room_id=None, data={}))
    assert f"**房间 Room**: {UNKNOWN}" in started


def test_every_event_has_its_headline() -> None:
    heads = {"stream_started": ("【开播提醒】小杨 开播了 (douyin)", {}),
             "product_listed": ("【上架提醒】小杨 上架了商品 (douyin)", {"product_id": "1"}),
             "product_delisted": ("【下架提醒】小杨 下架了商品 (douyin)", {"product_id": "1"}),
             "price_cut": ("【降价提醒】小杨 降价了 (douyin)", {"product_id": "1", "price": 80, "old_price": 100}),
             "viewers_crossed": ("【人气提醒】小杨 在线人数突破 10,000 (douyin)",
                                 {"threshold": 10000, "viewers": 10234})}
    for event, (title, data) in heads.items():
        assert render_text(alert(event, data=data))[0] == title
    assert "¥100.00 → ¥80.00 (-20%)" in render_text(alert("price_cut", data=heads["price_cut"][1]))[1]
    assert "**在线 Viewers**: 10,234" in render_text(alert("viewers_crossed", data=heads["viewers_crossed"][1]))[1]


# -- secrets kept out -------------------------------------------------------------------------------------------


def test_urls_are_redacted_for_printing() -> None:
    signed = build_request("dingtalk", DINGTALK, "SECtopsecret", alert(), now=1700000000.0).url
    shown = redact_url(signed)
    assert shown == "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=1700000000000&sign=***"
    assert redact_url(WECOM) == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***"
    assert redact_url(FEISHU) == "https://open.feishu.cn/open-apis/bot/v2/hook/***"
    assert "d0c5e2a1b7f3token" not in repr(build_request("dingtalk", DINGTALK, "SECtopsecret", alert(), now=1.0))


def test_errors_echoing_secrets_and_tokens_are_scrubbed() -> None:
    secret = "SECtopsecret0123456789"

    def echoing(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
        raise OSError(f"connection reset by {url} (secret {secret})")

    result = send_alert("dingtalk", DINGTALK, secret, alert(), allow=None, attempts=2, sleep=lambda s: None,
                        send=echoing)
    assert not result.ok and result.attempts == 2 and "connection reset" in (result.error or "")
    text = repr(result)
    assert secret not in text and "d0c5e2a1b7f3token" not in text and "sign=" not in text.replace("sign=***", "")

    def token_echo(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
        answer = {"code": 19001, "msg": "param invalid: incoming webhook access token invalid 5e3d587e-feishu-token"}
        return 200, json.dumps(answer).encode()

    result = send_alert("feishu", FEISHU, secret, alert(), allow=None, send=token_echo)
    assert not result.ok and result.attempts == 1 and result.code == 19001
    assert "5e3d587e-feishu-token" not in repr(result) and "***" in (result.error or "")


def test_only_retryable_answers_are_retried_with_exponential_backoff() -> None:
    answers = [(200, b'{"errcode":130101,"errmsg":"send too fast"}')] * 2 + [(200, b'{"errcode":0,"errmsg":"ok"}')]
    slept: list[float] = []
    result = send_alert("dingtalk", DINGTALK, "s", alert(), allow=None, attempts=3, backoff=0.5,
                        sleep=slept.append, send=lambda *args: answers.pop(0))
    assert (result.ok, result.attempts, result.code, slept) == (True, 3, 0, [0.5, 1.0])

    calls: list[str] = []

    def refuse(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
        calls.append(url)
        return 200, b'{"errcode":310000,"errmsg":"sign not match"}'

    result = send_alert("dingtalk", DINGTALK, "s", alert(), allow=None, attempts=5, sleep=slept.append, send=refuse)
    assert (result.ok, result.attempts, result.code, len(calls), result.refused) == (False, 1, 310000, 1, False)


def test_a_url_that_is_not_the_robots_ends_the_delivery_as_refused() -> None:
    result = send_alert("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send", None, alert(), allow=None,
                        send=lambda *args: pytest.fail("sent"))
    assert result.refused and not result.ok and "no key" in (result.error or "")
