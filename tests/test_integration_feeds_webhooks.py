"""Webhooks against a real HTTP receiver on 127.0.0.1 and the real Redis: signed deliveries of the
matching changes only, retries with backoff, failures kept and replayed."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from crawlers.cli.main import main
from crawlers.feeds.publish import FeedPublisher, publisher_client
from crawlers.feeds.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDispatcher,
    register_webhook,
    replay_failures,
    verify_signature,
    webhook_failures,
)
from crawlers.queue.origin import set_origin
from crawlers.redis.keys import FleetKeys
from models.entities import ProductSnapshot, Room
from tests.crawl_helpers import wait_for

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SECRET = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _allow_local_receivers(monkeypatch) -> None:
    """The receivers listen on 127.0.0.1, which webhooks may reach only when the operator allows it."""
    monkeypatch.setenv("LIVEFLEET_WEBHOOK_ALLOW", "127.0.0.0/8")


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers the scripted statuses (then 200)."""

    def __init__(self, port: int = 0, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def prefix(redis_server) -> str:
    return f"t{uuid.uuid4().hex[:6]}"


def _publish(url: str, prefix: str, origins: list[dict[str, str]]) -> None:
    records = []
    for i, origin in enumerate(origins):
        at = T0 + timedelta(seconds=i)
        room = Room(platform="douyin", room_id=f"r{i}", fetched_at=at, viewers_now=i)
        snap = ProductSnapshot(platform="douyin", product_id=f"p{i}", captured_at=at, price=1.5)
        for record in (room, snap):
            set_origin(record, origin)
        records += [room, snap]
    publisher = FeedPublisher(publisher_client(url), prefix)
    assert publisher.publish(records)
    publisher.close()


def _dispatch(redis_client, prefix: str, **kwargs) -> WebhookDispatcher:
    dispatcher = WebhookDispatcher(redis_client, prefix, consumer="d1", backoff=0.05, **kwargs)
    try:
        while dispatcher.run_once():
            pass
    finally:
        dispatcher.close()
    return dispatcher


def _events(receiver: Receiver) -> list[dict]:
    return [event for _, body in receiver.requests for event in json.loads(body)["events"]]


def test_matching_changes_are_delivered_signed_and_a_tampered_body_fails(redis_server, redis_client, prefix,
                                                                        receiver):
    campaign = register_webhook(redis_client, prefix, campaign="top-rooms", url=receiver.url, secret=SECRET)
    watched = register_webhook(redis_client, prefix, monitor="m42", url=receiver.url + "?m", secret="other")
    _publish(redis_server.url, prefix, [
        {"crawl": "top-rooms-20261101T1200Z"}, {"crawl": "top-rooms-20261101T1300Z"},
        {"crawl": "top-rooms-douyin-20261101T1200Z"},  # another campaign whose name starts the same
        {"crawl": "adhoc", "monitor": "m42"}, {},
    ])
    dispatcher = _dispatch(redis_client, prefix)
    assert (dispatcher.delivered, dispatcher.failed) == (4, 0)  # two collections x two subscriptions
    by_sub: dict[str, list[dict]] = {}
    for headers, body in receiver.requests:
        by_sub.setdefault(json.loads(body)["subscription"], []).extend(json.loads(body)["events"])
        secret = SECRET if json.loads(body)["subscription"] == campaign.id else "other"
        assert headers[SIGNATURE_HEADER].startswith("sha256=")
        assert verify_signature(secret, body, headers)
        assert not verify_signature(secret, body.replace(b'"douyin"', b'"taobao"'), headers), "tampered body"
        assert not verify_signature("wrong secret", body, headers)
        stale = {**headers, TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) - 3600)}
        assert not verify_signature(secret, body, stale), "a timestamp outside the tolerance"
    assert sorted((e["collection"], e["doc"].get("room_id") or e["doc"]["product_id"]) for e in by_sub[campaign.id]) \
        == [("product_snapshots", "p0"), ("product_snapshots", "p1"), ("rooms", "r0"), ("rooms", "r1")]
    assert {(e["doc"].get("room_id") or e["doc"]["product_id"], e["monitor"]) for e in by_sub[watched.id]} == {
        ("r3", "m42"), ("p3", "m42")}
    assert {e["op"] for e in by_sub[campaign.id]} == {"upsert", "insert"}
    # Every feed message was acknowledged by the dispatcher's group, delivered or not.
    for collection in ("rooms", "product_snapshots"):
        assert redis_client.xpending(FleetKeys(prefix).feed(collection), "livefleet-webhooks")["pending"] == 0


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(redis_server, redis_client, prefix):
    receiver = Receiver(statuses=[500, 503])
    try:
        register_webhook(redis_client, prefix, monitor="m1", url=receiver.url, secret=SECRET)
        _publish(redis_server.url, prefix, [{"monitor": "m1"}])
        started = time.monotonic()
        dispatcher = WebhookDispatcher(redis_client, prefix, consumer="d1", backoff=0.2,
                                       collections=["rooms"])
        assert dispatcher.run_once() == 1
        dispatcher.close()
        assert time.monotonic() - started >= 0.2 + 0.4  # backed off, doubling
        assert (dispatcher.delivered, dispatcher.failed) == (1, 0)
        assert len(receiver.requests) == 3
        bodies = {body for _, body in receiver.requests}
        assert len(bodies) == 1, "the same body each attempt"
        assert all(verify_signature(SECRET, body, headers) for headers, body in receiver.requests)
        assert webhook_failures(redis_client, prefix) == []
    finally:
        receiver.close()


