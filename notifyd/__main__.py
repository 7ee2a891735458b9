from __future__ import annotations

import sys

from notifyd.cli import main

sys.exit(main())
