"""Egress identities: proxy URLs parsed, credentials kept out of ids, labels and messages, lists re-read."""

from __future__ import annotations

import logging

import pytest

from crawlers.download.identities import DIRECT, IdentitySource, ProxyError, parse_list, parse_proxy
from crawlers.download.sessions import SessionPool


def test_a_proxy_identity_never_shows_its_credentials():
    identity = parse_proxy("http://alice:s3cr%40t@127.0.0.1:8899")
    assert identity.id.startswith("px-") and identity.label == "http://127.0.0.1:8899"
    assert (identity.username, identity.password) == ("alice", "s3cr@t")
    for shown in (identity.id, identity.label, str(identity), repr(identity)):
        assert "s3cr" not in shown and "alice" not in shown
    # one proxy, one id, whoever lists it and with whatever credentials: the fleet shares its rate and health
    assert parse_proxy("127.0.0.1:8899").id == identity.id == parse_proxy("http://bob:x@127.0.0.1:8899/").id
    assert parse_proxy("https://127.0.0.1:8899").id != identity.id


@pytest.mark.parametrize(("url", "message"), [
    ("socks5://user:hunter2@127.0.0.1:1080", "SOCKS proxies are not supported"),
    ("ftp://127.0.0.1:21", "unsupported proxy scheme"),
    ("http://user:hunter2@127.0.0.1", "needs a host and a port"),
    ("http://user:hunter2@127.0.0.1:8080/path", "no path"),
    ("http://user:hunter2@127.0.0.1:99999", "not a proxy URL"),
])
def test_a_bad_proxy_is_refused_with_a_message_that_keeps_its_secret(url, message):
    with pytest.raises(ProxyError, match=message) as refused:
        parse_proxy(url)
    assert "hunter2" not in str(refused.value)


def test_proxy_lists_in_text_and_in_the_json_shapes_providers_answer():
    assert parse_list("# ours\nhttp://127.0.0.1:1 \n\n127.0.0.2:2  # eu\n") == ["http://127.0.0.1:1", "127.0.0.2:2"]
    assert parse_list('["http://127.0.0.1:1", {"url": "http://127.0.0.1:2"}]') == [
        "http://127.0.0.1:1", "http://127.0.0.1:2"]
    assert parse_list('{"data": [{"ip": "127.0.0.3", "port": 3128}], "code": 0}') == ["127.0.0.3:3128"]
    with pytest.raises(ProxyError):
        parse_list('{"code": 0, "msg": "quota exceeded"}')


def test_settings_file_and_provider_merge_and_direct_is_used_only_without_proxies(tmp_path):
    assert [i.id for i in IdentitySource().current()] == [DIRECT]
    assert IdentitySource(direct="never").current() == ()
    listed = tmp_path / "proxies.txt"
    listed.write_text("http://127.0.0.1:1\nhttp://127.0.0.1:2\n")
    answers = {"now": "http://127.0.0.1:2\nhttp://127.0.0.1:3\n"}
    clock = {"t": 0.0}
    source = IdentitySource(["http://127.0.0.1:1"], proxy_file=str(listed), provider_url="http://127.0.0.1:9/list",
                            refresh_seconds=60, fetch=lambda url, timeout: answers["now"],
                            clock=lambda: clock["t"])
    assert [i.label for i in source.current()] == [f"http://127.0.0.1:{n}" for n in (1, 2, 3)]
    always = IdentitySource(["http://127.0.0.1:1"], direct="always")
    assert [i.id for i in always.current()][0] == DIRECT
    # the provider is asked again only when due; a proxy that leaves its list leaves the identities
    answers["now"] = "http://127.0.0.1:4\n"
    assert not source.refresh()
    clock["t"] = 61
    assert source.refresh()
    assert [i.label for i in source.current()] == [f"http://127.0.0.1:{n}" for n in (1, 2, 4)]


def test_a_failing_provider_keeps_its_last_list_and_says_so_once(caplog):
    answers: dict[str, object] = {"now": "http://127.0.0.1:5\n"}
    clock = {"t": 0.0}

    def fetch(url, timeout):
        if isinstance(answers["now"], Exception):
            raise answers["now"]
        return answers["now"]

    source = IdentitySource(provider_url="http://user:hunter2@127.0.0.1:9/list?apikey=abc123", fetch=fetch,
                            clock=lambda: clock["t"], refresh_seconds=10)
    answers["now"] = OSError("connection refused")
    with caplog.at_level(logging.WARNING):
        for step in range(1, 4):
            clock["t"] = step * 11
            source.refresh()
    assert [i.label for i in source.current()] == ["http://127.0.0.1:5"]
    warnings = [r.getMessage() for r in caplog.records if "provider" in r.getMessage()]
    assert len(warnings) == 1 and "hunter2" not in warnings[0] and "abc123" not in warnings[0]


def test_the_operators_own_list_is_refused_whole_when_one_entry_is_bad():
    with pytest.raises(ProxyError, match="LIVEFLEET_PROXIES"):
        IdentitySource(["http://127.0.0.1:1", "socks5://127.0.0.1:2"])


def test_sessions_belong_to_one_identity_each():
    blocked: list[str] = []
    pool = SessionPool("douyin", 2, cooldown=60, on_block=blocked.append)
    proxy = parse_proxy("http://127.0.0.1:7")
    direct_names = {pool.pick(DIRECT, now=0).name for _ in range(2)}
    proxy_names = {pool.pick(proxy.id, now=0).name for _ in range(2)}
    assert direct_names == {"douyin-0", "douyin-1"}
    assert proxy_names == {f"douyin-{proxy.id}-0", f"douyin-{proxy.id}-1"}
    pool.cool_down(f"douyin-{proxy.id}-1", now=0)
    assert blocked == [proxy.id]  # the block counts against the identity too
    assert {pool.pick(proxy.id, now=1).name for _ in range(3)} == {f"douyin-{proxy.id}-0"}
    assert pool.forget(proxy.id) == [f"douyin-{proxy.id}-0", f"douyin-{proxy.id}-1"]
    assert pool.get(f"douyin-{proxy.id}-0") is None