def test_a_dead_receiver_ends_in_failures_and_replay_delivers_once_it_is_back(redis_server, redis_client, prefix,
                                                                              monkeypatch, tmp_path, capsys):
    gone = Receiver()
    url, port = gone.url, gone.server.server_address[1]
    gone.close()  # nothing listens there now
    sub = register_webhook(redis_client, prefix, campaign="nightly", url=url, secret=SECRET)
    _publish(redis_server.url, prefix, [{"crawl": "nightly-20261101T0000Z"}])
    dispatcher = _dispatch(redis_client, prefix, attempts=3)
    assert (dispatcher.delivered, dispatcher.failed) == (0, 2)
    failures = webhook_failures(redis_client, prefix)
    assert [(f["subscription"], f["attempts"]) for f in failures] == [(sub.id, 3), (sub.id, 3)]
    assert "ConnectionRefusedError" in failures[0]["error"] or "Connection refused" in failures[0]["error"]
    for name, value in {"REDIS_URL": redis_server.url, "MONGO_URI": "mongodb://127.0.0.1:1/",
                        "LIVEFLEET_VAR_DIR": str(tmp_path), "LIVEFLEET_KEY_PREFIX": prefix}.items():
        monkeypatch.setenv(name, value)
    assert main(["webhooks", "failures"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [json.loads(f["body"])["events"][0]["doc"]["type"] for f in listed] == ["room", "product_snapshot"]
    assert main(["webhooks", "replay", "--attempts", "1"]) == 1  # still down: both kept
    assert "delivered=0 failed=2" in capsys.readouterr().out
    assert len(webhook_failures(redis_client, prefix)) == 2
    back = Receiver(port=port)
    try:
        assert main(["webhooks", "replay"]) == 0
        assert "delivered=2 failed=0" in capsys.readouterr().out
        assert webhook_failures(redis_client, prefix) == []
        assert sorted(e["doc"]["type"] for e in _events(back)) == ["product_snapshot", "room"]
        assert all(verify_signature(SECRET, body, headers) for headers, body in back.requests)
        assert replay_failures(redis_client, prefix) == {"delivered": 0, "failed": 0, "no_subscription": 0}
        assert len(back.requests) == 2, "each delivered once"
    finally:
        back.close()


def test_a_refusing_receiver_is_not_retried(redis_server, redis_client, prefix):
    receiver = Receiver(statuses=[410])
    try:
        register_webhook(redis_client, prefix, monitor="m9", url=receiver.url, secret=SECRET)
        _publish(redis_server.url, prefix, [{"monitor": "m9"}])
        dispatcher = _dispatch(redis_client, prefix, collections=["rooms"])
        assert len(receiver.requests) == 1 and dispatcher.failed == 1
        (failure,) = webhook_failures(redis_client, prefix)
        assert (failure["status"], failure["attempts"], failure["error"]) == (410, 1, "HTTP 410")
    finally:
        receiver.close()


def test_the_long_running_dispatcher_delivers_as_changes_arrive(redis_server, redis_client, prefix, receiver):
    register_webhook(redis_client, prefix, monitor="live", url=receiver.url, secret=SECRET)
    dispatcher = WebhookDispatcher(redis_client, prefix, consumer="d1")
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), kwargs={"poll": 0.05})
    thread.start()
    try:
        for n in range(3):
            _publish(redis_server.url, prefix, [{"monitor": "live"}])
            wait_for("the deliveries", lambda n=n: len(_events(receiver)) >= 2 * (n + 1), 10, interval=0.02)
            assert len(_events(receiver)) == 2 * (n + 1)
    finally:
        stop.set()
        thread.join(10)
        dispatcher.close()
    assert not thread.is_alive() and dispatcher.failed == 0
