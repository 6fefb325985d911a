import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from hippo_utils import load_config
from hippo_utils.core.ownership import RECORD_NAME
from hippo_utils.data.derive import derive_dataset, read_manifest, split_subjects
from hippo_utils.data.labels import mask_to_classes
from hippo_utils.data.layouts import find_subjects
from hippo_utils.data.preprocess import SliceGeometry, normalize_intensity, slice_geometry
from hippo_utils.data.volumes import Volume, load_volume

from helpers import toy_volume, write_config, write_nifti


@pytest.fixture(scope="module")
def hfh_dataset(synthetic_hfh, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("der")
    cfg = load_config(
        write_config(
            tmp / "c.config",
            {
                "source_dir": str(synthetic_hfh),
                "output_dir": str(tmp / "out"),
                "split": (0.5, 0.25, 0.25),
                "mini_test_size": 2,
            },
        )
    )
    return cfg, derive_dataset(cfg, progress=False)


def test_hfh_layout_outputs(hfh_dataset):
    cfg, result = hfh_dataset
    out = result.output_dir
    assert result.layout == "hfh"
    rows = read_manifest(out)
    for col in ("subject", "split", "slice_index", "image", "mask", "source", "plane", "pad"):
        assert col in rows[0]
    for r in rows:
        img = Image.open(out / r["image"])
        mask = Image.open(out / r["mask"])
        assert img.mode == "L" and img.size == (64, 64)
        assert mask.mode == "RGB" and mask.size == (64, 64)
        colours = set(map(tuple, np.asarray(mask).reshape(-1, 3).tolist()))
        assert colours <= {(0, 0, 0), (255, 0, 0)}
        assert bool(int(r["has_label"])) == ((255, 0, 0) in colours)
    assert len(list((out / "mini_test" / "images").glob("*.png"))) == 2
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["counts"] == result.counts and "sources_sha256" in meta
    # The bar chart: one bar per split in its colour, left to right, heights in proportion to the counts.
    from hippo_utils.display.figures import SPLIT_COLOURS

    from helpers import colour_mask, png_pixels

    chart = png_pixels(out / "statistics.png")
    assert 200 < chart.shape[0] < chart.shape[1] < 800  # a 5 x 3.2 inch figure at 100 dpi
    bars = {}
    for split, colour in SPLIT_COLOURS.items():
        rows, cols = np.nonzero(colour_mask(chart, colour))
        assert len(rows), f"no {split} bar ({colour})"
        bars[split] = (rows.min(), rows.max(), cols.min(), cols.max())
    assert len({bottom for _, bottom, _, _ in bars.values()}) == 1, "the bars share one baseline"
    assert bars["train"][3] < bars["valid"][2] and bars["valid"][3] < bars["test"][2], "train, valid, test"
    heights = {split: bottom - top + 1 for split, (top, bottom, _, _) in bars.items()}
    scale = heights["train"] / result.counts["train"]
    for split, height in heights.items():
        assert abs(height - scale * result.counts[split]) <= 2, (heights, result.counts)


def test_split_is_by_subject(hfh_dataset):
    _, result = hfh_dataset
    rows = read_manifest(result.output_dir)
    splits_of = {}
    for r in rows:
        splits_of.setdefault(r["subject"], set()).add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    assert {sp for s in splits_of.values() for sp in s} == {"train", "valid", "test"}


def test_leakage_figure_shows_a_test_slice_its_neighbours_and_another_head(hfh_dataset):
    from hippo_utils.data.derive import leakage_example
    from hippo_utils.display import figures as plots

    _, result = hfh_dataset
    rows = read_manifest(result.output_dir)
    fig = plots.split_leakage(leakage_example(result.output_dir, rows))
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4 and titles[0].startswith("test slice")
    test_subject = titles[0].split("\n")[1].split(" #")[0]
    assert all(test_subject in t for t in titles[1:3]) and test_subject not in titles[3]
    assert all("r = " in t for t in titles[1:])
    with pytest.raises(ValueError, match="needs a test slice"):
        plots.split_leakage(leakage_example(result.output_dir, [r for r in rows if r["split"] != "test"]))


def test_a_slice_split_mixes_every_subject_into_every_split(synthetic_hfh, tmp_path):
    """split_by = "slice" (for the leakage lesson) draws each slice on its own: the same
    slices as the subject split, but each subject's neighbours land in train and test."""
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {
                "source_dir": str(synthetic_hfh),
                "output_dir": str(tmp_path / "out"),
                "split": (0.5, 0.25, 0.25),
                "mini_test_size": 0,
            },
        ),
        ['derive.split_by="slice"'],
    )
    result = derive_dataset(cfg, progress=False)
    rows = read_manifest(result.output_dir)
    for subject in {r["subject"] for r in rows}:
        assert {r["split"] for r in rows if r["subject"] == subject} == {"train", "valid", "test"}
    assert sum(result.counts.values()) == len(rows)
    assert all(len(result.subjects[sp]) == 4 for sp in ("train", "valid", "test"))
    with pytest.raises(ValueError, match=r"\[derive\] split_by: 'slices' is not one of subject, slice"):
        load_config(cfg.path, ['derive.split_by="slices"'])


