"""Kuaishou live: pure parsers (pages.py, app.py, shop.py), page-state extraction and envelopes
(state.py) and kind detection (detect.py). Formats and their public sources: docs/kuaishou_formats.md."""
