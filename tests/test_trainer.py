import json

import numpy as np
import pytest

from hippo_utils import load_config
from hippo_utils.core.tables import write_json
from hippo_utils.model.folder import load_model_dir
from hippo_utils.training.trainer import train

from helpers import run_sets


@pytest.fixture(scope="module")
def trained(tiny_config):
    import keras

    keras.backend.clear_session()
    result = train(tiny_config, progress=False)
    return tiny_config, result


def test_training_writes_the_original_outputs(trained):
    cfg, result = trained
    t = cfg.train
    assert result.epochs_done == 2
    for name in ("best.weights.h5", "last.keras", "state.json", "history.json", "train_eval_infer.config"):
        assert (t.model_dir / name).is_file(), name
    # The original's CSVs: a header with a trailing comma, then "epoch, value, value" per epoch, from the history.
    h = result.history
    for name, cols in (
        ("train_metrics", ("dice_coef_multiclass", "val_dice_coef_multiclass")),
        ("train_losses", ("loss", "val_loss")),
    ):
        expected = ["epoch," + "".join(f"{c}," for c in cols)]
        expected += [f"{e}, " + ", ".join(f"{h[c][e]:.4f}" for c in cols) for e in range(2)]
        assert (t.eval_dir / f"{name}.csv").read_text() == "\n".join(expected) + "\n", name
    assert h["loss"] != h["val_loss"] and h["dice_coef_multiclass"] != h["val_dice_coef_multiclass"]
    # Their plots: one line per column, in Matplotlib's first two colours (markers are solid).
    from helpers import colour_mask, png_pixels

    plots = {name: png_pixels(t.eval_dir / f"{name}.png") for name in ("train_metrics", "train_losses")}
    for name, rgb in plots.items():
        assert 250 < rgb.shape[0] < rgb.shape[1] < 800, name  # 5.5 x 3.4 inches at 100 dpi
        for colour in ("#1f77b4", "#ff7f0e"):
            assert colour_mask(rgb, colour).sum() > 20, f"{name}.png: no line in {colour}"
    assert not np.array_equal(plots["train_metrics"], plots["train_losses"])
    previews = sorted(p.name for p in t.epoch_change_infer_dir.glob("*.png"))
    assert len(previews) == 4 and previews[0].startswith("Epoch_1_")
    history = json.loads((t.model_dir / "history.json").read_text())
    assert len(history["val_dice_fg"]) == 2 and history["loss"][1] < history["loss"][0]
    state = json.loads((t.model_dir / "state.json").read_text())
    assert state["checkpoint"] == "last.e002.keras"  # the epoch's own checkpoint, named by the commit
    assert [p.name for p in t.model_dir.glob("last.e*.keras")] == ["last.e002.keras"]
    assert (t.model_dir / "last.keras").read_bytes() == (t.model_dir / "last.e002.keras").read_bytes()
    prov = json.loads((t.model_dir / "provenance.json").read_text())
    derived = json.loads((cfg.derive.output_dir / "dataset.json").read_text())
    assert prov["hippo_utils"] and prov["tensorflow"] and prov["keras"]
    assert prov["dataset"]["fingerprint"] == derived["fingerprint"]
    assert prov["dataset"]["sources_sha256"] == derived["sources_sha256"]
    assert "[model]" in prov["config"] and len(prov["config_sha256"]) == 64


def test_existing_run_is_never_overwritten(trained):
    cfg, _ = trained
    before = (cfg.train.model_dir / "last.keras").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, progress=False)
    assert (cfg.train.model_dir / "last.keras").read_bytes() == before


def test_resume_continues_from_the_checkpoint(trained):
    cfg, first = trained
    more = load_config(cfg.path, ["train.epochs=3"])
    result = train(more, resume=True, progress=False)
    assert result.epochs_done == 3
    history = json.loads((cfg.train.model_dir / "history.json").read_text())
    assert len(history["loss"]) == 3
    assert history["loss"][:2] == pytest.approx(first.history["loss"][:2])  # kept, not re-run
    lines = (cfg.train.eval_dir / "train_metrics.csv").read_text().splitlines()
    assert [ln.split(",")[0] for ln in lines[1:]] == ["0", "1", "2"]


