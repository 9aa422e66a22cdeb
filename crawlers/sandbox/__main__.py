"""``python -m crawlers.sandbox``: run the sandbox server (see ``crawlers.sandbox.server``)."""

from crawlers.sandbox.server import main

raise SystemExit(main())
