"""Pytest plugin: real HTTP proxies (Debian's tinyproxy), each leaving from its own loopback address.

Listed in ``pytest_plugins`` by the top-level conftest. Fixtures:

- ``proxies`` (session): four running :class:`ProxyProcess`, without credentials, leaving from
  127.0.0.11, .12, .13 and .14 (``PROXY_SOURCES``). Shared by the session: tests must not stop
  or kill them (start their own with ``start_extra_proxy`` for that).
- ``start_extra_proxy``: a function ``(source="127.0.0.19", *, auth=None) -> ProxyProcess``
  starting one more proxy for this test (which may kill it); every one still running is
  stopped at the test's end.

A missing tinyproxy is an error, not a skip: ``make install`` installs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from sandbox.proxies import ProxyProcess, start_proxies, start_proxy

__all__ = ["PROXY_SOURCES", "ExtraProxyStarter", "ProxyProcess", "proxies", "start_extra_proxy"]

#: The session proxies' egress addresses, in order.
PROXY_SOURCES = ("127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14")
#: ``start_extra_proxy``'s signature: ``(source, *, auth)``.
ExtraProxyStarter = Callable[..., ProxyProcess]


@pytest.fixture(scope="session")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ProxyProcess]]:
    """Four tinyproxies leaving from 127.0.0.11-14, for the whole test session."""
    workdir = tmp_path_factory.mktemp("proxies")
    started = start_proxies(len(PROXY_SOURCES), first_source=PROXY_SOURCES[0], workdir=workdir)
    try:
        yield started
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def start_extra_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtraProxyStarter]:
    """Start proxies of this test's own (it may kill them); stopped at its end."""
    workdir = tmp_path_factory.mktemp("extra-proxies")
    started: list[ProxyProcess] = []

    def start(source: str = "127.0.0.19", *, auth: tuple[str, str] | None = None) -> ProxyProcess:
        proxy = start_proxy(source, auth=auth, workdir=workdir)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()
