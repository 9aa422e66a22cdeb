"""Pytest plugin: real embedded Redis and MongoDB-compatible servers for tests.

Listed in ``pytest_plugins`` by the top-level conftest (or loaded with
``-p tests.plugins.services``). Fixtures:

- ``redis_server`` (session): an :class:`EmbeddedRedis` in a temporary directory (in memory, no password).
- ``mongo_server`` (session): an :class:`EmbeddedMongo` in a temporary directory.
- ``redis_client``: a redis-py client on ``redis_server``; the database is flushed first.
- ``mongo_client`` (session): a pymongo client on ``mongo_server``.
- ``mongo_db``: a database with a unique name per test, dropped afterwards.
- ``cli_env``: the CLI's environment pointed at these servers (key prefix ``clitest``, var dir in
  ``tmp_path``); returns ``redis_client`` to look at what a command did.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pymongo import MongoClient
from pymongo.database import Database

from crawlers.services import EmbeddedMongo, EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One embedded redis-server for the whole test session."""
    # In memory and without a password: fast, and tests may CONFIG SET (the fleet's own servers are locked
    # down and persistent; tests/test_hostile_redis.py and tests/test_integration_redis_durability.py drill those).
    with EmbeddedRedis(tmp_path_factory.mktemp("redis-server"), persistent=False, secure=False) as server:
        yield server


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    """One embedded SecantusDB for the whole test session."""
    with EmbeddedMongo(tmp_path_factory.mktemp("mongo-server"), secure=False) as server:  # no provisioning: fast
        yield server


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    """A redis-py client (bytes replies) on an empty database 0."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushdb()
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def mongo_client(mongo_server: EmbeddedMongo) -> Iterator[MongoClient[dict[str, Any]]]:
    """A pymongo client on the session's embedded MongoDB."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url, serverSelectionTimeoutMS=10_000)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def mongo_db(
    mongo_client: MongoClient[dict[str, Any]], request: pytest.FixtureRequest
) -> Iterator[Database[dict[str, Any]]]:
    """A database named after the test plus a random suffix; dropped after the test."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    name = f"t_{stem}_{uuid.uuid4().hex[:8]}"
    try:
        yield mongo_client[name]
    finally:
        mongo_client.drop_database(name)


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, redis_server: EmbeddedRedis, redis_client: redis.Redis,
    mongo_server: EmbeddedMongo,
) -> redis.Redis:
    """``livefleet`` commands run in the test on the test servers, under the key prefix ``clitest``."""
    for name, value in {"REDIS_URL": redis_server.url, "MONGO_URI": mongo_server.url,
                        "LIVEFLEET_VAR_DIR": str(tmp_path), "LIVEFLEET_KEY_PREFIX": "clitest"}.items():
        monkeypatch.setenv(name, value)
    return redis_client
