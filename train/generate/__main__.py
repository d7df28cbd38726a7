"""``python -m train.generate``."""

import sys

from train.generate.cli import main

sys.exit(main())
