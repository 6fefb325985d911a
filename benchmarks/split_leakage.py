"""How much a slice-level split inflates the test Dice (issue 16's leakage lesson).

The original system split its 2D slices at random, so neighbours of every test slice
(2 mm away, nearly the same picture) were in training. This script trains the demo
config twice, once with the subjects split (``[derive] split_by = "subject"``, the
default) and once with the slices split (``split_by = "slice"``), and scores both
models the same way on two sets:

- their own test split: the number each pipeline would report;
- fresh subjects that neither model has seen (drawn by the synthetic generator with
  another seed): what the model really does on a new head.

The score is the foreground Dice pooled over the coronal slices of a set, computed on
the source grid after whole-volume inference. For a subject split both numbers should
agree within noise; for a slice split the reported one is higher, and the difference is
the leak.

    python benchmarks/split_leakage.py --seed 42                  # trains both (about 25 min on 2 cores)
    python benchmarks/split_leakage.py --subject-model runs/volumetry_s42/models   # reuse one
    python benchmarks/split_leakage.py --config configs/msd_task04.config --holdout 20 \
        --set train.epochs=8 --out runs/split_leakage_msd                # real MSD Task04 volumes

On real data (``[derive] layout = "pairs"``) the fresh subjects are held out of both derivations.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from common import ROOT  # benchmarks/ is sys.path[0]: this runs as a file


def pooled_dice(model, cfg, volumes: list[tuple[str, str, list[int] | None]]) -> float:
    """Foreground Dice pooled over the chosen slices of each (image, labels, slices) volume.

    ``slices`` are indices along the config's slicing plane; None takes every slice.
    """
    from hippo_utils.data.preprocess import slice_geometry
    from hippo_utils.evaluation.evaluate import segment_against_truth

    inter = total = 0
    for image, labels, chosen in volumes:
        volume, truth, pred = segment_against_truth(model, cfg, image, labels)
        geom = slice_geometry(volume, cfg.derive.plane, cfg.image_size)
        t, p = geom.orient(truth > 0), geom.orient(pred > 0)
        if chosen is not None:
            t, p = t[chosen], p[chosen]
        inter += int(np.count_nonzero(t & p))
        total += int(np.count_nonzero(t)) + int(np.count_nonzero(p))
    return 2 * inter / total if total else 1.0


def test_split_volumes(cfg) -> list[tuple[str, str, list[int]]]:
    """Each test-split subject's volume, label file and test slice indices (from the manifest)."""
    from hippo_utils.data.derive import read_manifest

    chosen: dict[tuple[str, str], list[int]] = {}
    for r in read_manifest(cfg.derive.output_dir):
        if r["split"] == "test":
            chosen.setdefault((r["source"], r["label_source"]), []).append(int(r["slice_index"]))
    return [(src, lab, sorted(idx)) for (src, lab), idx in sorted(chosen.items())]


