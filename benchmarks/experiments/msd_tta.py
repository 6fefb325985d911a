"""Rotation and scale test-time augmentation for the 2D MSD model: does it help? (issue 19)

    HIPPO_REAL_DATA=../shared/data python -m benchmarks.experiments.msd_tta runs/msd_bench/models [--split valid]

For each subject of the split (``dataset.json`` of the model's derivation), every slice is
also predicted rotated by -7 and +7 degrees and scaled by 0.92 and 1.08 (inside the training
augmentation's +-10 degrees and 0.9-1.1), each with its mirror as the config's flip TTA does;
the probabilities are warped back and averaged, then slice smoothing, the resize to the
volume's grid and the largest component per class, as ``infer-volume`` does. It prints the
anterior, posterior, mean (95% bootstrap interval) and whole Dice of: no extra transform (the
config as it is), the rotations, the scales, and both. Figures only (RESULTS.md row 18c).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from benchmarks.experiments.msd_3d import line, scores
from hippo_utils.data.volumes import load_labels, load_volume
from hippo_utils.inference.predict import prepare_volume, smooth_across_slices
from hippo_utils.model.folder import load_model_dir

TRANSFORMS = {
    "as configured": [(0.0, 1.0)],
    "rotations": [(0.0, 1.0), (-7.0, 1.0), (7.0, 1.0)],
    "scales": [(0.0, 1.0), (0.0, 0.92), (0.0, 1.08)],
    "both": [(0.0, 1.0), (-7.0, 1.0), (7.0, 1.0), (0.0, 0.92), (0.0, 1.08)],
}


def matrix(size: tuple[int, int], degrees: float, scale: float) -> np.ndarray:
    """The projective transform (output -> input pixel) of a rotation and scaling about the centre."""
    cy, cx = (size[0] - 1) / 2, (size[1] - 1) / 2
    t = math.radians(degrees)
    c, s = math.cos(t) / scale, math.sin(t) / scale
    return np.array([c, s, cx - c * cx - s * cy, -s, c, cy + s * cx - c * cy, 0, 0], np.float32)


def warp(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(x, tf.float32),
        transforms=tf.constant(np.tile(m, (len(x), 1))),
        output_shape=tf.constant(x.shape[1:3]),
        interpolation="BILINEAR",
        fill_mode="NEAREST",
        fill_value=0.0,
    ).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    args = parser.parse_args()

    model, cfg = load_model_dir(args.model_dir)
    source = Path(cfg.derive.source_dir)
    names = json.loads((Path(cfg.derive.output_dir) / "dataset.json").read_text())["subjects"][args.split]

    def predict(x: np.ndarray) -> np.ndarray:
        p = np.asarray(model.predict_on_batch(x))
        if cfg.infer.flip_tta:
            p = (p + np.asarray(model.predict_on_batch(x[:, :, ::-1]))[:, :, ::-1]) / 2
        return p

    truths: list[np.ndarray] = []
    probs: dict[str, list[np.ndarray]] = {k: [] for k in TRANSFORMS}
    for name in names:
        volume = load_volume(source / "images" / f"{name}.nii.gz")
        truths.append(load_labels(source / "labels" / f"{name}.nii.gz", like=volume))
        prepared = prepare_volume(cfg, volume)
        size = prepared.inputs.shape[1:3]
        done: dict[tuple[float, float], np.ndarray] = {}
        for what, transforms in TRANSFORMS.items():
            for t in transforms:
                if t not in done:
                    done[t] = (
                        predict(prepared.inputs)
                        if t == (0.0, 1.0)
                        else warp(predict(warp(prepared.inputs, matrix(size, *t))), matrix(size, -t[0], 1 / t[1]))
                    )
            mean = sum(done[t] for t in transforms) / len(transforms)
            if cfg.infer.slice_smoothing:
                mean = smooth_across_slices(mean)
            geom = prepared.geom
            probs[what].append(geom.unorient(np.stack([geom.from_model(q) for q in mean])))
    for what, p in probs.items():
        print(line(f"{args.split}, {what}:", scores(truths, p)))


if __name__ == "__main__":
    main()
