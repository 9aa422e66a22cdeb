"""``python -m crawlers`` is the ``livefleet`` command."""

import sys

from crawlers.cli.main import main

sys.exit(main())
