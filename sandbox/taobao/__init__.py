"""The Taobao replica: its world, payloads and routes (``routes``)."""
