"""Bilibili Live: pure parsers of the live APIs (pages.py) and their kind detection (detect.py)."""
