"""``python -m crawlers`` is the ``livefleet`` command."""

import sys

from crawlers.cli import main

sys.exit(main())