def test_load_model_dir_predicts(trained):
    cfg, _ = trained
    model, saved = load_model_dir(cfg.train.model_dir)
    assert saved.model == cfg.model
    out = model.predict(np.zeros((1, 32, 32, 3), np.float32), verbose=0)
    assert out.shape == (1, 32, 32, 2) and np.allclose(out.sum(-1), 1, atol=1e-4)


@pytest.mark.parametrize(
    "change",
    [
        ("base_filters = 4", "base_filters = 8"),  # other widths
        ("num_layers = 3", "num_layers = 2"),
    ],
)  # other depth
def test_weights_from_another_architecture_are_refused(trained, tmp_path, change):
    cfg, _ = trained
    other = tmp_path / "other"
    other.mkdir()
    text = (cfg.train.model_dir / "train_eval_infer.config").read_text()
    assert change[0] in text
    (other / "train_eval_infer.config").write_text(text.replace(*change))
    (other / "best.weights.h5").write_bytes((cfg.train.model_dir / "best.weights.h5").read_bytes())
    with pytest.raises(ValueError, match="do not fit the model built from"):
        load_model_dir(other)


def test_mirrored_strategy_option_trains(tiny_config, tmp_path):
    run = tmp_path / "mirrored"
    cfg = load_config(
        tiny_config.path,
        [
            "train.distribute=True",
            "train.epochs=1",
            "train.epoch_change_infer=False",
            f"train.model_dir={run / 'models'}",
            f"train.eval_dir={run / 'eval'}",
        ],
    )
    result = train(cfg, progress=False)
    assert result.epochs_done == 1 and len(result.history["loss"]) == 1
    # the model was built, and so trained, under a MirroredStrategy: its variables are mirrored
    import tensorflow as tf

    assert isinstance(result.model.distribute_strategy, tf.distribute.MirroredStrategy)
    assert result.model.weights and all(
        isinstance(w.value, tf.distribute.DistributedValues) for w in result.model.weights
    )
    # its saved weights (one epoch: the best is the last) give a plain model its predictions
    model, saved = load_model_dir(run / "models")
    assert saved.model == cfg.model and not isinstance(model.weights[0].value, tf.distribute.DistributedValues)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), result.model.predict(x, verbose=0), atol=1e-5)


def test_cosine_schedule_follows_the_epoch_also_after_resume(tiny_config, tmp_path):
    import math

    from hippo_utils.training.callbacks import cosine_learning_rate

    run = tmp_path / "cosine"
    sets = [
        'train.lr_schedule="cosine"',
        "train.learning_rate_reducer=False",
        "train.epoch_change_infer=False",
        f"train.model_dir={run / 'models'}",
        f"train.eval_dir={run / 'eval'}",
    ]
    base = tiny_config.model.learning_rate
    expected = [base * 0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)]
    assert [cosine_learning_rate(e, base=base, epochs=3) for e in range(3)] == pytest.approx(expected)
    assert cosine_learning_rate(7, base=base, epochs=3) == pytest.approx(expected[-1])  # never below the last
    train(load_config(tiny_config.path, [*sets, "train.epochs=1"]), progress=False)
    # the resumed run is 3 epochs long: its epochs 2 and 3 take their rates from that length
    result = train(load_config(tiny_config.path, [*sets, "train.epochs=3"]), resume=True, progress=False)
    assert result.epochs_done == 3
    history = json.loads((run / "models" / "history.json").read_text())
    assert history["learning_rate"][0] == pytest.approx(base)
    assert history["learning_rate"][1:] == pytest.approx(expected[1:], rel=1e-5)