def test_every_labelled_slice_and_a_share_of_empty_ones(hfh_dataset, synthetic_hfh):
    cfg, result = hfh_dataset
    rows = [r for r in read_manifest(result.output_dir) if r["subject"] == "HFH_001"]
    lab = load_volume(synthetic_hfh / "Train" / "Labels" / "HFH_001_Hipp_Labels.img").data
    labelled = sorted(np.nonzero(lab.any(axis=(0, 2)))[0].tolist())  # coronal = axis 1
    kept = [int(r["slice_index"]) for r in rows if r["has_label"] == "1"]
    assert kept == labelled
    empty = [r for r in rows if r["has_label"] == "0"]
    assert len(empty) == round(cfg.derive.empty_slice_ratio * len(labelled))


def test_rerun_changes_nothing_and_other_settings_are_refused(hfh_dataset):
    cfg, result = hfh_dataset
    out = result.output_dir
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = derive_dataset(cfg, progress=False)
    assert again.skipped
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    other = load_config(cfg.path, ["derive.seed=99"])
    with pytest.raises(FileExistsError, match="other settings.*--force"):
        derive_dataset(other, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_same_settings_give_the_same_bytes(hfh_dataset, tmp_path):
    cfg, result = hfh_dataset
    copy = derive_dataset(load_config(cfg.path, [f"derive.output_dir={tmp_path / 'copy'}"]), progress=False)
    for name in ("manifest.csv", "train/images", "test/masks"):
        a, b = result.output_dir / name, copy.output_dir / name
        files = sorted(a.rglob("*")) if a.is_dir() else [a]
        for f in (f for f in files if f.name != RECORD_NAME):  # the record holds times
            assert f.read_bytes() == (b / f.relative_to(a)).read_bytes(), f


def test_failure_leaves_no_partial_dataset(synthetic_hfh, tmp_path, monkeypatch):
    import hippo_utils.data.derive as derive_mod

    cfg = load_config(
        write_config(tmp_path / "c.config", {"source_dir": str(synthetic_hfh), "output_dir": str(tmp_path / "out")})
    )
    real = derive_mod._derive_subject
    calls = []

    def boom(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(derive_mod, "_derive_subject", boom)
    with pytest.raises(RuntimeError):
        derive_dataset(cfg, progress=False)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["c.config"]  # no temporary folder left


def _pairs_tree(root, names, affine=None, shuffle_labels=False):
    for i, name in enumerate(names):
        img, lab = toy_volume(i)
        write_nifti(root / "images" / f"{name}.nii.gz", img, affine)
        write_nifti(root / "labels" / f"{name}.nii.gz", lab, affine)
    return root


def test_pairs_and_msd_layouts(tmp_path):
    names = [f"case_{i:02d}" for i in range(5)]
    pairs = _pairs_tree(tmp_path / "pairs", names)
    assert find_subjects(pairs).layout == "pairs"
    msd = tmp_path / "msd"
    for i, name in enumerate(names):
        img, lab = toy_volume(i)
        write_nifti(msd / "imagesTr" / f"{name}.nii.gz", img)
        write_nifti(msd / "labelsTr" / f"{name}.nii.gz", lab)
    (msd / "imagesTr" / "._case_00.nii.gz").write_bytes(b"mac junk")  # as in the MSD tarball
    (msd / "dataset.json").write_text("{}")
    src = find_subjects(msd)
    assert src.layout == "msd" and [s.name for s in src.labelled] == names
    results = {}
    for root, layout in ((pairs, "pairs"), (msd, "msd")):
        cfg = load_config(
            write_config(
                tmp_path / f"{layout}.config",
                {
                    "source_dir": str(root),
                    "output_dir": str(tmp_path / f"out_{layout}"),
                    "plane": "axis1",
                    "label_map": {1: 1, 2: 1},
                },
                size=32,
            )
        )
        results[layout] = result = derive_dataset(cfg, progress=False)
        rows = read_manifest(result.output_dir)
        assert result.layout == layout and sum(result.counts.values()) == len(rows) > 0
        assert {r["subject"] for r in rows} == set(names) == set(sum(result.subjects.values(), []))
    # the same volumes in either layout give the same dataset: slices, splits and pictures
    a, b = (results[k].output_dir for k in ("pairs", "msd"))
    assert results["pairs"].counts == results["msd"].counts and results["pairs"].subjects == results["msd"].subjects
    ignore = {"source", "label_source"}  # where each volume came from: the one difference
    assert [{k: v for k, v in r.items() if k not in ignore} for r in read_manifest(a)] == [
        {k: v for k, v in r.items() if k not in ignore} for r in read_manifest(b)
    ]
    pictures = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert pictures and pictures == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    assert all((a / p).read_bytes() == (b / p).read_bytes() for p in pictures)


def test_nnunet_channel_suffix_pairs(tmp_path):
    """nnU-Net's raw datasets name images NAME_0000 (the channel) beside labels NAME: they pair,
    under the subject's name, in the msd (with imagesTs) and pairs layouts; a second channel is
    refused by name; names that merely end in four digits are left alone."""
    names = ["hippocampus_001", "hippocampus_004"]
    root = tmp_path / "Dataset004_Hippocampus"
    for i, name in enumerate(names):
        img, lab = toy_volume(i)
        write_nifti(root / "imagesTr" / f"{name}_0000.nii.gz", img)
        write_nifti(root / "labelsTr" / f"{name}.nii.gz", lab)
    write_nifti(root / "imagesTs" / "hippocampus_002_0000.nii.gz", toy_volume(5)[0])
    src = find_subjects(root)
    assert [s.name for s in src.labelled] == names and src.labelled[0].image.name == "hippocampus_001_0000.nii.gz"
    assert [s.name for s in src.unlabelled] == ["hippocampus_002"]
    tests = root / "imagesTs"
    (tests / "hippocampus_002_0000.nii.gz").rename(tests / "scan_0000.nii.gz")
    shutil.copy(tests / "scan_0000.nii.gz", tests / "scan_0001.nii.gz")  # two scans, not two channels: kept
    assert [s.name for s in find_subjects(root).unlabelled] == ["scan_0000", "scan_0001"]
    pairs = tmp_path / "pairs"
    for name in names:
        for sub, suffix in (("images", "_0000"), ("labels", "")):
            (pairs / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(root / f"{sub}Tr" / f"{name}{suffix}.nii.gz", pairs / sub / f"{name}{suffix}.nii.gz")
    assert [s.name for s in find_subjects(pairs, "pairs").labelled] == names
    dates = _pairs_tree(tmp_path / "dates", ["scan_2019", "scan_2020"])  # not channels: kept as they are
    assert [s.name for s in find_subjects(dates).labelled] == ["scan_2019", "scan_2020"]
    shutil.copy(root / "imagesTr" / "hippocampus_001_0000.nii.gz", root / "imagesTr" / "hippocampus_001_0001.nii.gz")
    with pytest.raises(ValueError, match=r"imagesTr: hippocampus_001 has the channels 0000, 0001.*single-channel"):
        find_subjects(root)


def test_pairing_is_by_name_not_listing_order(tmp_path):
    root = _pairs_tree(tmp_path / "p", ["b_subject", "a_subject", "c_subject"])
    # Each label's blob size differs by seed; rename files so that sorted order of
    # labels differs from images if pairing went by position.
    os.rename(root / "labels" / "a_subject.nii.gz", root / "labels" / "tmp.nii.gz")
    os.rename(root / "labels" / "c_subject.nii.gz", root / "labels" / "a_subject.nii.gz")
    os.rename(root / "labels" / "tmp.nii.gz", root / "labels" / "c_subject.nii.gz")
    os.rename(root / "images" / "a_subject.nii.gz", root / "images" / "tmp.nii.gz")
    os.rename(root / "images" / "c_subject.nii.gz", root / "images" / "a_subject.nii.gz")
    os.rename(root / "images" / "tmp.nii.gz", root / "images" / "c_subject.nii.gz")
    for s in find_subjects(root).labelled:
        img = load_volume(s.image).data
        lab = load_volume(s.label).data
        assert img[lab > 0].mean() > img[lab == 0].mean() + 50  # the blob is where the label is


def test_unpaired_and_duplicate_subjects(tmp_path):
    root = _pairs_tree(tmp_path / "p", ["s1", "s2", "s3"])
    (root / "labels" / "s3.nii.gz").unlink()
    with pytest.raises(ValueError, match="images without a label: s3"):
        find_subjects(root)
    assert [s.name for s in find_subjects(root, skip_unpaired=True).labelled] == ["s1", "s2"]
    img, _ = toy_volume(0)
    write_nifti(root / "images" / "s1.nii", img)
    with pytest.raises(ValueError, match="duplicate subject ID 's1'"):
        find_subjects(root, skip_unpaired=True)


def test_empty_missing_and_unknown_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="source folder not found"):
        find_subjects(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        find_subjects(tmp_path / "empty")
    (tmp_path / "odd" / "stuff").mkdir(parents=True)
    with pytest.raises(ValueError, match="unrecognised layout.*hfh.*msd.*pairs"):
        find_subjects(tmp_path / "odd")


def test_split_subjects_is_seeded_and_order_free():
    names = [f"s{i}" for i in range(20)]
    a = split_subjects(names, (0.7, 0.15, 0.15), 1)
    b = split_subjects(list(reversed(names)), (0.7, 0.15, 0.15), 1)
    assert a == b and [len(a[s]) for s in ("train", "valid", "test")] == [14, 3, 3]
    assert split_subjects(names, (0.7, 0.15, 0.15), 2) != a
    small = split_subjects(["x", "y", "z"], (0.8, 0.1, 0.1), 0)
    assert all(len(v) == 1 for v in small.values())


def _oriented_copies(data):
    """The same anatomy stored in different axis orders and flips, with matching affines."""
    spacing = (0.8, 2.0, 0.9)
    base = np.diag([*spacing, 1.0])
    yield data, base
    flipped = np.diag([-spacing[0], spacing[1], spacing[2], 1.0])  # x stored reversed
    yield data[::-1], flipped
    perm = np.zeros((4, 4))
    perm[3, 3] = 1
    perm[:3, :3] = np.array([[0, spacing[0], 0], [0, 0, spacing[1]], [spacing[2], 0, 0]])
    # array axes (z, x, y): world x = axis1, world y = axis2, world z = axis0
    yield np.transpose(data, (2, 0, 1)), perm


def test_orientation_is_handled_explicitly():
    img, _ = toy_volume(3, shape=(24, 20, 22))
    slices = []
    for data, affine in _oriented_copies(img):
        vol = Volume(np.ascontiguousarray(data), affine)
        geom = slice_geometry(vol, "coronal", (32, 32))
        slices.append(geom.orient(vol.data))
    for s in slices[1:]:
        np.testing.assert_array_equal(s, slices[0])


@pytest.mark.parametrize(
    "spacing, size", [((1, 1, 1), (64, 64)), ((0.78, 2.0, 0.78), (48, 64)), ((2.0, 1.0, 0.5), (40, 40))]
)
def test_geometry_round_trip(spacing, size):
    _, lab = toy_volume(1, shape=(30, 26, 34))
    vol = Volume(lab.astype(np.float32), np.diag([*spacing, 1.0]))
    geom = slice_geometry(vol, "axis1", size)
    assert SliceGeometry.from_row({k: str(v) for k, v in geom.as_row().items()}) == geom
    # Square output pixels: the physical aspect is kept.
    (h, w), (H, W) = geom.resized, geom.in_shape
    aspect = (H * geom.pixel_mm[0]) / (W * geom.pixel_mm[1])
    assert abs((h / w) / aspect - 1) <= 1 / min(h, w)  # within half a pixel of rounding each way
    stack = geom.orient(lab)
    back = np.stack([geom.from_model(geom.to_model(s, is_label=True), is_label=True) for s in stack])
    restored = geom.unorient(back)
    assert restored.shape == lab.shape
    assert (restored == lab).mean() > 0.97
    # Class probabilities (as a model gives them) come back aligned too: no shift.
    onehot = np.eye(3, dtype=np.float32)
    probs = [geom.from_model(onehot[geom.to_model(s, is_label=True)]) for s in stack]
    from_probs = geom.unorient(np.stack([p.argmax(-1) for p in probs]).astype(np.uint8))
    fg, got = lab > 0, from_probs > 0
    if geom.resized[0] >= geom.in_shape[0] and geom.resized[1] >= geom.in_shape[1]:  # no downsampling
        assert 2 * (fg & got).sum() / (fg.sum() + got.sum()) > 0.97


def test_downsampled_masks_stay_aligned_with_their_images():
    """Discs shrunk 2x keep, on average, their centre and their area. Nearest neighbour
    would shift every mask half a source pixel in both directions against its image
    (issue 16's over-segmentation); a plain majority would give up every tie."""
    from hippo_utils.data.preprocess import resize_labels

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    offsets, areas, round_trip = [], [], []
    for _ in range(40):
        cy, cx = rng.uniform(30, 98, 2)
        r = rng.uniform(4, 15)
        disc = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.uint8) * 2
        small = resize_labels(disc, (64, 64))
        assert set(np.unique(small)) == {0, 2}
        # Model pixel i covers source pixels 2i and 2i+1: its centre is at 2i + 0.5.
        centre = np.array(np.nonzero(small)).mean(axis=1) * 2 + 0.5
        offsets.append(centre - np.array(np.nonzero(disc)).mean(axis=1))
        areas.append(4 * np.count_nonzero(small) / np.count_nonzero(disc))
        round_trip.append(np.count_nonzero(resize_labels(small, (128, 128))) / np.count_nonzero(disc))
    assert np.abs(np.mean(offsets, axis=0)).max() < 0.1, np.mean(offsets, axis=0)
    assert abs(np.mean(areas) - 1) < 0.03 and abs(np.mean(round_trip) - 1) < 0.03


def test_normalisation_is_robust_to_scale():
    img, _ = toy_volume(2)
    a = normalize_intensity(img)
    b = normalize_intensity(img * 1e4 + 7)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert a.min() == 0.0 and a.max() == 1.0
    with pytest.raises(ValueError, match="constant"):
        normalize_intensity(np.full((4, 4, 4), 3.0))


def test_mask_colours_map_through_rgb_map():
    rgb_map = {(0, 0, 0): 0, (255, 0, 0): 1}
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[1, 1] = (255, 0, 0)
    np.testing.assert_array_equal(mask_to_classes(mask, rgb_map, "m.png"), (mask[..., 0] > 0))
    mask[2, 2] = (0, 255, 0)
    with pytest.raises(ValueError, match=r"m.png: mask colours \[\(0, 255, 0\)\] are not in"):
        mask_to_classes(mask, rgb_map, "m.png")
    grey = np.array([[0, 100], [200, 255]], np.uint8)  # a lossy grey mask, binarised at half
    np.testing.assert_array_equal(mask_to_classes(grey, rgb_map, "g.jpg", exact=False), [[0, 0], [1, 1]])


def test_unknown_label_values_are_an_error(tmp_path):
    root = _pairs_tree(tmp_path / "p", ["s1", "s2", "s3"])
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {"source_dir": str(root), "output_dir": str(tmp_path / "out"), "plane": "axis1", "label_map": {1: 1}},
            size=32,
        )
    )
    with pytest.raises(ValueError, match=r"s\d.nii.gz: label values \[2\] are not in \[derive\] label_map"):
        derive_dataset(cfg, progress=False)
    assert not (tmp_path / "out").exists()


