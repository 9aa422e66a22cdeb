"""The MongoDB store: record -> bulk operation (``ops``), batched writes with
retry (``writer``), and the on-disk spool for when the store is down (``spool``)."""
