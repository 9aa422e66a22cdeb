"""livefleet's Redis layer, on scrapy-redis's decomposition.

``keys`` names every key, ``connection`` holds one pool per process,
``serialize`` puts requests on the wire as JSON, ``queue`` is the shared
priority queue, ``dupefilter`` the shared seen-set, ``scheduler`` plugs them
into Scrapy, and ``seeds`` feeds spiders from a Redis list.
"""
