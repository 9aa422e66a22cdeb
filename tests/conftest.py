"""Shared test setup: the plugins that start real servers (Redis, the MongoDB-compatible
server, the sandbox, tinyproxies) as subprocesses on 127.0.0.1, and the store's writer on them.

Every test that starts a server carries ``pytest.mark.integration``, so ``pytest -m "not integration"``
is the fast loop. Collection fails, naming the tests, when one reaches a server without the marker:
through a fixture of the plugins (directly or through its own fixtures), or by calling a server
starter from its body or from one of its fixtures.
"""

from __future__ import annotations

import types

import pytest

pytest_plugins = ["tests.plugins.services", "tests.plugins.sandbox", "tests.plugins.store", "tests.plugins.proxies",
                  "tests.plugins.artifacts"]

#: The plugins' fixtures that start a server or stand on one (a test's fixture closure includes
#: the fixtures its fixtures use, so a module fixture built on these is seen too).
SERVER_FIXTURES = frozenset({"redis_server", "mongo_server", "sandbox", "redis_client", "mongo_client", "mongo_db",
                             "cli_env", "writer", "proxies", "start_extra_proxy"})
#: Names that start a server when a test or fixture body calls them: embedded Redis and SecantusDB,
#: the sandbox, worker fleets, uvicorn, an HTTP server thread, Playwright's Chromium, tinyproxy.
SERVER_STARTERS = frozenset({"EmbeddedRedis", "EmbeddedMongo", "ensure_services", "start_sandbox", "Fleet",
                             "run_crawl", "uvicorn", "ThreadingHTTPServer", "sync_playwright", "async_playwright",
                             "start_proxy", "start_proxies"})


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names a function's code (and the functions nested in it) uses."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _starts_a_server(item: pytest.Item) -> str | None:
    """What makes ``item`` an integration test, or None."""
    fixtures = set(getattr(item, "fixturenames", ())) & SERVER_FIXTURES
    if fixtures:
        return f"uses {', '.join(sorted(fixtures))}"
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:
        functions += [d.func for defs in info.name2fixturedefs.values() for d in defs]
    for function in functions:
        code = getattr(function, "__code__", None)
        calls = _names(code) & SERVER_STARTERS if code is not None else set()
        if calls:
            return f"{function.__name__} calls {', '.join(sorted(calls))}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = []
    for item in items:
        if item.get_closest_marker("integration") is None and (why := _starts_a_server(item)):
            unmarked.append(f"  {item.nodeid}: {why}")
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} tests start a server but are not marked integration (add "
            "`pytestmark = pytest.mark.integration` after the imports, or mark the test):\n" + "\n".join(unmarked))
