import csv

import nibabel as nib
import numpy as np
import pytest

from hippo_utils.data.layouts import find_subjects
from hippo_utils.data.synthetic import SPACING, make_subject, synthesize
from hippo_utils.data.volumes import load_labels, load_volume


def test_kaggle_layout_and_analyze_format(synthetic_hfh):
    assert sorted(p.name for p in (synthetic_hfh / "Train").glob("*.img")) == [
        "HFH_001.img",
        "HFH_002.img",
        "HFH_003.img",
        "HFH_004.img",
    ]
    assert (synthetic_hfh / "Train" / "Labels" / "HFH_001_Hipp_Labels.hdr").is_file()
    assert (synthetic_hfh / "Test" / "HFH_005.img").is_file()
    img = nib.load(str(synthetic_hfh / "Train" / "HFH_001.hdr"))
    assert isinstance(img, nib.AnalyzeImage) and not isinstance(img, nib.Nifti1Image)
    assert (synthetic_hfh / "Train" / "HFH_001.hdr").stat().st_size == 348  # Analyze 7.5 header
    assert img.shape[3:] == (1,)  # 4D with a singleton last axis, like the real files
    assert np.allclose(img.header.get_zooms()[:3], SPACING)
    assert img.get_data_dtype() == np.int16
    sources = find_subjects(synthetic_hfh)
    assert sources.layout == "hfh" and len(sources.labelled) == 4 and len(sources.unlabelled) == 1


def test_labels_are_two_hippocampi_on_the_correct_sides(synthetic_hfh):
    vol = load_volume(synthetic_hfh / "Train" / "HFH_002.img")
    lab = load_labels(synthetic_hfh / "Train" / "Labels" / "HFH_002_Hipp_Labels.img", like=vol)
    assert set(np.unique(lab)) == {0, 1, 2}
    assert vol.axcodes == ("L", "A", "S")  # nibabel's default Analyze orientation
    # Label 1 is the left hippocampus: larger x index points to the subject's left.
    x1 = np.nonzero(lab == 1)[0].mean()
    x2 = np.nonzero(lab == 2)[0].mean()
    assert x1 > vol.shape[0] / 2 > x2
    # Hippocampi sit below the volume centre (medial temporal lobes), a few cm^3 each.
    assert np.nonzero(lab)[2].mean() < vol.shape[2] / 2
    voxel = np.prod(SPACING)
    for label in (1, 2):
        assert 1500 < (lab == label).sum() * voxel < 5500
    # At grey-matter intensity: darker than the brightest tissue, brighter than CSF/air.
    inside = vol.data[lab > 0].mean()
    assert np.percentile(vol.data, 60) < inside < np.percentile(vol.data, 99.5)


def test_atrophy_makes_one_side_smaller():
    _, normal = make_subject(11)
    _, shrunk = make_subject(11, atrophy_side="right", atrophy_factor=0.8)
    assert (shrunk == 1).sum() == (normal == 1).sum()
    assert (shrunk == 2).sum() < 0.75 * (normal == 2).sum()


def test_healthy_asymmetry_stays_under_the_flag_and_atrophy_is_flagged():
    """Healthy heads: right a little larger, |AI| well under 0.1 (the notebook's rule);
    a shrunken side (ATROPHY_RANGE) is flagged on that side, with room for error."""
    from hippo_utils.data.synthetic import ATROPHY_RANGE
    from hippo_utils.inference.volumetry import asymmetry_index

    healthy = [make_subject(seed, shape=(128, 60, 128), spacing=(1.5625, 3.3, 1.5625))[1] for seed in range(6)]
    ai = [asymmetry_index(float((lab == 1).sum()), float((lab == 2).sum())) for lab in healthy]
    assert max(abs(a) for a in ai) <= 0.07 and np.mean(ai) < 0, ai
    _, shrunk = make_subject(
        3, atrophy_side="left", atrophy_factor=ATROPHY_RANGE[1], shape=(128, 60, 128), spacing=(1.5625, 3.3, 1.5625)
    )
    assert asymmetry_index(float((shrunk == 1).sum()), float((shrunk == 2).sum())) < -0.15


def test_truth_table_matches_labels(synthetic_hfh):
    rows = list(csv.DictReader((synthetic_hfh / "synthetic_subjects.csv").open()))
    assert [r["subject"] for r in rows] == [f"HFH_{i:03d}" for i in range(1, 6)]
    r = rows[0]
    lab = load_labels(synthetic_hfh / "Train" / "Labels" / "HFH_001_Hipp_Labels.img")
    assert float(r["left_mm3"]) == round((lab == 1).sum() * np.prod(SPACING), 1)
    assert any(r["atrophy_side"] for r in rows)  # atrophy_fraction=0.5 gives some


def test_same_seed_same_bytes(tmp_path, synthetic_hfh):
    again = synthesize(tmp_path / "again", n_labelled=4, n_unlabelled=1, seed=5, atrophy_fraction=0.5)
    for rel in ("Train/HFH_003.img", "Train/Labels/HFH_003_Hipp_Labels.img", "Test/HFH_005.hdr"):
        assert (again / rel).read_bytes() == (synthetic_hfh / rel).read_bytes()
    a, _ = make_subject(1)
    b, _ = make_subject(2)
    assert not np.array_equal(a, b)


def test_a_set_from_an_older_generator_is_not_reused(tmp_path):
    """Its subjects differ from what the config would make now: refused with the way out,
    and nothing in it is touched."""
    import json

    from hippo_utils import load_config
    from hippo_utils.data.sources import ensure_synthetic

    from helpers import write_config

    cfg = load_config(write_config(tmp_path / "c.config", {"source_dir": str(tmp_path / "syn")}))
    old = tmp_path / "syn"
    old.mkdir()
    s = cfg.synthetic
    stamp = {
        "n_labelled": s.n_labelled,
        "n_unlabelled": s.n_unlabelled,
        "seed": s.seed,
        "atrophy_fraction": s.atrophy_fraction,
    }
    (old / "synthetic.json").write_text(json.dumps(stamp))
    with pytest.raises(FileExistsError, match=r"version 1 of the synthetic generator.*Remove"):
        ensure_synthetic(cfg)
    assert json.loads((old / "synthetic.json").read_text()) == stamp


def test_a_configured_real_folder_is_used_not_replaced(tmp_path):
    """resolve_source takes [derive] source_dir when it holds real data (here a pairs
    layout), instead of trying to make synthetic data there."""
    from hippo_utils import load_config
    from hippo_utils.data.sources import resolve_source

    from helpers import toy_volume, write_config, write_nifti

    src = tmp_path / "real"
    img, lab = toy_volume(1)
    write_nifti(src / "images" / "s1.nii.gz", img)
    write_nifti(src / "labels" / "s1.nii.gz", lab)
    cfg = load_config(write_config(tmp_path / "c.config", {"source_dir": str(src), "layout": "pairs"}))
    found = resolve_source(cfg, allow_download=False)
    assert found.path == src and found.kind == "config"