# -- real data (skipped with a reason when HIPPO_REAL_DATA is unset) -----------------------
@pytest.mark.real_data
def test_real_msd_pairs(real_data, tmp_path):
    src = real_data / "msd-task04-hippocampus"
    subset = tmp_path / "msd"
    for sub in ("images", "labels"):
        (subset / sub).mkdir(parents=True)
        for f in sorted((src / sub).glob("*.nii.gz"))[:12]:
            (subset / sub / f.name).symlink_to(f)
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {
                "source_dir": str(subset),
                "output_dir": str(tmp_path / "out"),
                "layout": "pairs",
                "plane": "axis1",
                "label_map": {1: 1, 2: 1},
            },
        )
    )
    result = derive_dataset(cfg, progress=False)
    rows = read_manifest(result.output_dir)
    assert len({r["subject"] for r in rows}) == 12
    assert sum(r["has_label"] == "1" for r in rows) > 300
    assert {r["spacing"] for r in rows} == {"1x1x1"}


@pytest.mark.real_data
@pytest.mark.parametrize("folder, n_subjects", [("hfh-slices-atlan-antillia", 23), ("hfh-slices-sarah-antillia", 8)])
def test_real_hfh_slice_folders(real_data, tmp_path, folder, n_subjects):
    cfg = load_config(
        write_config(
            tmp_path / "c.config", {"source_dir": str(real_data / folder), "output_dir": str(tmp_path / "out")}
        )
    )
    result = derive_dataset(cfg, progress=False)
    assert result.layout == "slices"
    rows = read_manifest(result.output_dir)
    assert len({r["subject"] for r in rows}) == n_subjects
    assert sum(r["has_label"] == "1" for r in rows) >= 0.9 * len(rows)


