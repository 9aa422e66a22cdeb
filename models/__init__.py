"""livefleet's data models: pydantic records (entities), normalizers, mongoengine documents.

Models depend on nothing else in livefleet; spiders, pipelines and the fleet use them.
"""

from models.entities import (
    PLATFORMS,
    RECORD_TYPES,
    Product,
    ProductSnapshot,
    QuarantineRecord,
    Record,
    Room,
    RoomSnapshot,
    Streamer,
)

__all__ = [
    "PLATFORMS",
    "RECORD_TYPES",
    "Product",
    "ProductSnapshot",
    "QuarantineRecord",
    "Record",
    "Room",
    "RoomSnapshot",
    "Streamer",
]
