"""The MongoDB store: record -> bulk operation (``ops``), batched writes with
retry (``writer``), the on-disk spool for when the store is down (``spool``), and the
store's settings (``config``)."""