def test_learning_rate_reducer_counters_survive_resume(tiny_config, tmp_path):
    """The plateau reducer waits `reducer_patience` epochs in all, not afresh after --resume:
    a run stopped one epoch short of a reduction reduces in its first resumed epoch. And
    history.json keeps the rate that epoch trained at (as TensorBoard shows it), not the
    lowered one the next epoch will use."""
    run = tmp_path / "reducer"
    sets = [
        "train.reducer_patience=2",
        "train.reducer_factor=0.5",
        "train.epoch_change_infer=False",
        f"train.model_dir={run / 'models'}",
        f"train.eval_dir={run / 'eval'}",
    ]
    train(load_config(tiny_config.path, [*sets, "train.epochs=1"]), progress=False)
    state_path = run / "models" / "state.json"
    state = json.loads(state_path.read_text())
    assert state["reducer"] == {"wait": 0, "cooldown": 0, "best": pytest.approx(state["best"])}
    # as if the first epoch had been a plateau epoch after an unbeatable one
    state["reducer"].update(wait=1, best=2.0)
    write_json(state_path, state)  # as the tool writes it: a hand edit would be refused on resume
    result = train(load_config(tiny_config.path, [*sets, "train.epochs=2"]), resume=True, progress=False)
    base = tiny_config.model.learning_rate
    assert float(np.asarray(result.model.optimizer.learning_rate)) == pytest.approx(base * 0.5)
    assert json.loads(state_path.read_text())["reducer"]["wait"] == 0  # reset by the reduction
    history = json.loads((run / "models" / "history.json").read_text())
    assert history["learning_rate"] == pytest.approx([base, base])


class Recorder:
    """A watcher that notes each event the trainer tells it (train(cfg, watch=...))."""

    def __init__(self):
        self.events: list[tuple] = []

    def train_begin(self, total_epochs, steps, initial_epoch):
        self.events.append(("train_begin", total_epochs, steps, initial_epoch))

    def epoch_begin(self, epoch):
        self.events.append(("epoch_begin", epoch))

    def batch_end(self, batch):
        self.events.append(("batch_end", batch))

    def epoch_end(self, epoch, logs, history):
        self.events.append(("epoch_end", epoch, sorted(logs), len(history["loss"])))

    def show_previews(self, epoch, update):
        self.events.append(("show_previews", epoch, len(update["preds"])))

    def train_end(self, history):
        self.events.append(("train_end", len(history["loss"])))


def test_a_watcher_is_told_the_run_and_a_finished_run_is_shown(tiny_config, tmp_path):
    run = tmp_path / "watched"
    cfg = load_config(
        tiny_config.path,
        [
            "train.epochs=2",
            f"train.model_dir={run / 'models'}",
            f"train.eval_dir={run / 'eval'}",
            f"train.epoch_change_infer_dir={run / 'previews'}",
        ],
    )
    watch = Recorder()
    train(cfg, watch=watch)
    kinds = [e[0] for e in watch.events]
    steps = watch.events[0][2]
    assert watch.events[0] == ("train_begin", 2, steps, 0) and steps > 0
    assert kinds.count("epoch_begin") == 2 and kinds.count("batch_end") == 2 * steps
    ends = [e for e in watch.events if e[0] == "epoch_end"]
    assert [e[3] for e in ends] == [1, 2] and "val_dice_fg" in ends[0][2]  # history already has the epoch
    assert [e[1:] for e in watch.events if e[0] == "show_previews"] == [(0, 2), (1, 2)]
    assert watch.events[-1] == ("train_end", 2)

    again = Recorder()  # a complete run: no training, but the panel still shows its end state
    train(cfg, resume=True, watch=again)
    assert again.events == [("train_begin", 2, steps, 2), ("show_previews", 1, 2), ("train_end", 2)]


def test_resume_trains_on_the_configured_loss(tiny_config, tmp_path):
    """A saved ce_dice model loads back with the loss's default dice_weight: a resumed run must
    be compiled with the config's (it went on with Dice at weight 1 where the demo has 0.1)."""
    from keras import ops

    from hippo_utils.model.losses import ce_dice_loss

    sets = ['model.loss="ce_dice"', "model.dice_weight=0.1", "train.epochs=1", *run_sets(tmp_path)]
    train(load_config(tiny_config.path, sets), progress=False)
    result = train(load_config(tiny_config.path, [*sets, "train.epochs=2"]), resume=True, progress=False)
    rng = np.random.default_rng(0)
    y_true = np.eye(2, dtype=np.float32)[rng.integers(0, 2, (2, 8, 8))]
    y_pred = np.stack([p := rng.uniform(0.1, 0.9, (2, 8, 8)).astype(np.float32), 1 - p], -1)
    resumed = float(ops.convert_to_numpy(result.model.loss(y_true, y_pred)))
    assert resumed == pytest.approx(float(ce_dice_loss(y_true, y_pred, 0.1)), rel=1e-5)
    assert resumed != pytest.approx(float(ce_dice_loss(y_true, y_pred, 1.0)), rel=1e-3)
