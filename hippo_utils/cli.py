"""Command line: ``python -m hippo_utils SUBCOMMAND ...``.

Errors print one clear line and exit with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence

import numpy as np

from hippo_utils._version import __version__

logger = logging.getLogger("hippo_utils")

# Bad input and the file system's refusals (a full disk, a read-only folder, an unreadable file)
USER_ERRORS = (ValueError, OSError, ModuleNotFoundError)  # a missing optional module: pip install it


def plain(exc: Exception) -> str:
    """One sentence for an error: ours as they are; the system's ``[Errno 17] File exists: 'x'``
    as ``x: file exists``."""
    if isinstance(exc, OSError) and exc.strerror and str(exc).startswith("[Errno"):
        where = exc.filename if exc.filename is not None else "a file"
        return f"{where}: {exc.strerror[0].lower()}{exc.strerror[1:]}"
    return str(exc)


def _config(args: argparse.Namespace):
    from hippo_utils.core.config import load_config

    return load_config(args.config, overrides=args.set or ())


def cmd_synthesize(args: argparse.Namespace) -> int:
    from hippo_utils.data.synthetic import synthesize

    dest = synthesize(
        args.dest,
        n_labelled=args.labelled,
        n_unlabelled=args.unlabelled,
        seed=args.seed,
        atrophy_fraction=args.atrophy_fraction,
        overwrite=args.force,
    )
    print(f"wrote {args.labelled} labelled and {args.unlabelled} unlabelled synthetic subjects to {dest}")
    return 0


def cmd_derive(args: argparse.Namespace) -> int:
    from hippo_utils.data.derive import derive_dataset
    from hippo_utils.data.sources import chosen_source, ensure_synthetic, resolve_source, with_source

    cfg = _config(args)
    cfg.require("derive", "derive")
    if chosen_source(args.data) is not None:  # --data or HIPPO_DATA names the source
        source = resolve_source(cfg, args.data)
        print(source.message)
        cfg = with_source(cfg, source.path)
    elif args.synthetic_if_missing and cfg.derive.source_dir and not cfg.derive.source_dir.exists():
        print(f"{cfg.derive.source_dir} is missing: making the synthetic HFH-like set there")
        ensure_synthetic(cfg)
    result = derive_dataset(cfg, force=args.force, progress=not args.quiet)
    state = "already up to date" if result.skipped else "derived"
    print(f"{state}: {result.output_dir} ({result.layout} layout)")
    for split, n in result.counts.items():
        print(f"  {split:5s} {n:5d} slices from {len(result.subjects[split])} subjects")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from hippo_utils.training.trainer import train

    cfg = _config(args)
    cfg.require("train", "train")
    result = train(cfg, resume=args.resume, progress=not args.quiet)
    print(
        f"trained {result.epochs_done} epochs into {result.model_dir}; best {cfg.train.monitor} = {result.best:.4f}"
        if result.best is not None
        else f"trained {result.epochs_done} epochs into {result.model_dir}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from hippo_utils.evaluation.evaluate import evaluate

    cfg = _config(args)
    result = evaluate(cfg, model_dir=args.model_dir, progress=not args.quiet)
    print(
        f"wrote {result.eval_dir}/evaluation.csv (original format): "
        + ", ".join(f"{k} {v:.4f}" for k, v in result.original.items())
    )
    for r in result.slices:
        print(
            f"  class {r['class']} on test slices: Dice {r['dice']:.4f}, IoU {r['iou']:.4f}, "
            f"precision {r['precision']:.4f}, recall {r['recall']:.4f}"
        )
    if result.subjects:
        dice = [r["hippocampus_dice"] for r in result.subjects]
        print(
            f"  3D hippocampus Dice over {len(dice)} test subjects: {np.mean(dice):.4f} +- {np.std(dice):.4f} "
            "(evaluation_subjects.csv)"
        )
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from hippo_utils.inference.segment import infer_folder
    from hippo_utils.model.folder import load_model_dir

    cfg = _config(args)
    model, _ = load_model_dir(args.model_dir or cfg.train.model_dir)
    result = infer_folder(model, cfg, progress=not args.quiet)
    print(
        f"segmented {len(result.names)} images into {result.output_dir}"
        + (f"; strips with ground truth in {result.merged_dir}" if result.merged_dir else "")
    )
    return 0


def cmd_infer_volume(args: argparse.Namespace) -> int:
    from hippo_utils.inference.segment import infer_volumes

    results = infer_volumes(
        [args.model_dir, *(args.add_model or [])],
        args.inputs,
        args.out,
        labels_dir=args.labels,
        progress=not args.quiet,
        overrides=args.set or (),
        assume_voxel_size=args.assume_voxel_size,
    )
    print(
        f"segmented {len(results)} volumes into {args.out} (volumetry.csv" + (", metrics.csv)" if args.labels else ")")
    )
    for r in results:
        extra = f", AI {r.volumetry['asymmetry_index']:+.3f}" if "asymmetry_index" in r.volumetry else ""
        assumed = " (assumed voxel size)" if r.assumed_voxel_size else ""
        print(f"  {r.name}: total {r.volumetry['total_mm3']:.0f} mm3{assumed}{extra}; qc: {r.volumetry['qc']}")
    return 0


def voxel_size(text: str) -> tuple[float, float, float]:
    """``--assume-voxel-size``: one size (isotropic) or three, in mm, each above 0."""
    try:
        values = [float(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3 or not all(0 < v < 100 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give the voxel size in mm, e.g. 1 or 0.9,0.9,1.2")
    return values[0], values[1], values[2]


def _config_command(sub, name: str, help_: str, func) -> argparse.ArgumentParser:
    """A subcommand that reads a config and takes ``--set`` overrides."""
    p = sub.add_parser(name, help=help_)
    p.add_argument("config", help="the .config file, or a shipped config by name (demo, ci, hfh_512, msd_task04)")
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config value (repeatable), e.g. --set train.epochs=5",
    )
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hippo_utils",
        description="Hippocampus segmentation of T1-weighted MRI with a configurable U-Net.",
    )
    parser.add_argument("--version", action="version", version=f"hippo_utils {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or notices")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("synthesize", help="write the synthetic HFH-like data set (Kaggle layout)")
    p.add_argument("dest", help="folder to create")
    p.add_argument("--labelled", type=int, default=20, help="labelled subjects (default 20)")
    p.add_argument("--unlabelled", type=int, default=4, help="unlabelled subjects (default 4)")
    p.add_argument("--seed", type=int, default=2011)
    p.add_argument(
        "--atrophy-fraction", type=float, default=0.3, help="share of subjects with one shrunken hippocampus"
    )
    p.add_argument("--force", action="store_true", help="replace DEST if it exists")
    p.set_defaults(func=cmd_synthesize)

    p = _config_command(sub, "derive", "derive the 2D image/mask dataset from volumes ([derive])", cmd_derive)
    p.add_argument("--force", action="store_true", help="replace an existing dataset made with other settings")
    p.add_argument(
        "--data",
        metavar="SOURCE",
        help="the data to derive from: synthetic, msd-task04 (downloaded once, checksum verified), "
        "kaggle-hfh (kagglehub) or a folder (default: $HIPPO_DATA, else [derive] source_dir)",
    )
    p.add_argument(
        "--synthetic-if-missing",
        action="store_true",
        help="make the synthetic set at [derive] source_dir when it does not exist",
    )

    p = _config_command(sub, "train", "train the FlexUNet on the derived dataset ([model], [train])", cmd_train)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in [train] model_dir up to [train] epochs in total"
    )

    p = _config_command(sub, "evaluate", "evaluate on the test split: slices and 3D subjects", cmd_evaluate)
    p.add_argument("--model-dir", help="the trained model (default: [train] model_dir)")

    p = _config_command(sub, "infer", "segment the images of [infer] images_dir, as the original did", cmd_infer)
    p.add_argument("--model-dir", help="the trained model (default: [train] model_dir)")

    p = sub.add_parser("infer-volume", help="segment whole volumes; NIfTI labels, volumetry, QC pictures")
    p.add_argument("model_dir", help="a training output folder ([train] model_dir)")
    p.add_argument("inputs", nargs="+", help="volumes (.nii, .nii.gz, .img/.hdr) or folders of them")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--labels", help="folder of ground-truth labels (same names) for Dice, HD95, volume error")
    p.add_argument(
        "--set",
        action="append",
        metavar="infer.KEY=VALUE",
        help="change an [infer] setting of the model's config (e.g. infer.flip_tta=True)",
    )
    p.add_argument(
        "--assume-voxel-size",
        type=voxel_size,
        metavar="MM",
        help="for volumes whose header gives no voxel size: take this one (e.g. 1 or 0.9,0.9,1.2); "
        "their volumes are marked as assumed in volumetry.csv",
    )
    p.add_argument(
        "--add-model",
        action="append",
        metavar="MODEL_DIR",
        help="fuse with another trained model, e.g. one trained along another plane: the "
        "models' class probabilities are averaged (repeatable)",
    )
    p.set_defaults(func=cmd_infer_volume)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:  # TensorFlow's C++ notices would bury our one-line messages
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s: %(message)s")
    try:
        if args.func in (cmd_train, cmd_evaluate, cmd_infer, cmd_infer_volume) and not args.debug:
            from hippo_utils.core.backend import import_tensorflow

            import_tensorflow()  # now, without its C++ start-up lines: a user's first lines are ours
        return args.func(args)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"error: {plain(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # TensorFlow's data errors carry our message; show it alone
        if type(exc).__name__ != "InvalidArgumentError" or args.debug:
            raise
        m = re.search(r"assertion failed: \[(.*?)\] \[(.*?)\]", str(exc))
        print(f"error: {m.group(1)} {m.group(2)}" if m else f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from hippo_utils.core.locks import Terminated

        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(
            f"{what}; the work finished so far is recorded, and nothing half-written was left in place", file=sys.stderr
        )
        return 143 if isinstance(exc, Terminated) else 130
