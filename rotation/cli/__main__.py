"""``python -m rotation.cli``: the same as the ``akv-rotator`` console script."""

import sys

from rotation.cli import main

sys.exit(main())
