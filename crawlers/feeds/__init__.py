"""Feeds: every stored change, published to a Redis Stream per collection, and webhooks.

* :mod:`crawlers.feeds.pipeline`: the feeds stage, after the store
  (``ITEM_PIPELINES`` 400). The store announces each batch it wrote (the
  ``pipelines.signals.batch_stored`` signal) and knows nothing of the feeds;
  this stage publishes it.
* :mod:`crawlers.feeds.publish`: the publisher. After each batch is
  written to MongoDB it adds one stream message per record to
  ``FleetKeys.feed(collection)`` and counts the records of each crawl, in one
  pipelined round trip; what Redis cannot take waits in memory, then on disk,
  and is published when Redis is back.
* :mod:`crawlers.feeds.streams`: reading a feed with a consumer group
  (:class:`~crawlers.feeds.streams.FeedReader`), ``livefleet feed read|info``.
* :mod:`crawlers.feeds.webhooks`: subscriptions per campaign or monitor, the
  signed, retried deliveries, the failures kept for replay (``livefleet webhooks``).

The message format is documented in ``docs/feeds.md``.
"""

from crawlers.feeds.message import COLLECTIONS, FeedMessage

__all__ = ["COLLECTIONS", "FeedMessage"]
