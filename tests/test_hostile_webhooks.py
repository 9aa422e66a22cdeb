"""Hostile webhooks: URLs aimed at the fleet's own network, receivers that hang, subscriptions stored broken.

Bounds: every refusal names its reason and takes no DNS and no connection
(all of them together in < 1 s); a hanging receiver delays the good one's
events by < 2 s per round (its own timeout is 5 s, two attempts); one
POST to a receiver that never answers ends within its timeout + 1 s; a
subscription stored broken is parked at the first round and costs the good
one neither an event nor a duplicate.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from crawlers.cli.main import main
from crawlers.feeds.webhooks import check_url
from crawlers.redis.keys import FleetKeys

REFUSED = [
    ("http://127.0.0.1:6379/", "loopback address 127.0.0.1"),
    ("http://127.255.255.254/", "loopback address"),
    ("http://169.254.169.254/latest/meta-data/", "link-local address 169.254.169.254"),
    ("http://10.0.0.5/hook", "private address 10.0.0.5"),
    ("http://172.16.3.4/hook", "private address 172.16.3.4"),
    ("http://172.31.255.255/hook", "private address"),
    ("http://192.168.1.1/hook", "private address 192.168.1.1"),
    ("http://100.100.100.200/latest/meta-data", "100.100.100.200"),  # Alibaba's metadata, shared space
    ("http://0.0.0.0:6379/", "unspecified address 0.0.0.0"),
    ("http://224.0.0.1/", "multicast address 224.0.0.1"),
    ("http://240.0.0.1/", "reserved address 240.0.0.1"),
    ("http://255.255.255.255/", "address 255.255.255.255"),
    ("http://[::1]:6379/", "loopback address ::1"),
    ("http://[::]/", "unspecified address ::"),
    ("http://[fe80::1]/", "link-local address fe80::1"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "private address fd00:ec2::254"),  # AWS metadata over IPv6
    ("http://[ff02::1]/", "multicast address ff02::1"),
    ("http://[::ffff:169.254.169.254]/", "link-local address 169.254.169.254, inside the IPv6 address"),
    ("http://[::ffff:127.0.0.1]:6379/", "loopback address 127.0.0.1, inside the IPv6 address"),
    ("http://[::ffff:a00:5]/", "private address 10.0.0.5, inside the IPv6 address"),
    ("http://[::127.0.0.1]/", "loopback address 127.0.0.1, inside the IPv6 address"),  # IPv4-compatible
    ("http://[64:ff9b::a9fe:a9fe]/", "link-local address 169.254.169.254, inside the IPv6 address"),  # NAT64
    ("http://[2002:a9fe:a9fe::1]/", "link-local address 169.254.169.254, inside the IPv6 address"),  # 6to4
    ("http://[2002:7f00:1::]/", "loopback address 127.0.0.1, inside the IPv6 address"),
    ("http://[fe80::1%25eth0]/", "scoped IPv6 address"),
    ("http://localhost:6379/", "a name of this machine or of a metadata service"),
    ("http://LOCALHOST./", "a name of this machine or of a metadata service"),
    ("http://redis.localhost/", "a name of this machine or of a metadata service"),
    ("http://metadata.google.internal/computeMetadata/v1/", "'metadata.google.internal', a name of this machine"),
    ("http://metadata/computeMetadata/v1/", "a name of this machine or of a metadata service"),
    ("http://instance-data/latest/", "a name of this machine or of a metadata service"),
    ("http://metadata.goog/", "a name of this machine or of a metadata service"),
    ("http://2130706433/", "four decimal numbers"),
    ("http://0x7f000001/", "four decimal numbers"),
    ("http://0177.0.0.1/", "four decimal numbers"),
    ("http://0x7f.0.0.1/", "four decimal numbers"),
    ("http://127.1/", "four decimal numbers"),
    ("http://017700000001/", "four decimal numbers"),
    ("http://0/", "four decimal numbers"),
    ("http://hooks.example.com/a b", "a space"),
    ("http://hooks.example.com/\x00", "a control character"),
    ("http://hooks.example.com/x\r\nX-Injected: 1", "a control character"),
    ("http://hooks.example.com/\tx", "a control character"),
    ("http://hooks.example.com/\x7f", "a control character"),
    ("http://hooks.ex\u00e4mple.com/", "a non-ASCII character"),
    ("http://hooks.example.com\u3002evil/", "a non-ASCII character"),
    ("http://hooks.example.com\\@127.0.0.1/", "a backslash"),
    ("http://user:pass@hooks.example.com/", "userinfo"),
    ("http://hooks.example.com@127.0.0.1:6379/", "userinfo"),
    ("http://@127.0.0.1/", "userinfo"),
    ("file:///etc/passwd", "http:// or https://"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "http:// or https://"),
    ("dict://127.0.0.1:6379/info", "http:// or https://"),
    ("ftp://hooks.example.com/", "http:// or https://"),
    ("http:///nohost", "http:// or https://"),
    ("http://hooks.example.com:99999/", "port"),
    ("http://hooks.example.com:0/", "port"),
    ("http://hooks.example.com/" + "a" * 3000, "at most 2048 characters"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED, ids=[repr(u)[:60] for u, _ in REFUSED])
def test_a_hostile_url_is_refused_with_its_reason(url, reason, monkeypatch):
    monkeypatch.delenv("LIVEFLEET_WEBHOOK_ALLOW", raising=False)
    with pytest.raises(ValueError) as refused:
        check_url(url)
    assert reason in str(refused.value)


def test_all_refusals_are_quick_and_need_no_dns(monkeypatch):
    monkeypatch.delenv("LIVEFLEET_WEBHOOK_ALLOW", raising=False)
    from crawlers.feeds.urlcheck import UrlRefused

    started = time.monotonic()
    for url, _ in REFUSED:
        with pytest.raises(UrlRefused):
            check_url(url, resolver=_no_resolver)
    assert time.monotonic() - started < 1.0


def _no_resolver(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} should have been refused before any DNS lookup")


def test_the_allow_list_lets_named_receivers_through_and_nothing_else():
    from crawlers.feeds.urlcheck import UrlRefused

    allow = "127.0.0.1:8765,hooks.internal,10.1.0.0/16,[::1]:9000"
    assert check_url("http://127.0.0.1:8765/hook", allow)
    assert check_url("http://10.1.2.3/hook", allow)
    assert check_url("http://[::1]:9000/hook", allow)
    assert check_url("https://hooks.internal/h", allow, resolver=lambda host, port: ["10.9.9.9"])
    for url in ("http://127.0.0.1:6379/", "http://10.2.0.1/", "http://[::1]:6379/", "http://localhost:8765/"):
        with pytest.raises(UrlRefused):
            check_url(url, allow)
    # a name resolving to one public and one private address is refused (the answer could be either)
    with pytest.raises(UrlRefused, match=r"hooks.example.com resolves to 127.0.0.1"):
        check_url("http://hooks.example.com/", "", resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    assert check_url("http://hooks.example.com/", "", resolver=lambda host, port: ["93.184.216.34"])
    with pytest.raises(ValueError, match="LIVEFLEET_WEBHOOK_ALLOW"):
        check_url("http://a.example/", "not a host!")


# -- against real receivers ------------------------------------------------------------------------------------


class Hanging:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    server = Hanging()
    yield server
    server.close()


@pytest.fixture
def prefix(redis_server, monkeypatch) -> str:
    monkeypatch.setenv("LIVEFLEET_WEBHOOK_ALLOW", "127.0.0.0/8")
    return f"h{uuid.uuid4().hex[:6]}"


@pytest.mark.integration
def test_a_hanging_receiver_delays_only_its_own_deliveries(redis_server, redis_client, prefix, hanging):
    from crawlers.feeds.webhooks import WebhookDispatcher, register_webhook
    from tests.test_integration_feeds_webhooks import Receiver, _events, _publish

    good = Receiver()
    register_webhook(redis_client, prefix, monitor="m1", url=hanging.url, secret="s")
    register_webhook(redis_client, prefix, monitor="m1", url=good.url, secret="s")
    dispatcher = WebhookDispatcher(redis_client, prefix, consumer="d1", timeout=5, attempts=2, backoff=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=dispatcher.run, args=(stop,), kwargs={"poll": 0.05})
    thread.start()
    try:
        for n in range(3):
            started = time.monotonic()
            _publish(redis_server.url, prefix, [{"monitor": "m1"}])
            deadline = started + 2.0
            while len(_events(good)) < 2 * (n + 1) and time.monotonic() < deadline:
                time.sleep(0.02)
            took = time.monotonic() - started
            assert len(_events(good)) == 2 * (n + 1), f"round {n}: the good receiver waited {took:.1f}s"
        assert hanging.accepted, "the hanging receiver was tried (and holds its own worker only)"
    finally:
        stop.set()
        thread.join(10)
        started = time.monotonic()
        dispatcher.close(drain=False)
        closing = time.monotonic() - started
        good.close()
    assert not thread.is_alive()
    assert closing < 2.0, f"close() waited {closing:.1f}s for the hanging receiver"


@pytest.mark.integration
def test_one_post_to_a_receiver_that_never_answers_ends_within_its_timeout(hanging):
    from crawlers.feeds.delivery import post

    started = time.monotonic()
    with pytest.raises(TimeoutError, match="no complete answer within 1s"):
        post(hanging.url, b"{}", {}, 1.0, allow="127.0.0.1")
    assert time.monotonic() - started < 2.0


@pytest.mark.integration
def test_the_connection_goes_to_the_checked_address_with_the_names_host_header(monkeypatch):
    from crawlers.feeds.delivery import post
    from crawlers.feeds.urlcheck import UrlRefused
    from tests.test_integration_feeds_webhooks import Receiver

    good = Receiver()
    try:
        port = good.server.server_address[1]
        url = f"http://hooks.test:{port}/hook"
        assert post(url, b"{}", {}, 5.0, allow=f"127.0.0.1:{port}", resolver=lambda h, p: ["127.0.0.1"]) == 200
        (headers, _), = good.requests
        assert headers["Host"] == f"hooks.test:{port}"
        # the same name answering a metadata address at delivery time gets no connection at all
        with pytest.raises(UrlRefused, match="169.254.169.254"):
            post(url, b"{}", {}, 5.0, allow=f"127.0.0.1:{port}", resolver=lambda h, p: ["169.254.169.254"])
        assert len(good.requests) == 1
    finally:
        good.close()


def _store_raw(redis_client, prefix: str, sub_id: str, url: str, monitor: str) -> None:
    """A subscription as an older livefleet stored it: no check on the way in."""
    redis_client.hset(FleetKeys(prefix).webhooks, sub_id, json.dumps(
        {"id": sub_id, "url": url, "secret": "s", "campaign": None, "monitor": monitor, "created_at": "2026"}))


@pytest.mark.integration
def test_subscriptions_stored_broken_are_parked_and_cost_the_good_one_nothing(
        redis_server, redis_client, prefix, hanging, monkeypatch, tmp_path, capsys):
    from crawlers.feeds.webhooks import WebhookDispatcher, list_webhooks, register_webhook
    from tests.test_integration_feeds_webhooks import Receiver, _events, _publish

    good = Receiver()
    monkeypatch.setenv("LIVEFLEET_WEBHOOK_ALLOW", f"127.0.0.1:{good.server.server_address[1]}")
    try:
        register_webhook(redis_client, prefix, monitor="m1", url=good.url, secret="s")
        _store_raw(redis_client, prefix, "space", good.url + "/a b", "m1")
        _store_raw(redis_client, prefix, "control", good.url + "/\r\nX-Injected: 1", "m1")
        _store_raw(redis_client, prefix, "redis", hanging.url, "m1")  # loopback, not on the allow-list
        redis_client.hset(FleetKeys(prefix).webhooks, "garbage", b"{not json")
        _publish(redis_server.url, prefix, [{"monitor": "m1"}])
        for _restart in range(2):  # a dispatcher started twice: no crash, no duplicate
            dispatcher = WebhookDispatcher(redis_client, prefix, consumer="d1", backoff=0.05)
            while dispatcher.run_once():
                pass
            dispatcher.close()
        assert sorted(e["doc"]["type"] for e in _events(good)) == ["product_snapshot", "room"]
        assert len(good.requests) == 2 and not hanging.accepted
        for collection in ("rooms", "product_snapshots"):
            assert redis_client.xpending(FleetKeys(prefix).feed(collection), "livefleet-webhooks")["pending"] == 0
        parked = {s.id: s.parked_reason for s in list_webhooks(redis_client, prefix) if s.parked}
        assert set(parked) == {"space", "control", "redis", "garbage"}
        assert "a space" in parked["space"] and "a control character" in parked["control"]
        assert "loopback address 127.0.0.1" in parked["redis"] and "unreadable" in parked["garbage"]

        # shown by the CLI, and re-enabled once the operator allows the receiver: its waiting events arrive
        for name, value in {"REDIS_URL": redis_server.url, "MONGO_URI": "mongodb://127.0.0.1:1/",
                            "LIVEFLEET_VAR_DIR": str(tmp_path), "LIVEFLEET_KEY_PREFIX": prefix}.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        assert main(["webhooks", "list"]) == 0
        listed = {d["id"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
        assert "loopback address" in listed["redis"]["parked_reason"] and "secret" not in listed["redis"]
        assert main(["webhooks", "enable", "--id", "redis"]) == 2
        assert "loopback address" in capsys.readouterr().err
        redirected = Receiver()
        _store_raw(redis_client, prefix, "redis", redirected.url, "m1")  # the operator fixed the URL
        redis_client.hset(FleetKeys(prefix).webhooks, "redis", json.dumps(
            {**json.loads(redis_client.hget(FleetKeys(prefix).webhooks, "redis")), "parked_at": "x",
             "parked_reason": "was refused"}))
        monkeypatch.setenv("LIVEFLEET_WEBHOOK_ALLOW", "127.0.0.0/8")
        assert main(["webhooks", "enable", "--id", "redis"]) == 0
        dispatcher = WebhookDispatcher(redis_client, prefix, consumer="d1", backoff=0.05)
        dispatcher.run_once()
        dispatcher.close()
        assert sorted(e["doc"]["type"] for e in _events(redirected)) == ["product_snapshot", "room"]
        redirected.close()
    finally:
        good.close()


@pytest.mark.integration
def test_a_receiver_failing_every_delivery_is_parked_after_the_limit(redis_server, redis_client, prefix):
    from crawlers.feeds.webhooks import WebhookDispatcher, list_webhooks, register_webhook, webhook_failures
    from tests.test_integration_feeds_webhooks import Receiver, _publish

    gone = Receiver(statuses=[410] * 10)
    try:
        sub = register_webhook(redis_client, prefix, monitor="m1", url=gone.url, secret="s")
        for _ in range(4):
            _publish(redis_server.url, prefix, [{"monitor": "m1"}])
        dispatcher = WebhookDispatcher(redis_client, prefix, consumer="d1", park_after=3, count=1,
                                       collections=["rooms"])
        while dispatcher.run_once():
            pass
        dispatcher.close()
        (parked,) = list_webhooks(redis_client, prefix)
        assert parked.id == sub.id and parked.parked_reason == "3 deliveries in a row failed, the last: HTTP 410"
        assert len(gone.requests) == 3 and len(webhook_failures(redis_client, prefix)) == 3
        assert dispatcher.parked == 1
    finally:
        gone.close()
