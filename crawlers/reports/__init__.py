"""What landed in MongoDB, read for people and other services: summary counts, rankings, exports."""
