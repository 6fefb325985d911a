"""A realistic synthetic stand-in for the Kaggle HFH hippocampus data set.

The real data (Jafari-Khouzani et al. 2011) cannot be downloaded offline, so the
project makes its own default data: T1-weighted-looking heads in exactly the Kaggle
layout and format::

    DEST/Train/HFH_001.hdr + .img                 labelled subjects
    DEST/Train/Labels/HFH_001_Hipp_Labels.hdr + .img
    DEST/Test/HFH_021.hdr + .img                  unlabelled subjects
    DEST/synthetic_subjects.csv                   ground truth of the generator

Volumes are 4D Analyze 7.5 with a singleton last axis, int16, 0.78 x 2.0 x 0.78 mm
voxels, coronal slices along array axis 1 (x: toward the subject's left, y: anterior,
z: superior under nibabel's default Analyze orientation). Labels are 1 = left and
2 = right hippocampus. Some subjects get one shrunken hippocampus, as in temporal lobe
epilepsy, so that volume asymmetry shows later.

Anatomy is analytic, in mm: nested head layers (skin, fat, skull with diploe, CSF),
a folded cortex, white matter, deep grey matter, lateral ventricles with temporal
horns, brainstem, cerebellum, the ambient cistern, amygdalae and two curved
hippocampi built as chains of ellipsoids from head to tail. Then partial-volume blur,
a multiplicative bias field and Rician noise. Everything derives from one seed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from hippo_utils.core.files import atomic_dir, check_replaceable
from hippo_utils.core.locks import folder_lock
from hippo_utils.core.tables import write_csv, write_json

logger = logging.getLogger(__name__)

SPACING = (0.78125, 2.0, 0.78125)
SHAPE = (256, 100, 256)

# Relative T1 intensities (white matter brightest inside the brain, fat brightest overall).
T1 = {
    "air": 0.0,
    "skin": 0.45,
    "fat": 0.95,
    "bone": 0.05,
    "diploe": 0.40,
    "csf": 0.12,
    "gm": 0.52,
    "wm": 0.80,
    "deep_gm": 0.62,
    "brainstem": 0.72,
    "muscle": 0.33,
    "hippo": 0.55,
}

# Healthy left-right asymmetry index AI = (L - R) / ((L + R) / 2): mean, SD, and clipped to
# [low, high]. In healthy adults the right hippocampus is on average a few percent larger
# than the left (Pedraza et al. 2004, a meta-analysis), so |AI| stays well under the 0.1
# that flags one-sided atrophy (evaluation.ASYMMETRY_THRESHOLD).
HEALTHY_AI = (-0.025, 0.012, -0.05, 0.01)
# Cross-section scale of a shrunken hippocampus (uniform in this range): 19-39 % less
# volume, a one-sided loss of the size that MRI volumetry finds in hippocampal sclerosis.
ATROPHY_RANGE = (0.78, 0.90)
# Version of the generator, stamped into synthetic.json: a folder made by another
# version holds other subjects and is not reused.
GENERATOR_VERSION = 2
SYNTHETIC_KIND = "synthetic-set"  # its record (hippo_utils.core.ownership): only such a folder is replaced


@dataclass(frozen=True)
class SubjectTruth:
    """What the generator drew for one subject (written to ``synthetic_subjects.csv``)."""

    subject: str
    labelled: bool
    atrophy_side: str  # "", "left" or "right"
    atrophy_factor: float  # cross-section scale of the shrunken side (1.0 = none)
    left_mm3: float
    right_mm3: float
    intensity_scale: float


def _grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> list[np.ndarray]:
    """Broadcastable mm coordinates (x toward left, y anterior, z superior), centred."""
    axes = []
    for n, s, ax in zip(shape, spacing, range(3), strict=True):
        c = (np.arange(n, dtype=np.float32) - (n - 1) / 2) * s
        axes.append(c.reshape([-1 if i == ax else 1 for i in range(3)]))
    return axes


def _ellipsoid_r(x, y, z, centre, semi) -> np.ndarray:
    """Normalised ellipsoid radius: < 1 inside."""
    return np.sqrt(
        ((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2 + ((z - centre[2]) / semi[2]) ** 2
    )


def _paint(img: np.ndarray, coords, centre, semi, value: float, within: np.ndarray | None = None) -> None:
    """Set ``value`` inside an axis-aligned ellipsoid, touching only its bounding box."""
    sl = tuple(
        slice(int(np.searchsorted(c.ravel(), c0 - s0)), int(np.searchsorted(c.ravel(), c0 + s0)) + 1)
        for c, c0, s0 in zip(coords, centre, semi, strict=True)
    )
    xs, ys, zs = (c[tuple(sl[i] if c.shape[i] > 1 else slice(None) for i in range(3))] for c in coords)
    inside = _ellipsoid_r(xs, ys, zs, centre, semi) < 1
    if within is not None:
        inside &= within[sl]
    img[sl][inside] = value


def _depth(x, y, z, centre, semi) -> np.ndarray:
    """Approximate depth in mm below an ellipsoid's surface (radial), negative outside."""
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz) + 1e-3
    r = _ellipsoid_r(x, y, z, centre, semi) + 1e-6
    return dist * (1.0 / r - 1.0)


