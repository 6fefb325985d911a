import sys

from hippo_utils.cli import main

sys.exit(main())
