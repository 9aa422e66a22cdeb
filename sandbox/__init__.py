"""The sandbox: a local replica of the live-commerce platforms over a seeded, evolving fake world.

Spiders reach it instead of the internet; it speaks each platform's own format and never
imports livefleet's spiders, models or pipelines. Entry point: ``sandbox.server.main``.
"""
