"""``python -m sandbox``: run the sandbox server (see ``sandbox.server``)."""

from sandbox.server import main

raise SystemExit(main())
