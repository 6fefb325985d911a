"""The layout registry, and a worked example of adding a layout: one :func:`register_layout`
call (here from outside the package, as a user's own layout would be), and a config may name
it, ``auto`` detects it, and a dataset derives from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hippo_utils import derive_dataset, find_subjects, load_config, read_manifest
from hippo_utils.data.layouts import LAYOUTS, Layout, Subject, register_layout

from helpers import toy_volume, write_config, write_nifti

SEG = "_seg.nii.gz"


def _flat_find(root: Path, skip_unpaired: bool):
    """Every ``NAME.nii.gz`` beside its ``NAME_seg.nii.gz``; images without one are unlabelled."""
    images = {p.name.removesuffix(".nii.gz"): p for p in root.glob("*.nii.gz") if not p.name.endswith(SEG)}
    labelled = [Subject(n, p, root / f"{n}{SEG}") for n, p in sorted(images.items()) if (root / f"{n}{SEG}").exists()]
    return labelled, {n: p for n, p in images.items() if not (root / f"{n}{SEG}").exists()}


@pytest.fixture
def flat():
    register_layout(
        Layout(
            "flat",
            "NAME.nii.gz beside NAME_seg.nii.gz in one folder",
            lambda root: any(root.glob(f"*{SEG}")),
            _flat_find,
            detect_rank=9,
        )
    )
    yield
    LAYOUTS.pop("flat")


def test_the_registry_holds_the_four_layouts_in_the_order_errors_list_them():
    assert list(LAYOUTS) == ["hfh", "msd", "pairs", "slices"]
    assert [n for n, x in LAYOUTS.items() if x.slices] == ["slices"]


def test_an_unregistered_layout_is_refused_when_the_config_is_read(tmp_path):
    with pytest.raises(ValueError, match=r"\[derive\] layout: 'flat' is not one of auto, hfh, msd, pairs, slices"):
        load_config(write_config(tmp_path / "c.config", {"layout": "flat"}))


def test_a_registered_layout_is_detected_and_derived(flat, tmp_path):
    src = tmp_path / "flat"
    for i in range(4):
        img, lab = toy_volume(i)
        write_nifti(src / f"case_{i}.nii.gz", img)
        write_nifti(src / f"case_{i}{SEG}", lab)
    write_nifti(src / "new_scan.nii.gz", toy_volume(9)[0])
    found = find_subjects(src)
    assert found.layout == "flat" and not found.slices
    assert [s.name for s in found.labelled] == [f"case_{i}" for i in range(4)]
    assert [s.name for s in found.unlabelled] == ["new_scan"]
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {
                "source_dir": str(src),
                "output_dir": str(tmp_path / "out"),
                "layout": "flat",
                "plane": "axis1",
                "split": (0.5, 0.25, 0.25),
                "label_map": {1: 1, 2: 1},
            },
            size=32,
        )
    )
    result = derive_dataset(cfg, progress=False)
    assert result.layout == "flat"
    assert {r["subject"] for r in read_manifest(result.output_dir)} == {f"case_{i}" for i in range(4)}