def _waves(rng: np.random.Generator, x, y, z, n: int, wavelength: tuple[float, float]) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a sum of plane waves."""
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), np.float32)
    for _ in range(n):
        d = rng.normal(size=3)
        # Python floats keep the arithmetic in float32 (NumPy 2 promotes float64 scalars).
        k = 2 * np.pi / rng.uniform(*wavelength)
        kx, ky, kz = (float(v) for v in k * d / np.linalg.norm(d))
        phase = float(rng.uniform(0, 2 * np.pi))
        # The separable parts are summed on broadcast axes before the one full-size cos.
        out += np.cos((kx * x + phase) + (ky * y + kz * z))
    return out * np.float32(np.sqrt(2.0 / n))


def _tube(x, y, z, path: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Soft occupancy (0..1) of a chain of ellipsoids centred on ``path`` (K, 3)."""
    best = np.full(np.broadcast_shapes(x.shape, y.shape, z.shape), np.inf, np.float32)
    for c, s in zip(path, semi, strict=True):
        np.minimum(best, _ellipsoid_r(x, y, z, c, s), out=best)
    return np.clip((1.0 - best) * 4.0 + 0.5, 0.0, 1.0)


def _hippocampus_path(
    side: float, length: float, width: float, centre: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Head-to-tail centre line and cross-section semi-axes of one hippocampus.

    ``length`` is in mm; ``width`` scales the cross-section (the volume goes with its
    square). The head is anterior and widest; the body runs back; the tail narrows and
    curves up and medially, following the lateral ventricle's atrium.
    """
    t = np.linspace(0.0, 1.0, 60, dtype=np.float32)
    cx, cy, cz = centre
    x = side * (cx - 5.0 * t**1.5)
    y = cy - length * t
    z = cz + 13.0 * t**2.2 + 1.5 * np.sin(np.pi * t)
    half_w = (3.2 + 4.8 * (1 - t) ** 1.3) * width  # medial-lateral
    half_h = (2.6 + 3.4 * (1 - t) ** 1.6) * width  # superior-inferior
    half_l = np.full_like(t, 2.5)  # along the axis: overlapping links make a smooth tube
    path = np.stack([x, y, z], axis=1)
    semi = np.stack([half_w, half_l, half_h], axis=1)
    return path, semi


def _bbox(path: np.ndarray, semi: np.ndarray, coords, margin: float = 2.0):
    """Index slices that cover a chain of ellipsoids, to evaluate it cheaply."""
    lo = (path - semi.max(axis=1, keepdims=True)).min(axis=0) - margin
    hi = (path + semi.max(axis=1, keepdims=True)).max(axis=0) + margin
    sl = []
    for ax, c in enumerate(coords):
        c = c.ravel()
        idx = np.nonzero((c >= lo[ax]) & (c <= hi[ax]))[0]
        sl.append(slice(int(idx[0]), int(idx[-1]) + 1) if idx.size else slice(0, 0))
    return tuple(sl)


def make_subject(
    seed: int,
    atrophy_side: str = "",
    atrophy_factor: float = 1.0,
    shape: tuple[int, int, int] = SHAPE,
    spacing: tuple[float, float, float] = SPACING,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one head.

    Args:
        seed: everything about the subject derives from it.
        atrophy_side: "", "left" or "right": which hippocampus is shrunken.
        atrophy_factor: cross-section scale of that hippocampus (0.84 = about 30% less volume).
        shape, spacing: the grid, (x, y, z) with y the coronal (slice) axis.

    Returns:
        (image, labels): float32 intensities (about 0..1) and uint8 labels, 1 = left,
        2 = right hippocampus, both of ``shape``.
    """
    rng = np.random.default_rng(seed)
    gx, gy, gz = _grid(shape, spacing)
    # Head position varies by translation; separable coordinates keep painting cheap.
    gx = gx + np.float32(rng.normal(0, 2.0))
    gy = gy + np.float32(rng.normal(0, 3.0))
    gz = gz + np.float32(rng.normal(0, 2.0))
    x, y, z = gx, gy, gz

    scale = rng.uniform(0.93, 1.06)
    head_c = (0.0, 2.0, 6.0)
    head_semi = (74 * scale, 94 * scale, 96 * scale)
    depth = _depth(x, y, z, head_c, head_semi).astype(np.float32)

    img = np.zeros(depth.shape, np.float32)
    tissue = {k: v * rng.uniform(0.95, 1.05) for k, v in T1.items()}

    # Neck and soft tissue below the skull base; head layers from the surface inward.
    skull_base = -44.0 * scale
    neck = (np.sqrt((x / 48) ** 2 + ((y + 10) / 55) ** 2) < 1) & (z < skull_base - 20)
    img[neck] = tissue["muscle"]
    layers = [(0, 1.5, "skin"), (1.5, 5.0, "fat"), (5.0, 7.0, "bone"), (7.0, 9.0, "diploe"), (9.0, 11.0, "bone")]
    for lo, hi, name in layers:
        img[(depth >= lo) & (depth < hi)] = tissue[name]
    inside = depth >= 11.0
    img[inside] = tissue["csf"]

    # Brain: a folded surface 1-3 mm inside the skull, cut by the skull base, except for
    # the brainstem and the posterior fossa (cerebellum) which descend lower.
    sas = 12.5 + 1.2 * _waves(rng, x, y, z, 4, (30, 60))
    brain_depth = depth - sas
    # Brainstem: widening up into the midbrain, narrowing to the cord below the skull base.
    stem_w = np.where(z < skull_base - 8, 6.0, 10.0 + 0.08 * np.maximum(z + 10, 0))
    brainstem_r = np.sqrt((x / stem_w) ** 2 + ((y + 22) / np.where(z < skull_base - 8, 7.0, 13.0)) ** 2)
    posterior = y < -38 * scale
    # Middle cranial fossae hold the temporal lobes lower than the midline sella.
    base = skull_base + 9.0 * np.exp(-((x / 22.0) ** 2)) + 0.0 * y
    base = np.where(posterior, skull_base - 18, base)
    brain = (brain_depth > 0) & (z > base)
    img[inside & ~brain & (z < base)] = tissue["muscle"] * 0.9  # skull base soft tissue
    img[inside & (z < base) & (z > base - 5)] = tissue["bone"]

    folds = _waves(rng, x, y, z, 7, (9, 15))
    img[brain] = tissue["wm"]
    # Sulci are the zero sheets of a random wave field, lined by a grey-matter ribbon.
    gm = brain & ((brain_depth < 3.2) | ((np.abs(folds) < 0.42) & (brain_depth < 16)))
    img[gm] = tissue["gm"]
    img[brain & (np.abs(folds) < 0.08) & (brain_depth < 12)] = tissue["csf"]
    fissure = (np.abs(x) < 1.3) & (z > 8) & brain
    img[fissure] = tissue["csf"]
    img[(np.abs(x) < 4) & (np.abs(x) >= 1.3) & (z > 8) & brain & (brain_depth < 40)] = tissue["gm"]

    # Cerebellum: foliated grey matter with a white-matter core, under the tentorium.
    cb = brain & posterior & (z < -20 + 0.25 * (y + 38))
    cb_r = np.sqrt((np.abs(x) - 20) ** 2 + (y + 62 * scale) ** 2 + (z + 40) ** 2)
    foliation = np.cos((cb_r + 2.5 * folds) * 2 * np.pi / 4.5)
    folia = np.broadcast_to(np.where(foliation > -0.2, tissue["gm"], tissue["wm"] * 0.95), img.shape)
    img[cb] = folia[cb]
    for side in (1, -1):
        _paint(img, (gx, gy, gz), (side * 16, -60 * scale, -42), (9, 12, 8), tissue["wm"], within=cb)

    # Brainstem descending through the skull base to the bottom of the volume.
    stem = (brainstem_r < 1) & (z < -2)
    img[stem] = tissue["brainstem"]
    img[(brainstem_r >= 1) & (brainstem_r < 1.25) & (z < -5) & (z > skull_base - 30)] = tissue["csf"]

    # Deep grey matter and lateral ventricles (size varies: some subjects have larger ones).
    vent = rng.uniform(0.8, 1.5)
    g = (gx, gy, gz)
    for side in (1, -1):
        _paint(img, g, (side * 10, -12, 4), (9, 15, 10), tissue["deep_gm"])  # thalamus
        _paint(img, g, (side * 24, 6, 2), (5, 14, 10), tissue["deep_gm"] * 0.97)  # putamen
        _paint(img, g, (side * 13, 14, 17), (4, 12, 6), tissue["deep_gm"])  # caudate
        _paint(img, g, (side * 8, 4, 19), (4.5 * vent, 30, 5.5 * vent), tissue["csf"])  # ventricle
        # Ambient cistern medial to the hippocampi, above the brainstem.
        _paint(img, g, (side * 15, -18, -14), (5, 22, 8), tissue["csf"], within=brain)

    labels = np.zeros(depth.shape, np.uint8)
    size = rng.uniform(0.9, 1.08)
    length = 40.0 * size * rng.uniform(0.93, 1.07)
    hcentre = (rng.uniform(25.5, 28.5) * scale, rng.uniform(-1, 3) * scale, rng.uniform(-19, -16))
    # Healthy asymmetry: the right hippocampus a little larger (HEALTHY_AI); the two
    # sides share their length, and their cross-sections split the volume ratio.
    healthy_ai = float(np.clip(rng.normal(*HEALTHY_AI[:2]), *HEALTHY_AI[2:]))
    for side, label, name in ((+1.0, 1, "left"), (-1.0, 2, "right")):
        shrink = atrophy_factor if atrophy_side == name else 1.0
        width = size * shrink * float(np.exp(side * healthy_ai / 4))
        path, semi = _hippocampus_path(side, length, width, hcentre)
        # Temporal horn: a CSF slit superolateral to the hippocampus, joining the atrium.
        horn_path = path + np.array([side * 4.5, 0.0, 5.5], np.float32)
        horn_path = np.vstack([horn_path, horn_path[-1] + np.array([side * -2, -6, 10])])
        horn_semi = np.tile(np.array([[2.2 * vent, 3.0, 1.3 * vent]], np.float32), (len(horn_path), 1))
        # Amygdala: grey matter just anterior-superior to the hippocampal head, unlabelled.
        amyg_c = path[0] + np.array([side * 1.0, 11.0, 3.0], np.float32)
        sl = _bbox(horn_path, horn_semi, (gx, gy, gz))
        xs, ys, zs = (np.broadcast_to(a, img.shape)[sl] for a in (x, y, z))
        occ = _tube(xs, ys, zs, horn_path, horn_semi)
        img[sl] = img[sl] * (1 - occ) + tissue["csf"] * occ
        sl = _bbox(amyg_c[None], np.array([[8, 8, 7]], np.float32), (gx, gy, gz))
        xs, ys, zs = (np.broadcast_to(a, img.shape)[sl] for a in (x, y, z))
        occ = np.clip((1 - _ellipsoid_r(xs, ys, zs, amyg_c, (7, 7.5, 6))) * 4 + 0.5, 0, 1)
        img[sl] = img[sl] * (1 - occ) + tissue["gm"] * 1.02 * occ
        # Hippocampus, with a few bumps (digitations) on the head.
        sl = _bbox(path, semi, (gx, gy, gz))
        xs, ys, zs = (np.broadcast_to(a, img.shape)[sl] for a in (x, y, z))
        bumps = 1.0 + 0.08 * np.cos(2 * np.pi * xs / 5.0 + rng.uniform(0, 6))
        occ = _tube(xs, ys, zs / bumps, path, semi)
        img[sl] = img[sl] * (1 - occ) + tissue["hippo"] * occ
        region = labels[sl]
        region[(occ >= 0.5) & (region == 0)] = label

    # Acquisition: partial volume, bias field, Rician noise.
    img = ndimage.gaussian_filter(img, sigma=(0.7, 0.35, 0.7))
    c = rng.normal(0, 1, 6)
    bias = np.exp(
        0.12 * (c[0] * gx / 80 + c[1] * gy / 90 + c[2] * gz / 90)
        + 0.06 * (c[3] * (gx / 80) ** 2 + c[4] * (gz / 90) ** 2 + c[5] * gx * gy / 7200)
    )
    img *= bias
    sigma = np.float32(rng.uniform(0.02, 0.035))
    n1 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    n2 = rng.standard_normal(img.shape, dtype=np.float32) * sigma
    img = np.sqrt((img + n1) ** 2 + n2**2)
    return img.astype(np.float32), labels


def analyze_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> np.ndarray:
    """nibabel's default Analyze affine (x flipped), centred on the volume."""
    aff = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])
    aff[:3, 3] = [(shape[0] - 1) / 2 * spacing[0], -(shape[1] - 1) / 2 * spacing[1], -(shape[2] - 1) / 2 * spacing[2]]
    return aff


