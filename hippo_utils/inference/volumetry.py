"""Hippocampal volumetry: volumes in mm^3 per label and side, the asymmetry index, the
plausibility flags of the ``qc`` column, and the comparison with a known truth (the
synthetic generator's volumes)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from hippo_utils.core.config import Config
from hippo_utils.data.volumes import Volume

ASYMMETRY_THRESHOLD = 0.1  # |AI| above this is read as one-sided atrophy (notebook 05 explains)
# One hippocampus of an adult on T1w MRI, mm^3: the range of the volumes reported in MRI and
# histology studies reviewed by Honeycutt & Smith 1995 (J Neuroimaging 5:95-100), 1.73-5.68 cm^3
# (the spread is mostly the protocols' boundaries). Outside it, look at the segmentation.
ADULT_HIPPOCAMPUS_MM3 = (1730.0, 5680.0)


def asymmetry_index(left: float, right: float) -> float:
    """AI = (L - R) / ((L + R) / 2): positive when the right hippocampus is the smaller."""
    return (left - right) / ((left + right) / 2) if left + right else float("nan")


def flagged_side(ai: float, threshold: float = ASYMMETRY_THRESHOLD) -> str:
    """The side read as shrunken ("left" or "right"), or "" when |AI| is within the threshold."""
    if not np.isfinite(ai) or abs(ai) <= threshold:
        return ""
    return "right" if ai > 0 else "left"


def read_synthetic_truth(source_dir: str | os.PathLike[str]) -> dict[str, dict[str, str]]:
    """The generator's ``synthetic_subjects.csv`` of a synthetic data set, by subject; empty
    for other data."""
    path = Path(source_dir) / "synthetic_subjects.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {row["subject"]: row for row in csv.DictReader(fh)}


def volumetry_against_truth(
    measured: dict[str, dict[str, float]], truth: dict[str, dict], threshold: float = ASYMMETRY_THRESHOLD
) -> list[dict]:
    """Measured left/right volumes beside the true ones, per subject: the relative volume
    errors, the true and measured asymmetry index and the side each flags.

    Args:
        measured: subject -> a volumetry row (``left_mm3``, ``right_mm3``), as
            :func:`hippo_utils.inference.volumetry.volumetry` returns.
        truth: subject -> ``left_mm3``, ``right_mm3`` (numbers or strings), e.g. from
            :func:`read_synthetic_truth`. Subjects without a truth are left out.
    """
    rows = []
    for subject, v in measured.items():
        t = truth.get(subject)
        if not t:
            continue
        left, right = float(v["left_mm3"]), float(v["right_mm3"])
        true_left, true_right = float(t["left_mm3"]), float(t["right_mm3"])
        ai, true_ai = asymmetry_index(left, right), asymmetry_index(true_left, true_right)
        rows.append(
            {
                "subject": subject,
                "left_mm3": round(left, 1),
                "true_left": round(true_left, 1),
                "left_err_%": round(100 * (left / true_left - 1), 1),
                "right_mm3": round(right, 1),
                "true_right": round(true_right, 1),
                "right_err_%": round(100 * (right / true_right - 1), 1),
                "AI": round(ai, 3),
                "true_AI": round(true_ai, 3),
                "AI_err": round(ai - true_ai, 3),
                "flag": flagged_side(ai, threshold) or "-",
                "true_flag": flagged_side(true_ai, threshold) or "-",
                "atrophy_made": t.get("atrophy_side") or "-",
            }
        )
    return rows


def volumetry(labels: np.ndarray, volume: Volume, cfg: Config) -> dict[str, float]:
    """Volume in mm^3 per label and in total; left, right and asymmetry index when the
    config names the left/right labels. AI = (L - R) / ((L + R) / 2)."""
    voxel_mm3 = volume.voxel_mm3
    counts = np.bincount(labels.ravel(), minlength=256)
    row: dict[str, float] = {
        f"label_{v}_mm3": round(float(counts[v]) * voxel_mm3, 2) for v in sorted(set(cfg.derive.label_map))
    }
    row["total_mm3"] = round(float(counts[1:].sum()) * voxel_mm3, 2)
    lr = cfg.infer.left_right_labels
    if lr is not None:
        left, right = float(counts[lr[0]]) * voxel_mm3, float(counts[lr[1]]) * voxel_mm3
        row["left_mm3"], row["right_mm3"] = round(left, 2), round(right, 2)
        row["asymmetry_index"] = round(asymmetry_index(left, right), 4)
    return row


def plausibility_flags(row: dict[str, float], assumed_voxel_size: bool = False) -> str:
    """The ``qc`` column of a volumetry row: what a reader should check, "; "-separated, or
    "ok". Information, not an error.

    Flags an empty prediction; a hippocampus outside :data:`ADULT_HIPPOCAMPUS_MM3` (each side
    when the row has left and right, else the total, as for one-sided crops); an asymmetry
    index beyond :data:`ASYMMETRY_THRESHOLD`; and volumes that rest on an assumed voxel size.
    """
    flags = []
    lo, hi = ADULT_HIPPOCAMPUS_MM3
    if not row.get("total_mm3"):
        flags.append("empty prediction")
    else:
        sides = (
            [("left", row["left_mm3"]), ("right", row["right_mm3"])]
            if "left_mm3" in row
            else [("hippocampus", row["total_mm3"])]
        )
        for side, value in sides:
            if not lo <= value <= hi:
                flags.append(f"{side} {value:.0f} mm3 outside the adult range {lo:.0f}-{hi:.0f}")
        ai = row.get("asymmetry_index", float("nan"))
        if np.isfinite(ai) and abs(ai) > ASYMMETRY_THRESHOLD:
            flags.append(f"asymmetry index {ai:+.3f} beyond +-{ASYMMETRY_THRESHOLD:g}")
    if assumed_voxel_size:
        flags.append("voxel size assumed (--assume-voxel-size): volumes in assumed mm3")
    return "; ".join(flags) or "ok"
