"""livefleet's Redis core: one connection pool per process, and the name of every key."""
