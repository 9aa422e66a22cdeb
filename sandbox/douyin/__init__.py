"""The Douyin replica: its world, payloads and routes (``routes``)."""
