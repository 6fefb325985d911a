"""Volumetry of the demo model against the synthetic truth (issue 16's yardstick).

Trains the demo config with a seed (or takes a trained model folder), segments the
synthetic subjects the model never saw (the unlabelled ``Test/`` heads), and prints per
subject: left and right volume errors, the measured and true asymmetry index, and the side
each flags (|AI| > 0.1); then the mean absolute volume error, the largest AI error and
whether every flag agrees.

    python benchmarks/volumetry_demo.py --seed 42                 # train into runs/volumetry_s42
    python benchmarks/volumetry_demo.py --model-dir runs/demo/models   # score a trained model

Targets (issue 16): mean absolute volume error <= 5 %, |AI error| <= 0.05, flags right.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.config"))
    parser.add_argument("--seed", type=int, default=42, help="training seed (with training)")
    parser.add_argument("--model-dir", type=Path, help="score this trained model instead of training one")
    parser.add_argument("--out", type=Path, help="run folder (default runs/volumetry_s<seed>)")
    parser.add_argument("--set", action="append", default=[], help="config override, as in the CLI")
    parser.add_argument("--infer-set", action="append", default=[],
                        help="[infer] override at inference only, e.g. infer.flip_tta=True")
    args = parser.parse_args(argv)

    from hippo_utils.backend import import_tensorflow

    import_tensorflow()
    from hippo_utils import load_config
    from hippo_utils.data import ensure_dataset
    from hippo_utils.derive import source_of
    from hippo_utils.inference import infer_volumes
    from hippo_utils.layouts import find_subjects
    from hippo_utils.notebook import table
    from hippo_utils.trainer import train
    from hippo_utils.volumetry import read_synthetic_truth, volumetry_against_truth

    run = args.out or ROOT / "runs" / f"volumetry_s{args.seed}"
    sets = [f"train.seed={args.seed}", *args.set]
    if args.model_dir is None:
        sets += [f"train.model_dir={run / 'models'}", f"train.eval_dir={run / 'eval'}",
                 f"train.epoch_change_infer_dir={run / 'previews'}"]
    cfg = load_config(args.config, sets)
    dataset_dir = ensure_dataset(cfg)
    model_dir = args.model_dir
    t0 = time.perf_counter()
    if model_dir is None:
        result = train(cfg, resume=(cfg.train.model_dir / "state.json").exists(), progress=False)
        model_dir = result.model_dir
        print(f"trained {result.epochs_done} epochs in {(time.perf_counter() - t0) / 60:.1f} min; "
              f"best {cfg.train.monitor} {result.best:.4f}")
    source_dir = source_of(dataset_dir)
    unseen = [s.image for s in find_subjects(source_dir).unlabelled]
    results = infer_volumes(model_dir, unseen, run / "volumes", progress=False, overrides=args.infer_set)
    rows = volumetry_against_truth({r.name: r.volumetry for r in results}, read_synthetic_truth(source_dir))
    if not rows:
        sys.exit(f"{source_dir}: no synthetic truth (synthetic_subjects.csv) for the unseen subjects")
    print(table(rows))
    signed = np.array([[r["left_err_%"], r["right_err_%"]] for r in rows], float)
    errors = np.abs(signed)
    ai_err = np.abs([r["AI_err"] for r in rows])
    agree = sum(r["flag"] == r["true_flag"] for r in rows)
    made = sum((r["flag"] == r["atrophy_made"]) if r["atrophy_made"] != "-" else r["flag"] == "-" for r in rows)
    print(f"model {model_dir}: mean |volume error| {errors.mean():.1f} % (max {errors.max():.1f} %; "
          f"mean signed {signed.mean():+.1f} %), max |AI error| {ai_err.max():.3f}; flags agree with the "
          f"true volumes' in {agree}/{len(rows)}, with the atrophy the generator made in {made}/{len(rows)}")
    met = errors.mean() <= 5 and ai_err.max() <= 0.05 and made == len(rows)
    print(f"targets (mean |volume error| <= 5 %, |AI error| <= 0.05, every flag as made): "
          f"{'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
