"""Partial-volume hippocampal volumes against counted voxels, on trained demo models (issue 27).

A counted volume is the number of voxels the argmax gives a side; a boundary voxel counts 0 or
1 whatever the model's probability. The partial-volume estimate (what volumetry reports since
issue 27, :func:`hippo_utils.inference.volumetry.partial_volumes`) sums instead the hippocampus
probability over the side's voxels and a one-voxel shell around them (the shell's voxels
that the other side does not claim), so that a voxel the model puts at 0.4 counts 0.4. Scored
on the validation heads (which settings are compared on) and the unseen ones, for each model
folder under ``--runs`` (as ``benchmarks/volumetry_demo.py --out DIR`` leaves them).

    python -m benchmarks.experiments.soft_volumes --runs runs/volumetry
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, heads


def summary(rows: list[dict], kind: str) -> dict:
    from hippo_utils.inference.volumetry import asymmetry_index

    errs, ai_errs = [], []
    for r in rows:
        left, right = r[f"left_{kind}"], r[f"right_{kind}"]
        errs += [100 * (left / r["true_left"] - 1), 100 * (right / r["true_right"] - 1)]
        ai_errs.append(abs(asymmetry_index(left, right) - asymmetry_index(r["true_left"], r["true_right"])))
    errs = np.array(errs)
    return {"mean_abs_%": np.abs(errs).mean(), "signed_%": errs.mean(), "max_AI_err": max(ai_errs)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "volumetry", help="folder of RUN/models")
    args = parser.parse_args(argv)

    from hippo_utils.core.backend import import_tensorflow

    import_tensorflow()
    from hippo_utils.data.derive import source_of
    from hippo_utils.data.volumes import load_volume, strip_volume_suffix
    from hippo_utils.inference.predict import volume_probabilities
    from hippo_utils.inference.segment import output_labels
    from hippo_utils.inference.volumetry import read_synthetic_truth, volumetry
    from hippo_utils.model.folder import load_model_dir
    from hippo_utils.notebook import table

    table_rows = []
    for models in sorted(args.runs.glob("*/models")):
        model, cfg = load_model_dir(models)
        dataset_dir = cfg.derive.output_dir
        source = source_of(dataset_dir)
        truth = read_synthetic_truth(source)
        for group, images in heads(source, dataset_dir).items():
            rows = []
            for image in images:
                volume = load_volume(image)
                probs = volume_probabilities(model, cfg, volume)
                labels = output_labels(cfg, probs.argmax(-1).astype(np.uint8), volume)
                t = truth[strip_volume_suffix(image.name)]
                counted, partial = volumetry(labels, volume, cfg), volumetry(labels, volume, cfg, probs)
                rows.append(
                    {
                        **{f"{side}_count": counted[f"{side}_mm3"] for side in ("left", "right")},
                        **{f"{side}_soft": partial[f"{side}_mm3"] for side in ("left", "right")},
                        "true_left": float(t["left_mm3"]),
                        "true_right": float(t["right_mm3"]),
                    }
                )
            for kind in ("count", "soft"):
                s = summary(rows, kind)
                table_rows.append(
                    {
                        "run": models.parent.name,
                        "heads": group,
                        "volume": kind,
                        **{k: round(float(v), 3 if "AI" in k else 1) for k, v in s.items()},
                    }
                )
    print(table(table_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
