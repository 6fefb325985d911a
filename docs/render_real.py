"""Render notebooks 03-06 on real MRI for the site: one full run of configs/msd_task04.config
(the MSD Task04 hippocampus crops, 208 labelled real T1w scans) executed top to bottom, its
outputs kept, into docs/real/ (committed; `make docs` shows them beside the synthetic demo).

    HIPPO_REAL_DATA=../shared/data python docs/render_real.py   # a local copy of the crops
    HIPPO_DATA=msd-task04 python docs/render_real.py            # the download (27 MB, once)

The run's folders are build/real/ (derived dataset, model, evaluation, results); each page
opens with what it is, the command, the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

from build_docs import execute, static_outputs  # noqa: E402 (the site builder's own steps)

NOTEBOOKS = ("03_training", "04_evaluation", "05_inference", "06_slice_viewer")


def scrub(nb, places: dict[str, str]) -> None:
    """Write this machine's folders in the text outputs as a reader's would be (``places``:
    path -> how to show it, e.g. the checkout -> ``.``)."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts = [out] if "text" in out else []
            texts += [out["data"]] if "text/plain" in out.get("data", {}) else []
            for holder in texts:
                key = "text" if holder is out else "text/plain"
                value = holder[key]
                for path, shown in sorted(places.items(), key=lambda kv: -len(kv[0])):
                    value = value.replace(path, shown)
                holder[key] = value


# What differs from the synthetic demo the notebooks' prose was written for, per page.
ON_THIS_DATA = {
    "03": "The TensorBoard picture (section 4) is of a demo run; the live panel and curves are this run's. "
    "`msd_task04.config` keeps ce_dice at its default `dice_weight = 1`, with augmentation on.",
    "04": "Here the subjects' 3D Dice is above the slice Dice (compare the two tables), unlike the demo's: the "
    "crops have 1 mm voxels in every direction. HD95 steps of 1, 1.41, 1.73 mm are the voxel's side and "
    "diagonals.",
    "05": "A crop holds one hippocampus, so there is no left/right asymmetry index or atrophy flag here: the "
    "volume table gives the two parts (label 1 anterior, label 2 posterior) and their sum; the sections "
    "on AI and synthetic truth describe the demo.",
    "06": "The viewer's planes are the array's axes (the crops' affine is not anatomy, so there are no "
    "direction letters and its 'scanner space' position is only the file's own); section 3 shows a "
    "training crop with its labels only.",
}


def real_data_header(name: str, command: str, device: str) -> str:
    """The page's first note: what it is, how it was made, and what in the prose below is the demo's."""
    return (
        f"> **Real MRI.** This is notebook {name[:2]} run on the Medical Segmentation Decathlon's Task04 "
        "hippocampus crops (208 real T1w scans split by subject: 146 train, 31 validation, 31 test; CC-BY-SA "
        "4.0, Antonelli et al. 2022) with `configs/msd_task04.config` (18 epochs; outputs under `build/real/`), "
        "as it ran: its outputs are real. Made by "
        f"`{command}` (or `HIPPO_DATA=msd-task04 .venv/bin/python docs/render_real.py`, which downloads the "
        "archive's 260 labelled crops, so its split differs) on "
        f"{datetime.date.today().isoformat()} ({platform.machine()}, {device}).\n>\n"
        "> **Reading it on this data.** The prose was written for the synthetic demo: here labels 1 and 2 are "
        "the **anterior** and **posterior** hippocampus, not left and right (the figures colour them red and "
        "green, the same colours as the agreement pictures' false and true positives: read each figure's "
        "legend); the crops are 1 mm in every direction and sliced along array axis 1; the hippocampus is "
        "about 6 % of a slice, not under 1 %, so an empty prediction scores about 0.87, not 0.99, on "
        f"`dice_coef_multiclass`. {ON_THIS_DATA[name[:2]]} Figures the prose quotes for the demo (window "
        "size, voxel sizes, volumes) are the demo's."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "real", help="where the pages go")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "real", help="the run's folders")
    parser.add_argument("--set", action="append", default=[], help="config override, as in the CLI")
    args = parser.parse_args(argv)

    import nbformat

    from hippo_utils import load_config
    from hippo_utils.core.backend import describe_device, import_tensorflow
    from hippo_utils.data.sources import chosen_source
    from hippo_utils.notebook import named_config

    if chosen_source() is None:
        real = os.environ.get("HIPPO_REAL_DATA")
        if not real:
            parser.error(
                "name the data: HIPPO_REAL_DATA=<folder holding msd-task04-hippocampus/> or HIPPO_DATA=msd-task04"
            )
        os.environ["HIPPO_DATA"] = str((Path(real) / "msd-task04-hippocampus").resolve())  # kernels run elsewhere
    work = args.work.resolve()
    cfg = load_config(
        named_config("msd_task04"),
        [
            f"derive.output_dir={work / 'derived'}",
            f"train.model_dir={work / 'runs' / 'models'}",
            f"train.eval_dir={work / 'runs' / 'eval'}",
            f"train.epoch_change_infer_dir={work / 'runs' / 'previews'}",
            f"infer.output_dir={work / 'runs' / 'out'}",
            *args.set,
        ],
    )
    work.mkdir(parents=True, exist_ok=True)
    config = work / "msd_task04.config"
    config.write_text(cfg.to_ini())
    device = describe_device(import_tensorflow()).removeprefix("device: ")
    command = "HIPPO_REAL_DATA=../shared/data .venv/bin/python docs/render_real.py" + "".join(
        f" --set {s}" for s in args.set
    )
    args.out.mkdir(parents=True, exist_ok=True)
    places = {str(ROOT): "."}
    if os.environ.get("HIPPO_REAL_DATA"):
        places[str(Path(os.environ["HIPPO_REAL_DATA"]).resolve())] = "$HIPPO_REAL_DATA"
    t0 = time.perf_counter()
    for name in NOTEBOOKS:
        print(f"executing {name} on real MSD Task04 data …", flush=True)
        nb, seconds = execute(ROOT / "notebooks" / f"{name}.ipynb", config)
        static_outputs(nb)
        scrub(nb, places)
        header = real_data_header(name, command, device)
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(header))
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, args.out / f"{name}.ipynb")
        print(f"  {seconds:.0f} s -> {args.out / f'{name}.ipynb'}", flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
