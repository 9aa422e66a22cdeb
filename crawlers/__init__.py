"""The livefleet fleet: CLI, Redis queue, services, campaigns, monitors and the sandbox."""
