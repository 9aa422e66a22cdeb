"""The Bilibili replica: its world, payloads and routes (``routes``)."""
