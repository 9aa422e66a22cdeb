"""What landed in MongoDB: counts per collection (and per platform)."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient

from models.documents import COLLECTIONS as STORED
from models.sessions import LiveSession

#: What the summary counts: the store's collections, then the sessions built from them.
COLLECTIONS = (*STORED, LiveSession.collection)


def collection_counts(uri: str, db_name: str) -> dict[str, int]:
    """``{"streamers": n, "rooms": n, ...}`` for every collection of the contract."""
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        db = client[db_name]
        return {name: db[name].count_documents({}) for name in COLLECTIONS}


def platform_counts(uri: str, db_name: str) -> dict[str, dict[str, int]]:
    """``{"bilibili": {"rooms": n, ...}, ...}``."""
    result: dict[str, dict[str, int]] = {}
    with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        db = client[db_name]
        for name in COLLECTIONS:
            pipeline: list[dict[str, Any]] = [{"$group": {"_id": "$platform", "n": {"$sum": 1}}}]
            for row in db[name].aggregate(pipeline):
                result.setdefault(str(row["_id"]), {})[name] = int(row["n"])
    return result
