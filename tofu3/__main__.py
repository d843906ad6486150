"""``python -m tofu3``."""

import sys

from tofu3.cli import main

sys.exit(main())
