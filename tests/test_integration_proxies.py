"""Real proxies between a client and the sandbox: each tinyproxy leaves from its own loopback
address and the sandbox counts requests under that address, a proxy with Basic credentials
refuses requests without them (407), and a killed proxy refuses connections.

Requests go to the proxy with ``http.client`` (an absolute URL in the request line, as any
proxy client sends it): unlike urllib's ``ProxyHandler`` it never skips the proxy because of
a ``no_proxy`` in the environment.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from sandbox import proxies as proxies_module
from sandbox.process import SandboxProcess
from sandbox.proxies import ProxyProcess, ProxyStartError, start_proxy
from tests.plugins.proxies import PROXY_SOURCES, ExtraProxyStarter

pytestmark = pytest.mark.integration

GET_LIST = "/api.live.bilibili.com/room/v1/Area/getList"


def _via(
    proxy: ProxyProcess, url: str, credentials: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """GET ``url`` through ``proxy`` (with Basic ``credentials`` if given): status, headers, body."""
    headers = {"User-Agent": "proxy-test"}
    if credentials is not None:
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("GET", url, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _requests(sandbox: SandboxProcess) -> dict[str, int]:
    return {address: counts["requests"] for address, counts in sandbox.address_stats().items()}


def _grew(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {a: n - before.get(a, 0) for a, n in after.items() if n != before.get(a, 0)}


def test_each_proxy_reaches_the_sandbox_from_its_own_address(
    sandbox: SandboxProcess, proxies: list[ProxyProcess]
) -> None:
    assert [p.source for p in proxies] == list(PROXY_SOURCES) and len({p.port for p in proxies}) == len(proxies)
    assert all(p.alive() and p.url == f"http://127.0.0.1:{p.port}" for p in proxies)
    before = _requests(sandbox)
    for proxy in proxies:
        status, headers, body = _via(proxy, sandbox.url + GET_LIST)
        assert status == 200 and json.loads(body)["code"] == 0, (proxy, status, body[:200])
        assert "via" not in headers, "DisableViaHeader"
    # The sandbox saw each proxy's source address once, and nothing from 127.0.0.1.
    assert _grew(before, _requests(sandbox)) == dict.fromkeys(PROXY_SOURCES, 1)


def test_connect_tunnels_to_the_sandbox_port(sandbox: SandboxProcess, proxies: list[ProxyProcess]) -> None:
    # No ConnectPort line: CONNECT may reach any port, not only 443/563.
    host, port = sandbox.url.removeprefix("http://").split(":")
    before = _requests(sandbox)
    conn = http.client.HTTPConnection("127.0.0.1", proxies[1].port, timeout=10)
    try:
        conn.set_tunnel(host, int(port))
        conn.request("GET", GET_LIST, headers={"User-Agent": "proxy-test"})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["code"] == 0
    finally:
        conn.close()
    assert _grew(before, _requests(sandbox)) == {proxies[1].source: 1}


def test_a_proxy_with_credentials_refuses_requests_without_them(
    sandbox: SandboxProcess, start_extra_proxy: ExtraProxyStarter
) -> None:
    proxy = start_extra_proxy("127.0.0.19", auth=("fleet", "s3cret.pw"))
    assert proxy.url == f"http://fleet:s3cret.pw@127.0.0.1:{proxy.port}"
    before = _requests(sandbox)
    status, headers, _ = _via(proxy, sandbox.url + GET_LIST)
    assert status == 407 and headers["proxy-authenticate"].startswith("Basic")
    # Wrong credentials: tinyproxy 1.11 answers 401 with WWW-Authenticate (not 407), still its own page.
    status, headers, _ = _via(proxy, sandbox.url + GET_LIST, ("fleet", "wrong"))
    assert status in (401, 407) and headers["server"].startswith("tinyproxy")
    status, _, body = _via(proxy, sandbox.url + GET_LIST, ("fleet", "s3cret.pw"))
    assert status == 200 and json.loads(body)["code"] == 0
    assert _grew(before, _requests(sandbox)) == {"127.0.0.19": 1}, "refused requests never reach the sandbox"


def test_a_killed_proxy_refuses_connections(
    sandbox: SandboxProcess, proxies: list[ProxyProcess], start_extra_proxy: ExtraProxyStarter
) -> None:
    proxy = start_extra_proxy("127.0.0.20")
    assert _via(proxy, sandbox.url + GET_LIST)[0] == 200
    proxy.kill()
    assert not proxy.alive() and proxy.proc.returncode == -9
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5).close()
    with pytest.raises(ConnectionRefusedError):
        _via(proxy, sandbox.url + GET_LIST)
    assert proxy.stop() == -9, "stop after kill is harmless"
    assert _via(proxies[0], sandbox.url + GET_LIST)[0] == 200, "the others carry on"


def test_start_retries_on_a_taken_port_and_checks_its_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    picks: list[int] = []
    free_port = proxies_module._free_port

    def pick() -> int:
        picks.append(taken.getsockname()[1] if not picks else free_port())
        return picks[-1]

    monkeypatch.setattr(proxies_module, "_free_port", pick)
    try:
        with start_proxy("127.0.0.21", workdir=tmp_path) as proxy:
            assert proxy.alive() and proxy.port == picks[1] != picks[0]
            assert "Bind 127.0.0.21" in proxy.config_path.read_text()
        assert not proxy.alive() and proxy.proc.returncode == 0
    finally:
        taken.close()
    bad: list[dict[str, Any]] = [
        {"source": "10.0.0.1"},
        {"source": "localhost"},
        {"source": "127.0.0.22", "auth": ("user", "p@ss")},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            start_proxy(workdir=tmp_path, **kwargs)
    monkeypatch.setenv("TINYPROXY", str(tmp_path / "nowhere"))
    with pytest.raises(ProxyStartError, match="make install"):
        start_proxy(workdir=tmp_path)
