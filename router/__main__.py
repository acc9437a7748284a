"""``python -m router`` is ``sora-proxy``."""

import sys

from router.cli import main

sys.exit(main())
