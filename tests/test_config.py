from pathlib import Path

import pytest

from hippo_utils import load_config
from hippo_utils.core.config import Config

from helpers import REPO

ORIGINAL = REPO / "tests" / "data" / "original_train_eval_infer.config"


def test_original_config_loads_unchanged():
    cfg = load_config(ORIGINAL)
    assert cfg.model.image_width == cfg.model.image_height == 512
    assert cfg.model.base_kernels == (11, 11)
    assert cfg.model.num_layers == 8
    assert cfg.model.learning_rate == pytest.approx(0.00007)
    assert cfg.model.metrics == ("dice_coef_multiclass",)
    assert cfg.train.epochs == 100  # the commented-out "epochs = 50" is ignored
    assert cfg.train.metrics == ("dice_coef_multiclass", "val_dice_coef_multiclass")
    assert cfg.mask.rgb_map == {(0, 0, 0): 0, (255, 0, 0): 1}
    assert cfg.dataset.class_name == "ImageCategorizedMaskDataset"
    # Paths resolve against the config file's folder, as the original was run from there.
    assert cfg.train.model_dir == ORIGINAL.parent / "models"
    assert cfg.infer.images_dir == ORIGINAL.parent / "mini_test" / "images"


def test_original_unused_keys_give_a_notice():
    cfg = load_config(ORIGINAL)
    assert any("[train] create_backup" in n and "not use" in n for n in cfg.notices)


@pytest.mark.parametrize("name", ["demo", "ci", "hfh_512", "msd_task04"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / f"{name}.config")
    assert isinstance(cfg, Config)
    assert {"model", "train", "mask", "derive"} <= cfg.sections_present
    assert not cfg.notices, f"{name}.config has keys this version does not use: {cfg.notices}"
    # one mask colour per class, and the source labels map onto every hippocampus class
    assert len(cfg.mask.rgb_map) == cfg.model.num_classes
    assert set(cfg.derive.label_map.values()) == set(range(1, cfg.model.num_classes))


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.config"
    p.write_text(text)
    return p


def test_typo_names_file_section_key_and_closest(tmp_path):
    p = _write(tmp_path, "[model]\nnum_layer = 4\n")
    with pytest.raises(ValueError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "[model] num_layer" in msg and "Did you mean 'num_layers'" in msg


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(ValueError, match=r"unknown section \[modle\].*'model'"):
        load_config(_write(tmp_path, "[modle]\nnum_layers = 4\n"))


def test_wrong_type_names_key_and_type(tmp_path):
    with pytest.raises(ValueError, match=r"\[model\] num_layers: expected an integer, got '4'"):
        load_config(_write(tmp_path, '[model]\nnum_layers = "4"\n'))
    with pytest.raises(ValueError, match=r"\[model\] base_kernels: expected a tuple"):
        load_config(_write(tmp_path, "[model]\nbase_kernels = 11\n"))
    with pytest.raises(ValueError, match=r"\[train\] save_weights_only: expected True or False"):
        load_config(_write(tmp_path, "[train]\nsave_weights_only = 1\n"))


def test_malformed_literal(tmp_path):
    with pytest.raises(ValueError, match=r"\[model\] base_kernels: malformed value '\(11,11'"):
        load_config(_write(tmp_path, "[model]\nbase_kernels = (11,11\n"))
    with pytest.raises(ValueError, match=r"Strings must be quoted"):
        load_config(_write(tmp_path, "[model]\noptimizer = Adam\n"))


def test_values_are_never_evaluated(tmp_path):
    p = _write(tmp_path, '[model]\noptimizer = __import__("os").getcwd()\n')
    with pytest.raises(ValueError, match="malformed value"):
        load_config(p)


@pytest.mark.parametrize(
    "text, match",
    [
        (
            "[model]\nimage_width = 100\nimage_height = 100\nnum_layers = 4\n",
            "divisible by 2\\*\\*\\(num_layers-1\\) = 8",
        ),
        ("[model]\nbase_kernels = (4,4)\n", "must be odd"),
        ("[model]\nnum_classes = 3\n", "rgb_map has 2 colours"),
        ("[derive]\nsplit = (0.5, 0.2, 0.2)\n", "sum to 1"),
        ('[derive]\nlayout = "kaggle"\n', "not one of auto, hfh, msd, pairs"),
        ('[derive]\nplane = "coronl"\n', "Did you mean 'coronal'"),
        ("[derive]\nlabel_map = {1: 5}\n", "classes run 0..1"),
        ('[derive]\nsplit_by = "slices"\n', "split_by: 'slices' is not one of subject, slice"),
        ("[model]\ndice_weight = -1\n", "dice_weight: must be zero or more"),
        ("[mask]\nrgb_map = {(0,0,0):0, (300,0,0):1}\n", "outside 0..255"),
        ('[train]\nlr_schedule = "step"\n', 'lr_schedule.*"plateau" or "cosine"'),
        ('[train]\nlr_schedule = "cosine"\n', "set learning_rate_reducer = False too"),
    ],
)
def test_invalid_values(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_config(_write(tmp_path, text))


def test_overrides_use_the_same_parsing(tmp_path):
    cfg = load_config(
        ORIGINAL,
        ["derive.output_dir=out/derived", "model.num_layers=5", "model.image_width=64", "model.image_height=64"],
    )
    assert cfg.derive.output_dir == Path.cwd() / "out" / "derived"
    assert cfg.model.num_layers == 5
    assert cfg.train.images_dir.name == "images"  # explicit in the file: kept
    with pytest.raises(ValueError, match=r"--set: \[model\] num_layers: malformed value 'five'.*an integer"):
        load_config(ORIGINAL, ["model.num_layers=five"])
    with pytest.raises(ValueError, match="Did you mean 'num_layers'"):
        load_config(ORIGINAL, ["model.num_layer=5"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(ORIGINAL, ["num_layers=5"])


def test_missing_section_is_named_when_needed(tmp_path):
    cfg = load_config(_write(tmp_path, "[model]\nnum_layers = 4\n"))
    with pytest.raises(ValueError, match=r"no \[derive\] section, which `derive` needs"):
        cfg.require("derive", "derive")


def test_environment_variables_in_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HIPPO_TEST_ROOT", str(tmp_path))
    cfg = load_config(_write(tmp_path, '[derive]\nsource_dir = "${HIPPO_TEST_ROOT}/vols"\n'))
    assert cfg.derive.source_dir == tmp_path / "vols"
    monkeypatch.delenv("HIPPO_TEST_ROOT")
    cfg = load_config(_write(tmp_path, '[derive]\nsource_dir = "${HIPPO_TEST_ROOT}/vols"\n'))
    assert "${HIPPO_TEST_ROOT}" in str(cfg.derive.source_dir)  # left visible for the error


@pytest.mark.parametrize("name", ["demo.config", "ci.config", "hfh_512.config", "msd_task04.config"])
def test_round_trip_through_ini(tmp_path, name):
    cfg = load_config(REPO / "configs" / name)
    again = load_config(_write(tmp_path, cfg.to_ini()))
    for section in ("model", "train", "infer", "mask", "derive", "augment"):
        assert getattr(again, section) == getattr(cfg, section), section
    # None that overrides a default survives (a trained MSD model's config once lost it)
    assert again.infer.left_right_labels == (None if name.startswith("msd") else (1, 2))
