"""What more than one benchmark uses: the repository root, the bootstrap interval of a mean, and the
synthetic heads the volumetry benchmarks score.

The maintained scripts run as files (``benchmarks/`` is their ``sys.path[0]``) and import
``from common import ...``; the experiments run as modules and import ``from benchmarks.common
import ...``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bootstrap_ci(values: np.ndarray, n: int = 10000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean over subjects: the subjects resampled with replacement."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    means = np.random.default_rng(seed).choice(values, size=(n, len(values)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def heads(source_dir: Path, dataset_dir: Path) -> dict[str, list[Path]]:
    """The heads scored: ``unseen`` (the unlabelled ones, which no run or choice may look at) and
    ``valid`` (the validation split's, which the runs select their checkpoint on: settings are
    compared on these)."""
    from hippo_utils.data.derive import read_dataset_meta
    from hippo_utils.data.layouts import find_subjects

    found = find_subjects(source_dir)
    valid = set(read_dataset_meta(dataset_dir)["subjects"]["valid"])
    return {
        "unseen": [s.image for s in found.unlabelled],
        "valid": [s.image for s in found.labelled if s.name in valid],
    }
