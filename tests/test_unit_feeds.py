"""Feed messages and webhook signing, without servers."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from crawlers.feeds.message import FeedMessage, message_fields
from crawlers.feeds.webhooks import check_url, is_campaign_crawl, sign, signed_headers, verify_signature
from crawlers.queue.origin import set_origin
from models.entities import Product, QuarantineRecord, RoomSnapshot

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_message_fields_carry_the_schema_document_op_time_and_origin():
    product = Product(platform="taobao", product_id="7", title="茶", fetched_at=T0)
    set_origin(product, {"crawl": "c1", "monitor": "m1"})
    fields = message_fields(product, "2026-11-01T12:00:01.000+00:00")
    assert fields == {"doc": json.dumps(product.to_json_dict(), ensure_ascii=False, separators=(",", ":")),
                      "op": "upsert", "at": "2026-11-01T12:00:01.000+00:00", "crawl": "c1", "monitor": "m1"}
    message = FeedMessage.from_entry("products", b"1-0", {k.encode(): v.encode() for k, v in fields.items()})
    assert message.doc == product.to_json_dict() and message.doc["title"] == "茶"
    assert message.to_json_dict() == {"id": "1-0", "collection": "products", "op": "upsert",
                                      "at": "2026-11-01T12:00:01.000+00:00", "crawl": "c1", "monitor": "m1",
                                      "doc": product.to_json_dict()}
    snap = RoomSnapshot(platform="douyin", room_id="1", captured_at=T0)
    assert message_fields(snap, "t")["op"] == "insert" and "crawl" not in message_fields(snap, "t")
    quarantined = QuarantineRecord(reason="ParseError", quarantined_at=T0)
    assert message_fields(quarantined, "t")["op"] == "quarantine"


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"events": []}'
    expected = hmac.new(b"s", b"1795000000." + body, hashlib.sha256).hexdigest()
    assert sign("s", "1795000000", body) == f"sha256={expected}"
    headers = signed_headers("s", body, now=1795000000)
    assert verify_signature("s", body, headers, now=1795000100)
    assert verify_signature("s", body, {k.lower(): v for k, v in headers.items()}, now=1795000100)
    assert not verify_signature("s", body + b" ", headers, now=1795000100)
    assert not verify_signature("s", body, headers, now=1795000000 + 301)
    assert not verify_signature("s", body, {**headers, "X-Livefleet-Timestamp": "1795000001"}, now=1795000000)
    assert not verify_signature("s", body, {}, now=1795000000)


@pytest.mark.parametrize("url", ["http://hooks.example.com/x", "https://93.184.216.34:8443/hook?a=1"])  # public only
def test_http_urls_are_accepted(url):
    assert check_url(url) == url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/", "gopher://x", "https:///path",
                                 "javascript:alert(1)", "example.com/hook", ""])
def test_other_urls_are_refused(url):
    with pytest.raises(ValueError, match="http:// or https://"):
        check_url(url)


@pytest.mark.parametrize(("crawl", "matches"), [
    ("top-rooms", True), ("top-rooms-20261101T1200Z", True), ("top-rooms-20261101T120501Z-a1b2c3", True),
    ("top-rooms-douyin-20261101T1200Z", False), ("top-roomsX", False), ("top", False), ("", False),
])
def test_a_campaign_subscription_follows_the_campaigns_runs_only(crawl, matches):
    assert is_campaign_crawl("top-rooms", crawl) is matches
