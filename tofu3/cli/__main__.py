"""``python -m tofu3.cli``."""

import sys

from tofu3.cli import main

sys.exit(main())