def _save_analyze(data: np.ndarray, path: Path, spacing: tuple[float, float, float]) -> None:
    img = nib.AnalyzeImage(data[..., None], analyze_affine(data.shape, spacing))
    img.header.set_zooms((*spacing, 1.0))
    nib.save(img, str(path))


def synthesize(
    dest: str | os.PathLike[str],
    n_labelled: int = 20,
    n_unlabelled: int = 4,
    seed: int = 2011,
    atrophy_fraction: float = 0.3,
    overwrite: bool = False,
    shape: tuple[int, int, int] = SHAPE,
) -> Path:
    """Write a synthetic HFH-like data set in the Kaggle layout.

    Args:
        dest: folder to create. It is built under a temporary name and renamed into
            place, so an interrupted run leaves nothing half-written.
        n_labelled: subjects under ``Train/`` with labels (the real set has 25).
        n_unlabelled: subjects under ``Test/`` without labels (the real set has 25).
        seed: the same seed gives byte-identical files.
        atrophy_fraction: share of subjects with one shrunken hippocampus.
        overwrite: replace an existing ``dest`` (only once the new one is complete), and
            only when it is a synthetic set this tool made that holds nothing else.
        shape: grid size (x, y, z); y is the 2 mm coronal axis.

    Returns:
        ``dest`` as a Path.
    """
    if n_labelled < 1 or n_unlabelled < 0:
        raise ValueError(f"need n_labelled >= 1 and n_unlabelled >= 0, got {n_labelled}, {n_unlabelled}")
    dest = Path(dest)
    check_replaceable(dest, SYNTHETIC_KIND, what="the synthetic set's folder")  # overwrite never overrides it
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{dest} already exists; choose another folder, or replace this synthetic set with --force"
        )
    rng = np.random.default_rng(seed)
    rows: list[SubjectTruth] = []
    from tqdm.auto import tqdm

    with (
        folder_lock(dest, "synthesize"),
        atomic_dir(dest, SYNTHETIC_KIND, replace=True, what="the synthetic set's folder") as tmp,
    ):
        (tmp / "Train" / "Labels").mkdir(parents=True)
        (tmp / "Test").mkdir()
        total = n_labelled + n_unlabelled
        for i in tqdm(
            range(total),
            desc="synthesising subjects",
            unit="subject",
            disable=logger.getEffectiveLevel() > logging.INFO,
        ):
            name = f"HFH_{i + 1:03d}"
            labelled = i < n_labelled
            sub_seed = int(rng.integers(0, 2**31))
            side, factor = "", 1.0
            if rng.random() < atrophy_fraction:
                side = str(rng.choice(["left", "right"]))
                factor = float(rng.uniform(*ATROPHY_RANGE))
            image, labels = make_subject(sub_seed, side, factor, shape=shape)
            voxel_mm3 = float(np.prod(SPACING))
            scale = float(rng.uniform(600, 2600))  # scanner units vary between subjects
            data = np.clip(np.rint(image * scale), 0, 32767).astype(np.int16)
            folder = tmp / ("Train" if labelled else "Test")
            _save_analyze(data, folder / f"{name}.hdr", SPACING)
            if labelled:
                _save_analyze(labels, folder / "Labels" / f"{name}_Hipp_Labels.hdr", SPACING)
            rows.append(
                SubjectTruth(
                    name,
                    labelled,
                    side,
                    round(factor, 4),
                    round(float((labels == 1).sum()) * voxel_mm3, 1),
                    round(float((labels == 2).sum()) * voxel_mm3, 1),
                    round(scale, 1),
                )
            )
        write_csv([asdict(r) for r in rows], tmp / "synthetic_subjects.csv")
        params = {
            "n_labelled": n_labelled,
            "n_unlabelled": n_unlabelled,
            "seed": seed,
            "atrophy_fraction": atrophy_fraction,
            "generator": GENERATOR_VERSION,
        }
        write_json(tmp / "synthetic.json", params)
        (tmp / "README.txt").write_text(
            "Synthetic HFH-like T1W data made by hippo_utils.data.synthetic (not real patients).\n"
            f"seed={seed} labelled={n_labelled} unlabelled={n_unlabelled}\n"
            "Layout and format follow the Kaggle 'Hippocampus Segmentation in MRI Images' set.\n"
            "Labels: 1 = left, 2 = right hippocampus. synthetic_subjects.csv lists the truth.\n"
        )
    logger.info("wrote %d synthetic subjects to %s", len(rows), dest)
    return dest
