"""Douyin (抖音) live: pure parsers of the room page, the web/app webcast APIs and the shop APIs.

``pages.parse`` is the entry point (its docstring lists the kinds and what each
yields); ``detect`` says what a payload is and reads Douyin's envelopes; ``state``
digs the room state out of a room page; ``rooms``, ``products`` and ``shop`` map
Douyin's objects onto livefleet's records.
"""
