"""livefleet settings: every default in one place.

``settings.config`` reads the environment (the only module that does);
``settings.scrapy_settings`` is the Scrapy settings module named by scrapy.cfg.
"""
