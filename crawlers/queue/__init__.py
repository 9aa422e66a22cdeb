"""livefleet's Redis layer, on scrapy-redis's decomposition.

``keys`` names every key, ``connection`` holds one pool per process,
``serialize`` puts requests on the wire as JSON, ``queue`` is the shared
leased priority queue (a scrapy-redis queue) with per-crawl dedup and dead
letters, ``bloom`` a Bloom filter on plain bitmaps for very large crawls,
``scheduler`` plugs them into Scrapy, and ``seeds`` feeds spiders from a
Redis list.
"""
