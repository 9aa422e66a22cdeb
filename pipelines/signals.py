"""The pipelines' Scrapy signals: how later stages learn what the store did, without the store knowing them.

``batch_stored``
    Sent by :class:`pipelines.p300_store.StorePipeline` for every batch it got
    into MongoDB: a new batch, or one written back from the spool. Arguments:
    ``result`` (the :class:`pipelines.store.writer.WriteResult`: counts per
    collection, the records as stored, the upserts that created their
    document). It is sent synchronously on the store's thread right after the
    write, before the batch's items complete: a receiver sees a change only
    once it is in MongoDB, and an item is done only once its receivers ran
    (the feeds, ``crawlers.feeds.pipeline``, publish it). Receivers run on that
    thread, so they must not touch the reactor; their errors are logged by
    Scrapy and do not fail the batch.
"""

from __future__ import annotations

batch_stored = object()
