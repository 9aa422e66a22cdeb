"""Pytest plugin: the store's bulk writer on a per-test database of the real MongoDB-compatible server.

- ``writer``: a :class:`BulkWriter` on ``mongo_db`` with the contract's indexes created.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.p300_store import close_store, ensure_indexes, open_store
from pipelines.store.writer import BulkWriter


@pytest.fixture
def writer(mongo_server, mongo_db) -> Iterator[BulkWriter]:
    client, db = open_store(mongo_server.url, mongo_db.name)
    assert ensure_indexes()
    yield BulkWriter(db, retries=2, backoff=0.01)
    close_store(client)
