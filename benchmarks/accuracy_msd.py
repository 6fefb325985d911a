"""Accuracy on real data: MSD Task04 hippocampus (T1w crops; 1 = anterior, 2 = posterior).

    HIPPO_REAL_DATA=../shared/data python benchmarks/accuracy_msd.py [--set train.epochs=25] [--out runs/msd_bench]
    HIPPO_REAL_DATA=../shared/data python benchmarks/accuracy_msd.py --score-only --set infer.flip_tta=True
    HIPPO_REAL_DATA=../shared/data python benchmarks/accuracy_msd.py --planes axis0,axis1,axis2 \
        --set train.epochs=16 --set axis2:augment.hflip=False --set axis2:infer.flip_tta=False

Derives the 2D dataset from $HIPPO_REAL_DATA/msd-task04-hippocampus with
configs/msd_task04.config, trains the FlexUNet (timed), then segments every held-out
test subject's whole volume and prints the subject-level 3D Dice per class and overall.
With --planes, one model is trained per slicing plane (each with its own derived
dataset, in OUT/PLANE/) and their class probabilities are fused on each volume's grid;
the training time reported is the sum. ``--set PLANE:section.key=value`` applies to one
plane only (axis2 slices have the anterior-posterior axis as columns, so mirroring them
would swap the two labels' places).
Anchors: nnU-Net about 0.90 (anterior) and 0.89 (posterior); the HFH paper's classical
methods 0.64-0.75.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from hippo_utils import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "msd_task04.config"))
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--out", default=str(ROOT / "runs" / "msd_bench"), help="run folder")
    parser.add_argument("--score-only", action="store_true",
                        help="do not train: score the model already in OUT/models (e.g. with --set infer.*)")
    parser.add_argument("--planes", help="comma-separated planes (e.g. axis0,axis1,axis2): one model each, fused")
    args = parser.parse_args()
    real = os.environ.get("HIPPO_REAL_DATA")
    if not real:
        raise SystemExit("set HIPPO_REAL_DATA to the folder holding msd-task04-hippocampus/")
    out = Path(args.out).resolve()
    common = [s for s in args.set if ":" not in s.split("=", 1)[0]]

    from hippo_utils.derive import derive_dataset
    from hippo_utils.inference import infer_volumes
    from hippo_utils.trainer import train

    planes = args.planes.split(",") if args.planes else [None]
    base_dir = load_config(args.config, common).derive.output_dir
    model_dirs, done, t_derive, t_train = [], [], 0.0, 0.0
    for plane in planes:
        run = out / plane if plane else out
        only = [s.split(":", 1)[1] for s in args.set if plane and s.startswith(f"{plane}:")]
        overrides = [f"train.model_dir={run / 'models'}", f"train.eval_dir={run / 'eval'}",
                     f"train.epoch_change_infer_dir={run / 'previews'}", *common,
                     *([f"derive.plane={plane}", f"derive.output_dir={base_dir}_{plane}"] if plane else []),
                     *only]
        cfg = load_config(args.config, overrides)
        t = time.perf_counter()
        derived = derive_dataset(cfg, progress=False)
        t_derive += time.perf_counter() - t
        t = time.perf_counter()
        if args.score_only:
            state = json.loads((cfg.train.model_dir / "state.json").read_text())
            epochs_done, best = state["epoch"], state["best"]
        else:
            result = train(cfg, progress=False)
            epochs_done, best = result.epochs_done, result.best
        t_train += time.perf_counter() - t
        model_dirs.append(cfg.train.model_dir)
        done.append(f"{plane or cfg.derive.plane}: epochs {epochs_done}, best val_dice_fg {best:.4f}")
    test = json.loads((derived.output_dir / "dataset.json").read_text())["subjects"]["test"]
    src = Path(real) / "msd-task04-hippocampus"
    t = time.perf_counter()
    infer_sets = [s for s in common if s.startswith("infer.")]
    infer_volumes(model_dirs, [src / "images" / f"{n}.nii.gz" for n in test], out / "test_predictions",
                  labels_dir=src / "labels", progress=False, overrides=infer_sets)
    t_infer = time.perf_counter() - t
    rows = [r for r in csv.DictReader((out / "test_predictions" / "metrics.csv").open())
            if r["subject"] not in ("mean", "std")]

    def stat(col):
        v = np.array([float(r[col]) for r in rows])
        return f"{np.nanmean(v):.4f} +- {np.nanstd(v):.4f}"

    a = np.array([float(r["label1_dice"]) for r in rows])
    p = np.array([float(r["label2_dice"]) for r in rows])
    print(f"MSD Task04, {len(rows)} held-out test subjects (3D, on the source grid), {os.cpu_count()} CPU cores")
    print(f"  settings: {' '.join(args.set) or '(config as is)'}")
    print(f"  anterior (1) Dice  {stat('label1_dice')}   HD95 {stat('label1_hd95_mm')} mm")
    print(f"  posterior (2) Dice {stat('label2_dice')}   HD95 {stat('label2_hd95_mm')} mm")
    print(f"  mean of the two    {np.mean((a + p) / 2):.4f}")
    print(f"  whole hippocampus  {stat('hippocampus_dice')}")
    print(f"  {'; '.join(done)}; derive {t_derive:.0f} s, "
          f"train {t_train / 60:.1f} min{' (not trained: --score-only)' if args.score_only else ''}, "
          f"infer {t_infer:.0f} s")


if __name__ == "__main__":
    main()