def test_a_changed_image_is_seen_when_its_label_file_has_the_same_name(tmp_path):
    """MSD-style folders name an image and its labels alike; each file's checksum counts."""
    names = [f"case_{i:02d}" for i in range(4)]
    msd = tmp_path / "msd"
    for i, name in enumerate(names):
        img, lab = toy_volume(i)
        write_nifti(msd / "imagesTr" / f"{name}.nii.gz", img)
        write_nifti(msd / "labelsTr" / f"{name}.nii.gz", lab)
    cfg = load_config(
        write_config(
            tmp_path / "c.config",
            {"source_dir": str(msd), "output_dir": str(tmp_path / "out"), "plane": "axis1", "label_map": {1: 1, 2: 1}},
            size=32,
        )
    )
    first = derive_dataset(cfg, progress=False)
    meta = json.loads((first.output_dir / "dataset.json").read_text())
    assert {"imagesTr/case_00.nii.gz", "labelsTr/case_00.nii.gz"} <= set(meta["sources_sha256"])
    img, _ = toy_volume(0)
    write_nifti(msd / "imagesTr" / "case_00.nii.gz", img * 1.5)  # the image changes, its labels do not
    with pytest.raises(FileExistsError, match=r"was made with other settings or sources"):
        derive_dataset(cfg, progress=False)


def test_ensure_dataset_checks_what_is_there_against_the_config(tmp_path, monkeypatch):
    from hippo_utils.data.sources import ensure_dataset

    root = tmp_path / "mine"
    for i in range(4):
        img, lab = toy_volume(i)
        write_nifti(root / "images" / f"s{i}.nii.gz", img)
        write_nifti(root / "labels" / f"s{i}.nii.gz", lab)
    monkeypatch.setenv("HIPPO_DATA_DIR", str(root))  # the user's data, in another layout than the config's
    path = write_config(
        tmp_path / "c.config",
        {"source_dir": str(tmp_path / "hfh"), "layout": "hfh", "output_dir": str(tmp_path / "out"), "plane": "axis1"},
        size=32,
    )
    cfg = load_config(path)
    out = ensure_dataset(cfg)
    meta = (out / "dataset.json").read_bytes()
    assert ensure_dataset(cfg) == out and (out / "dataset.json").read_bytes() == meta  # again: nothing to do
    with pytest.raises(FileExistsError, match="made with other settings"):  # never used as if it were this one
        ensure_dataset(load_config(path, ["derive.seed=9"]))