def hold_out(cfg, n: int, dest: Path) -> tuple[Path, list[tuple[str, str, None]]]:
    """Link all but ``n`` subjects of a pairs-layout source into ``dest`` (images/, labels/);
    the ``n`` (drawn with [derive] seed) are returned as (image, labels, None) for scoring."""
    from hippo_utils.data.layouts import find_subjects

    subjects = sorted(find_subjects(cfg.derive.source_dir, cfg.derive.layout).labelled, key=lambda s: s.name)
    pick = set(np.random.default_rng(cfg.derive.seed + 1).choice(len(subjects), size=n, replace=False).tolist())
    for sub in ("images", "labels"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(subjects):
        if i not in pick:
            for sub, f in (("images", s.image), ("labels", s.label)):
                link = dest / sub / f.name
                if not link.exists():
                    link.symlink_to(f.resolve())
    return dest, [(str(subjects[i].image), str(subjects[i].label), None) for i in sorted(pick)]


def train_variant(config: str, split_by: str, seed: int, run: Path, extra: list[str]):
    """Derive (into the run folder) and train the config with one kind of split."""
    from hippo_utils import load_config
    from hippo_utils.data.sources import ensure_dataset
    from hippo_utils.training.trainer import train

    sets = [
        f'derive.split_by="{split_by}"',
        f"derive.output_dir={run / 'derived'}",
        f"train.seed={seed}",
        f"train.model_dir={run / 'models'}",
        f"train.eval_dir={run / 'eval'}",
        f"train.epoch_change_infer_dir={run / 'previews'}",
        *extra,
    ]
    cfg = load_config(config, sets)
    ensure_dataset(cfg)
    t0 = time.perf_counter()
    result = train(cfg, resume=(cfg.train.model_dir / "state.json").exists(), progress=False)
    print(f"{split_by} split: trained {result.epochs_done} epochs in {(time.perf_counter() - t0) / 60:.1f} min")
    return cfg, result.model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.config"))
    parser.add_argument("--seed", type=int, default=42, help="training seed of both models")
    parser.add_argument(
        "--subject-model",
        type=Path,
        help="a model folder already trained on the config's subject split (saves one training)",
    )
    parser.add_argument("--fresh", type=int, default=4, help="fresh subjects to draw (default 4)")
    parser.add_argument(
        "--holdout",
        type=int,
        default=0,
        help="real data ([derive] layout pairs): subjects held out as the fresh ones (default: --fresh)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "split_leakage")
    parser.add_argument("--set", action="append", default=[], help="config override, as in the CLI")
    args = parser.parse_args(argv)

    from hippo_utils.core.backend import import_tensorflow

    import_tensorflow()
    from hippo_utils import load_config
    from hippo_utils.data.sources import ensure_dataset
    from hippo_utils.data.synthetic import synthesize
    from hippo_utils.model.folder import load_model_dir

    base = load_config(args.config, args.set)
    if base.derive.layout in ("pairs", "msd") or args.holdout:
        # Real data: hold subjects out of both derivations; they are the fresh ones.
        source, fresh = hold_out(base, args.holdout or args.fresh, args.out / "source")
        args.set = [*args.set, f"derive.source_dir={source}"]
        where = f"held out of {base.derive.source_dir}"
    else:
        fresh_dir = args.out / f"fresh_seed{base.synthetic.seed + 1}"
        if not fresh_dir.exists():
            synthesize(
                fresh_dir,
                n_labelled=args.fresh,
                n_unlabelled=0,
                seed=base.synthetic.seed + 1,
                atrophy_fraction=base.synthetic.atrophy_fraction,
            )
        fresh = [
            (str(p), str(fresh_dir / "Train" / "Labels" / f"{p.stem}_Hipp_Labels.hdr"), None)
            for p in sorted((fresh_dir / "Train").glob("HFH_*.hdr"))
        ]
        where = f"generator seed {base.synthetic.seed + 1}"

    variants = []
    if args.subject_model:
        _, cfg = load_model_dir(args.subject_model)
        ensure_dataset(cfg)
        variants.append(("subject", cfg, args.subject_model))
    else:
        variants.append(("subject", *train_variant(args.config, "subject", args.seed, args.out / "subject", args.set)))
    variants.append(("slice", *train_variant(args.config, "slice", args.seed, args.out / "slice", args.set)))

    print(f"\nforeground Dice pooled over slices, source grid ({len(fresh)} fresh subjects, {where})")
    print(f"{'split by':<10}{'own test split':>16}{'fresh subjects':>16}{'inflation':>11}")
    for name, cfg, model_dir in variants:
        model, cfg = load_model_dir(model_dir)
        cfg = dataclasses.replace(cfg, infer=base.infer)  # both scored with the same [infer] settings
        own = pooled_dice(model, cfg, test_split_volumes(cfg))
        new = pooled_dice(model, cfg, fresh)
        print(f"{name:<10}{own:>16.3f}{new:>16.3f}{own - new:>+11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
