"""``python -m hippo_utils``: the command line (:mod:`hippo_utils.cli`)."""

import sys

from hippo_utils.cli import main

sys.exit(main())
