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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "real", help="where the pages go")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "real", help="the run's folders")
    parser.add_argument("--set", action="append", default=[], help="config override, as in the CLI")
    args = parser.parse_args(argv)

    import nbformat

    from hippo_utils import load_config
    from hippo_utils.backend import describe_device, import_tensorflow
    from hippo_utils.data import chosen_source
    from hippo_utils.notebook import named_config

    if chosen_source() is None:
        real = os.environ.get("HIPPO_REAL_DATA")
        if not real:
            parser.error("name the data: HIPPO_REAL_DATA=<folder holding msd-task04-hippocampus/> or "
                         "HIPPO_DATA=msd-task04")
        os.environ["HIPPO_DATA"] = str(Path(real) / "msd-task04-hippocampus")
    work = args.work.resolve()
    cfg = load_config(named_config("msd_task04"), [
        f"derive.output_dir={work / 'derived'}", f"train.model_dir={work / 'runs' / 'models'}",
        f"train.eval_dir={work / 'runs' / 'eval'}", f"train.epoch_change_infer_dir={work / 'runs' / 'previews'}",
        f"infer.output_dir={work / 'runs' / 'out'}", *args.set])
    work.mkdir(parents=True, exist_ok=True)
    config = work / "msd_task04.config"
    config.write_text(cfg.to_ini())
    device = describe_device(import_tensorflow()).removeprefix("device: ")
    command = "HIPPO_REAL_DATA=../shared/data python docs/render_real.py" + "".join(f" --set {s}" for s in args.set)
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
        header = (f"> **Real MRI.** This is notebook {name[:2]} run on the Medical Segmentation Decathlon's Task04 "
                  "hippocampus crops (real T1w scans, labels 1 = anterior, 2 = posterior; CC-BY-SA 4.0, Antonelli "
                  "et al. 2022) with `configs/msd_task04.config`, as it ran: every number and figure below is real. "
                  f"Made by `{command}` on {datetime.date.today().isoformat()} ({platform.machine()}, {device}). "
                  "The tutorial's page of the same notebook runs the synthetic demo.")
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(header))
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, args.out / f"{name}.ipynb")
        print(f"  {seconds:.0f} s -> {args.out / f'{name}.ipynb'}", flush=True)
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
