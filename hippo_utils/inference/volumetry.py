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


def partial_volumes(
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_of: dict[int, int],
    voxel_mm3: float,
    boxes: list[tuple[slice, ...] | None] | None = None,
) -> dict[int, float]:
    """Partial-volume estimate, mm^3, of each label value in ``class_of`` (label -> class).

    A counted volume gives a boundary voxel 0 or 1 whatever the model thought of it; here
    each voxel of a label, and of the one-voxel shell around it, counts its probability of
    the label's class, so that a voxel the model puts at 0.4 counts 0.4 (as FreeSurfer's
    partial-volume corrected ``Volume_mm3`` beside ``NVoxels``, which corrects from the
    intensities instead). The probabilities are the model's, not measured tissue fractions:
    an estimate, checked against the truth in benchmarks/RESULTS.md.

    Within a class no probability is counted twice: the shell leaves out the voxels of
    another label of the same class (the other hemisphere of a merged left/right class),
    and a voxel in the shells of two such labels counts half to each.

    Args:
        labels: the label map written (source values) on the volume's grid.
        probabilities: (X, Y, Z, C) class probabilities in the same axis order; only those
            within one voxel of a label are read (a view is fine).
        boxes: ``scipy.ndimage.find_objects(labels)``, when the caller has it already.
    """
    from scipy import ndimage

    out = {}
    found = ndimage.find_objects(labels) if boxes is None else boxes  # each value's bounding box, in one pass
    for value, cls in class_of.items():
        if value > len(found) or found[value - 1] is None:
            out[value] = 0.0
            continue
        # the label's bounding box and one voxel around it (the shell lies inside), in a box
        # one voxel larger still (where another label's shell reaching into it is seen)
        outer = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in found[value - 1])
        box = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in found[value - 1])
        inner = tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer, strict=True))
        near = labels[outer]
        own = near[inner] == value
        weight = ndimage.binary_dilation(near == value)[inner].astype(np.float32)
        shared = np.ones_like(weight)
        for other in (v for v, c in class_of.items() if c == cls and v != value):
            weight[near[inner] == other] = 0
            shared += ndimage.binary_dilation(near == other)[inner] & ~own
        out[value] = float((probabilities[box][..., cls] * weight / shared).sum(dtype=np.float64)) * voxel_mm3
    return out


def volumetry(labels: np.ndarray, volume: Volume, cfg: Config, probabilities: np.ndarray | None = None) -> dict:
    """Volume in mm^3 per label and in total, and each label's voxel count; left, right and
    asymmetry index when the config names the left/right labels. AI = (L - R) / ((L + R) / 2).

    With ``probabilities`` (the model's (X, Y, Z, C) on the volume's grid) the mm^3 are
    partial-volume estimates (:func:`partial_volumes`); without, voxel counts times the
    voxel volume (a label file alone). The ``*_voxels`` columns count the label file's voxels
    either way.
    """
    from scipy import ndimage

    voxel_mm3 = volume.voxel_mm3
    found = ndimage.find_objects(labels)  # each value's box: counted there, not over the whole head
    counts = np.zeros(256, np.int64)
    for value, box in enumerate(found, start=1):
        if box is not None:
            counts[value] = np.count_nonzero(labels[box] == value)
    values = sorted(v for v, cls in cfg.derive.label_map.items() if cls)  # not those mapped to the background
    if probabilities is None:
        mm3 = {v: float(counts[v]) * voxel_mm3 for v in values}
    else:
        class_of = {v: cfg.derive.label_map[v] for v in values}
        mm3 = partial_volumes(labels, probabilities, class_of, voxel_mm3, boxes=found)
    row: dict[str, float] = {}
    for v in values:
        row[f"label_{v}_mm3"] = round(mm3[v], 2)
        row[f"label_{v}_voxels"] = int(counts[v])
    row["total_mm3"] = round(sum(mm3.values()), 2)
    lr = cfg.infer.left_right_labels
    if lr is not None:
        left, right = (mm3[v] if v in mm3 else float(counts[v]) * voxel_mm3 for v in lr)
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
