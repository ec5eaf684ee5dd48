"""``python -m fakeserver``: the ``lxd-fake`` command line."""

import sys

from .cli import main

sys.exit(main())
