"""Spiders: one package per platform, each with pure parsers (pages.py) and a thin spider."""
