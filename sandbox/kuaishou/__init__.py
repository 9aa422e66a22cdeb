"""The Kuaishou replica: its world, payloads and routes (``routes``)."""
