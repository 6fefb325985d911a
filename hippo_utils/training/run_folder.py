"""Hardening of a training run's folders: a learner can skip all but :class:`RunStart`.

Before a run writes anything, :func:`begin_run` refuses what would lose or mix results: a
model folder that already holds a run (unless resuming), a file of the user's where an
epoch would be committed, evaluation or preview folders that hold another run's outputs,
and a resumed run with other [model] settings or another dataset than it began with. It
returns what the run starts from: nothing, or the resumed run's state and history.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hippo_utils.core.config import Config
from hippo_utils.core.ownership import check_may_write, claim
from hippo_utils.data.derive import crop_box
from hippo_utils.model.folder import (
    MODEL_FILES,
    STATE_NAME,
    check_same_dataset,
    has_run,
    load_model_config,
    read_history,
    read_state,
    write_config,
)


@dataclasses.dataclass(frozen=True)
class RunStart:
    """Where a run starts: after ``epoch`` epochs (0 for a new run) with the ``best``
    monitored value so far, the ``history`` of those epochs, and the resumed run's
    ``state.json`` (None for a new run)."""

    epoch: int = 0
    best: float | None = None
    history: dict = dataclasses.field(default_factory=dict)
    state: dict | None = None


def run_folders(cfg: Config) -> list[tuple[str, Path]]:
    """The folders a training run writes, as the config names them: the model folder, the
    evaluation folder, and the epoch previews' folder when they are written."""
    t = cfg.train
    folders = [("[train] model_dir", t.model_dir), ("[train] eval_dir", t.eval_dir)]
    if t.epoch_change_infer:
        folders.append(("[train] epoch_change_infer_dir", t.epoch_change_infer_dir))
    return folders


def claim_run_folders(cfg: Config) -> None:
    """Mark the evaluation and preview folders as this model folder's; refuse them when they
    hold another run's curves or previews (two runs would overwrite each other's)."""
    owner = {"model_dir": str(cfg.train.model_dir.resolve())}
    folders = [(what, f) for what, f in run_folders(cfg)[1:] if f.resolve() != cfg.train.model_dir.resolve()]
    for check_only in (True, False):  # all checked before any is claimed
        for what, folder in folders:
            claim(folder, owner, what, check_only=check_only)


def _check_resume(cfg: Config) -> None:
    """A resumed run goes on with the model and the dataset it began with: other [model]
    settings would be written into its config while the old network trains on (the folder
    could no longer be loaded), another dataset would mix splits."""
    model_dir = cfg.train.model_dir
    saved = load_model_config(model_dir)
    before, now = dataclasses.asdict(saved.model), dataclasses.asdict(cfg.model)
    changed = [
        f"[model] {k} = {now[k]!r} (was {before.get(k)!r})"
        for k in now
        if k != "show_summary" and before.get(k) != now[k]
    ]
    if changed:
        raise ValueError(
            f"{model_dir}: --resume with other settings than the run began with: "
            f"{'; '.join(changed)}. Resume with the run's own settings (only [train] ones such as "
            "epochs may change), or train into a new [train] model_dir"
        )
    check_same_dataset(model_dir, cfg, "resume")


def begin_run(cfg: Config, resume: bool) -> RunStart:
    """Check that the run may write its folders (see the module docstring), claim them, and
    return where it starts. Writes nothing into the model folder."""
    model_dir = cfg.train.model_dir
    if has_run(model_dir) and not resume:
        raise FileExistsError(
            f"{model_dir} already holds a training run ({STATE_NAME}). Use --resume to continue "
            "it, or choose another [train] model_dir (e.g. --set train.model_dir=runs/new/models); "
            "nothing was deleted"
        )
    state = read_state(model_dir) if resume else None
    if resume and state is None:
        raise FileNotFoundError(f"{model_dir}: no run to resume (no {STATE_NAME}); train without --resume")
    if state is not None:
        _check_resume(cfg)
    for name in MODEL_FILES:  # a file of the user's where an epoch would be committed: refused before training
        check_may_write(model_dir / name)
    claim_run_folders(cfg)  # before any work: another run's curves and previews are not overwritten
    if state is None:
        return RunStart()
    return RunStart(state["epoch"], state["best"], read_history(model_dir, state["epoch"]), state)


def write_run_config(cfg: Config) -> Path:
    """The model folder's config, naming the crop window (inference needs it without the dataset)."""
    cfg.train.model_dir.mkdir(parents=True, exist_ok=True)
    return write_config(dataclasses.replace(cfg, derive=dataclasses.replace(cfg.derive, crop_box_mm=crop_box(cfg))))
