"""The fleet's health: workers' heartbeats and stats in Redis, and ``livefleet status`` reading them."""
