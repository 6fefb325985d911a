"""Killed part-way (a subprocess and SIGKILL), nothing partial is taken for complete, and
a re-run completes; a seeded run repeats its first epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hippo_utils import load_config
from hippo_utils.core.ownership import RECORD_NAME
from hippo_utils.data.derive import derive_dataset

from helpers import write_config


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "hippo_utils", "-q", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it ends or times out first."""
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(
                f"the process ended (rc {proc.returncode}) before it could be killed part-way:\n"
                f"{proc.stdout.read().decode()[-2000:]}"
            )
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("timed out waiting for the process to get part-way")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def _tree(root: Path) -> dict[str, bytes]:
    """Every file's bytes, less the tool's records of what it wrote (they hold times)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != RECORD_NAME
    }


def test_killed_derivation_leaves_nothing_and_reruns(synthetic_hfh, tmp_path):
    def config(name: str, seed: int) -> Path:
        return write_config(
            tmp_path / f"{name}.config",
            {
                "source_dir": str(synthetic_hfh),
                "output_dir": str(tmp_path / "out"),
                "seed": seed,
                "empty_slice_ratio": 1.0,
            },
        )

    first, other = config("first", 1), config("other", 2)

    def building() -> bool:  # the temporary folder holds slices: derivation is part-way
        return any(p for tmp in tmp_path.glob(".out.tmp-*") for p in tmp.rglob("*.png"))

    # 1. killed on its first build: no dataset appears, only a hidden temporary folder
    _kill_when(_start("derive", str(first)), building)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.glob(".out.tmp-*"))
    # a re-run completes, removes what the killed run left, and equals an uninterrupted run
    result = derive_dataset(load_config(first), progress=False)
    assert not result.skipped and not list(tmp_path.glob(".out.tmp-*"))
    complete = _tree(tmp_path / "out")
    reference = derive_dataset(load_config(first, [f"derive.output_dir={tmp_path / 'ref'}"]), progress=False)
    ref = _tree(reference.output_dir)
    assert {k: v for k, v in complete.items() if k != "dataset.json"} == {
        k: v for k, v in ref.items() if k != "dataset.json"
    }

    # 2. killed while replacing it (--force, other settings): the complete dataset is untouched
    _kill_when(_start("derive", str(other), "--force"), building)
    assert _tree(tmp_path / "out") == complete
    assert derive_dataset(load_config(first), progress=False).skipped  # still complete and up to date


def test_killed_training_resumes_from_the_last_complete_checkpoint(tiny_config, tmp_path):
    import keras

    from hippo_utils.training.trainer import train

    run = tmp_path / "run"
    sets = [
        f"train.model_dir={run / 'models'}",
        f"train.eval_dir={run / 'eval'}",
        f"train.epoch_change_infer_dir={run / 'previews'}",
        "train.epochs=40",
        "train.patience=100",
        "train.learning_rate_reducer=False",
    ]
    state_path = run / "models" / "state.json"

    def epochs_done() -> int:
        try:
            return json.loads(state_path.read_text())["epoch"]
        except (OSError, ValueError):
            return 0

    proc = _start("train", str(tiny_config.path), *(a for s in sets for a in ("--set", s)))
    seen = 0

    def part_way() -> bool:  # kill somewhere inside the third epoch, not at a boundary
        nonlocal seen
        seen = seen or (epochs_done() >= 2 and time.monotonic())
        return bool(seen) and time.monotonic() - seen > 0.05

    _kill_when(proc, part_way, timeout=300)
    state = json.loads(state_path.read_text())
    history = json.loads((run / "models" / "history.json").read_text())
    assert 2 <= state["epoch"] < 40 and len(history["loss"]) == state["epoch"]
    checkpoint = run / "models" / state["checkpoint"]
    keras.models.load_model(checkpoint, compile=False)  # complete, and the one state.json names

    cfg = load_config(
        tiny_config.path,
        [
            *sets[:3],
            "train.epochs=" + str(state["epoch"] + 2),
            "train.patience=100",
            "train.learning_rate_reducer=False",
        ],
    )
    keras.backend.clear_session()
    result = train(cfg, resume=True, progress=False)
    after = json.loads((run / "models" / "history.json").read_text())
    assert result.epochs_done == state["epoch"] + 2 and len(after["loss"]) == state["epoch"] + 2
    assert after["loss"][: state["epoch"]] == history["loss"]  # the completed epochs are kept, not re-run
    assert [p.name for p in (run / "models").glob("last.e*.keras")] == [f"last.e{state['epoch'] + 2:03d}.keras"]


def test_seeded_training_repeats_its_first_epoch(tiny_config, tmp_path):
    import keras

    from hippo_utils.training.trainer import train

    losses = []
    for i in range(2):
        cfg = load_config(
            tiny_config.path,
            [
                f"train.model_dir={tmp_path / str(i) / 'models'}",
                f"train.eval_dir={tmp_path / str(i) / 'eval'}",
                "train.epochs=1",
                "train.epoch_change_infer=False",
            ],
        )
        keras.backend.clear_session()
        losses.append(train(cfg, progress=False).history["loss"][0])
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)
