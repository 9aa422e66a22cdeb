"""Shared test setup: the plugins that start real servers (Redis, the MongoDB-compatible
server, the sandbox) as subprocesses on 127.0.0.1, and the store's writer on them."""

pytest_plugins = ["tests.plugins.services", "tests.plugins.sandbox", "tests.plugins.store"]
