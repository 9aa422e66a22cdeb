"""``livefleet``: the command line, one module per command; :mod:`crawlers.cli.main.main` parses and dispatches."""
