"""Alerts sent through ``send_alert`` to local imitations of the robots (``tests.plugins.robots``), which
check every signature from their own copy of the secret, the way the real services do."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from crawlers.alerts.robots import EVENTS, Alert, RobotDelivery, render_text, send_alert
from crawlers.feeds.urlcheck import AllowList
from tests.plugins.robots import RATE_LIMITED, RobotReceiver, serve_robots

pytestmark = pytest.mark.integration

DINGTALK_SECRET = "SECc0ffee0ddba11dingtalk5ecret"
FEISHU_SECRET = "feishu-5ecret-9d8f7e"
WEBHOOK_SECRET = "whsec-livefleet-alerts"
SECRETS = {"dingtalk": DINGTALK_SECRET, "feishu": FEISHU_SECRET, "wecom": None, "webhook": WEBHOOK_SECRET}
TOKENS = ("dt-token-7f3a9c", "fs-token-1b2c3d", "wc-key-4e5f6a", "dt-unsigned-token")
LOOPBACK = AllowList.parse("127.0.0.0/8")
DATA = {"stream_started": {}, "stream_ended": {"duration_s": 4980, "peak_viewers": 12345, "gmv_low": 12000,
                                               "gmv_high": 15000},
        "product_listed": {"product_id": "3589", "title": "面霜", "price": 99},
        "product_delisted": {"product_id": "3589", "title": "面霜"},
        "price_cut": {"product_id": "3589", "price": 79, "old_price": 99},
        "viewers_crossed": {"threshold": 10000, "viewers": 10234}}


def alert(event: str = "stream_ended") -> Alert:
    return Alert(event=event, platform="douyin", streamer_id="MS4wLjAB", streamer_name="小杨", session_id="7350001",
                 room_id="7350001", at=datetime.now(timezone(timedelta(hours=8))), data=DATA[event])


@pytest.fixture
def robots() -> Iterator[RobotReceiver]:
    with serve_robots(dingtalk={TOKENS[0]: DINGTALK_SECRET, TOKENS[3]: None}, feishu={TOKENS[1]: FEISHU_SECRET},
                      wecom={TOKENS[2]}, webhook_secret=WEBHOOK_SECRET, keywords=("livefleet",)) as receiver:
        yield receiver


def send(robots: RobotReceiver, kind: str, event: str = "stream_ended", **options: Any) -> RobotDelivery:
    options.setdefault("secret", SECRETS[kind])
    options.setdefault("url", robots.url(kind))
    options.setdefault("allow", LOOPBACK)
    options.setdefault("backoff", 0.01)
    return send_alert(kind, options.pop("url"), options.pop("secret"), alert(event), timeout=5.0, **options)


def assert_no_secret(result: RobotDelivery) -> None:
    shown = repr(result)
    for secret in (DINGTALK_SECRET, FEISHU_SECRET, WEBHOOK_SECRET, *TOKENS):
        assert secret not in shown


@pytest.mark.parametrize("kind", ["dingtalk", "feishu", "wecom", "webhook"])
def test_every_event_reaches_every_robot_and_passes_its_checks(robots: RobotReceiver, kind: str) -> None:
    for event in EVENTS:
        result = send(robots, kind, event)
        assert (result.ok, result.attempts, result.refused) == (True, 1, False), result
        assert_no_secret(result)
    received = robots.of(kind)
    assert [r.accepted for r in received] == [True] * len(EVENTS)
    title = render_text(alert("stream_ended"))[0]
    ended = received[EVENTS.index("stream_ended")].json
    if kind == "dingtalk":
        assert ended["markdown"]["title"] == title and set(received[0].query) == {"access_token", "timestamp", "sign"}
    elif kind == "feishu":
        assert ended["content"]["post"]["zh_cn"]["title"] == title and {"timestamp", "sign"} <= set(ended)
    elif kind == "wecom":
        assert ended["markdown"]["content"].startswith(f"### {title}")
    else:
        assert ended["alert"]["title"] == title
        assert received[0].headers["x-livefleet-delivery"] == alert("stream_started").key


def test_a_dingtalk_robot_without_signing_takes_the_alert_unsigned(robots: RobotReceiver) -> None:
    result = send(robots, "dingtalk", secret=None, url=robots.url("dingtalk", TOKENS[3]))
    assert result.ok
    assert set(robots.of("dingtalk")[0].query) == {"access_token"}


@pytest.mark.parametrize(("kind", "code", "status"), [("dingtalk", 310000, 200), ("feishu", 19021, 200),
                                                      ("webhook", None, 401)])
def test_a_wrong_secret_is_refused_and_not_retried(robots: RobotReceiver, kind: str, code: int | None,
                                                   status: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="crawlers.alerts"):
        result = send(robots, kind, secret="not-the-secret", attempts=4)
    assert (result.ok, result.attempts, result.status, result.code, result.refused) == (False, 1, status, code, False)
    assert len(robots.of(kind)) == 1 and not robots.of(kind)[0].accepted
    assert_no_secret(result)
    assert "not-the-secret" not in caplog.text and all(t not in caplog.text for t in TOKENS)
    assert "not delivered" in caplog.text


@pytest.mark.parametrize(("kind", "error"), [("dingtalk", "invalid timestamp"), ("feishu", "sign match fail")])
def test_a_signature_more_than_an_hour_old_is_refused(robots: RobotReceiver, kind: str, error: str) -> None:
    result = send(robots, kind, now=time.time() - 2 * 3600)
    assert not result.ok and result.attempts == 1 and error in (result.error or "")
    assert send(robots, kind, now=time.time() - 1800).ok  # within the hour


@pytest.mark.parametrize("kind", ["dingtalk", "feishu", "wecom", "webhook"])
def test_a_rate_limited_robot_is_tried_again_until_it_takes_the_alert(robots: RobotReceiver, kind: str) -> None:
    robots.rate_limit(kind, 2)
    result = send(robots, kind, attempts=3)
    assert (result.ok, result.attempts) == (True, 3), result
    assert [r.accepted for r in robots.of(kind)] == [False, False, True]
    assert_no_secret(result)
    assert [r.answer for r in robots.of(kind)[:2]] == [RATE_LIMITED[kind][1]] * 2  # signature checked first


def test_a_robot_rate_limited_for_longer_than_the_attempts_gives_up(robots: RobotReceiver) -> None:
    robots.rate_limit("wecom", 5)
    result = send(robots, "wecom", attempts=3)
    assert (result.ok, result.attempts, result.code) == (False, 3, 45009)
    assert "api freq out of limit" in (result.error or "") and len(robots.of("wecom")) == 3


def test_a_wrong_wecom_key_is_refused_without_showing_it(robots: RobotReceiver) -> None:
    result = send(robots, "wecom", url=robots.url("wecom", "wc-key-wrong-0000"), attempts=3)
    assert (result.ok, result.attempts, result.code) == (False, 1, 93000)
    assert "wc-key-wrong-0000" not in repr(result) and result.url.endswith("key=***")


def test_a_message_without_the_robots_keyword_is_refused(robots: RobotReceiver) -> None:
    robots.keywords = ("直播间",)
    result = send(robots, "feishu", attempts=3)
    assert (result.ok, result.attempts, result.code) == (False, 1, 19024)


def test_loopback_is_refused_unless_the_operator_allows_it(robots: RobotReceiver) -> None:
    result = send(robots, "dingtalk", allow="")
    assert result.refused and not result.ok and result.attempts == 1
    assert robots.of("dingtalk") == []
    assert_no_secret(result)


def test_the_secret_never_appears_in_any_result(robots: RobotReceiver) -> None:
    results = [send(robots, kind, event) for kind in SECRETS for event in EVENTS]
    results += [send(robots, kind, secret="wrong") for kind in ("dingtalk", "feishu", "webhook")]
    for result in results:
        assert_no_secret(result)
        assert json.dumps(result.__dict__, ensure_ascii=False).count("***") >= (1 if result.kind != "webhook" else 0)
