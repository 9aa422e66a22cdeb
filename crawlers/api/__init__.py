"""The fleet over HTTP: ``livefleet api`` (FastAPI, OpenAPI at ``/openapi.json``)."""
