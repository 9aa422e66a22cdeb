"""Taobao Live and Taobao/Tmall items: pure parsers (pages.py, items.py), kind detection
(detect.py) and mtop request signing (sign.py)."""
