"""Notebook tests run with the tiny CI config unless HIPPO_CONFIG says otherwise.

nbval starts each kernel with this process's environment, so setting it here reaches
the notebooks.
"""

import os
from pathlib import Path

os.environ.setdefault("HIPPO_CONFIG", str(Path(__file__).resolve().parent / "configs" / "ci.config"))
