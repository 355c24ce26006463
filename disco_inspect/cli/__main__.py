"""``python -m disco_inspect.cli``."""

import sys

from . import main

sys.exit(main())
