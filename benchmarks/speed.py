"""Speed and memory measurements, printed as figures. Run from the repository root:

    python benchmarks/speed.py all          # everything below, in one run (about 25 min on 2 cores)
    python benchmarks/speed.py pipeline     # fit: tf.data pipeline vs the same batches in memory
    python benchmarks/speed.py epochs       # several epochs with validation: per-epoch iterators vs the trainer's
    python benchmarks/speed.py inference    # a batch of volumes end to end vs the pure forward pass
    python benchmarks/speed.py batch        # what the output lock and table merging cost in a batch
    python benchmarks/speed.py precision    # training and inference images/s, float32 vs bfloat16/float16
    python benchmarks/speed.py gpu          # hfh_512 on a GPU: precision x XLA, peak memory, demo epochs
    python benchmarks/speed.py folder       # image-folder inference vs a one-image model.predict loop
    python benchmarks/speed.py memory       # peak RSS of training at N and 4N slices
    python benchmarks/speed.py flops        # forward FLOP/s at 128/256/512 vs a large matmul
    python benchmarks/speed.py levers       # batch size, jit_compile, eager vs compiled, threads
    python benchmarks/speed.py viewer       # slice viewer time per slider move

Options: --config (default configs/demo.config; its synthetic data is made and derived
when missing), --model-dir (a trained model for inference/folder; weights do not change
speed, so an untrained FlexUNet of the config is used otherwise), --volumes N.
Every figure is a ratio of two runs on the same machine in the same process (memory:
two fresh processes), so it says something on any machine; the absolute numbers are
for the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from hippo_utils import load_config  # noqa: E402

from common import ROOT  # noqa: E402  (benchmarks/ is sys.path[0]: this runs as a file)


def _volumes(cfg, n: int) -> list[Path]:
    from hippo_utils.data.sources import ensure_synthetic

    src = ensure_synthetic(cfg)
    files = sorted((src / "Train").glob("*.img"))[:n]
    if len(files) < n:
        raise SystemExit(f"only {len(files)} volumes in {src}")
    return files


def _model_dir(args, cfg) -> Path:
    """A model folder to infer with: --model-dir, or an untrained FlexUNet of the config saved as one."""
    if args.model_dir:
        return Path(args.model_dir)
    from hippo_utils.model.flexunet import build_flexunet
    from hippo_utils.model.folder import write_config

    folder = Path(tempfile.mkdtemp()) / "models"
    saved = load_config(args.config, [f"train.model_dir={folder}"])
    write_config(saved)
    build_flexunet(saved.model).save_weights(str(folder / "best.weights.h5"))
    return folder


def bench_inference(args) -> None:
    """A batch of volumes end to end (load, pre-process, predict, reassemble, write NIfTI and
    QC picture) against the pure forward pass over the same slices, with the same test-time
    flips; the batch pipeline against the same work done one volume after the other; peak
    traced memory of a batch against that of one volume."""
    import tracemalloc

    from hippo_utils.data.volumes import load_volume
    from hippo_utils.inference.predict import predict_batches, prepare_volume, slice_probabilities
    from hippo_utils.inference.segment import _segment_batch, _write_prediction, infer_volume, output_names
    from hippo_utils.model.folder import load_model_dir

    cfg = load_config(args.config)
    model, cfg = load_model_dir(_model_dir(args, cfg))
    files = _volumes(cfg, args.volumes)
    bs = cfg.infer.batch_size
    names = output_names(files)

    def batch(these, out) -> float:
        t = time.perf_counter()
        results, error = _segment_batch(
            model, cfg, these, out, names, dict.fromkeys(these), None, False, record=lambda _: None
        )
        assert error is None and len(results) == len(these), error
        return time.perf_counter() - t

    batch(files[:1], Path(tempfile.mkdtemp()))  # warm-up: traces the model

    def one_at_a_time() -> float:
        t = time.perf_counter()
        out = Path(tempfile.mkdtemp())
        for f in files:
            infer_volume(model, cfg, f, out, name=names[f])
        return time.perf_counter() - t

    def forward_pass(x) -> float:
        t = time.perf_counter()
        predict_batches(model, x, bs, flip=cfg.infer.flip_tta)
        return time.perf_counter() - t

    x = np.concatenate([prepare_volume(cfg, load_volume(f)).inputs for f in files])
    # Interleaved and repeated, each the fastest of its runs: this machine's speed drifts by
    # 10-20% within minutes, which one run of each would read as a difference.
    timings = {"pipeline": [], "one at a time": [], "forward": []}
    for _ in range(args.repeats):
        timings["pipeline"].append(batch(files, Path(tempfile.mkdtemp())))
        timings["forward"].append(forward_pass(x))
        timings["one at a time"].append(one_at_a_time())
    end_to_end, sequential, forward = (min(timings[k]) for k in ("pipeline", "one at a time", "forward"))
    out = Path(tempfile.mkdtemp())

    stages = dict.fromkeys(("load", "pre-process", "predict", "reassemble + write"), 0.0)
    inputs_all = []
    for f in files:
        t = time.perf_counter()
        vol = load_volume(f)
        stages["load"] += time.perf_counter() - t
        t = time.perf_counter()
        prepared = prepare_volume(cfg, vol)
        stages["pre-process"] += time.perf_counter() - t
        inputs_all.append(prepared.inputs)
        t = time.perf_counter()
        probs = slice_probabilities(model, cfg, prepared)
        stages["predict"] += time.perf_counter() - t
        t = time.perf_counter()
        _write_prediction(model, cfg, prepared, probs, out, names[f], None, qc=True)
        stages["reassemble + write"] += time.perf_counter() - t
    slices = sum(len(x) for x in inputs_all)

    tracemalloc.start()
    batch(files[:1], Path(tempfile.mkdtemp()))
    one = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    batch(files, Path(tempfile.mkdtemp()))
    many = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    print(
        f"inference benchmark: {len(files)} volumes, {slices} slices, model {cfg.image_size}, batch {bs}, "
        f"flip_tta {cfg.infer.flip_tta}, {os.cpu_count()} CPU cores"
    )
    print(
        f"  end to end (pipeline)  {end_to_end:7.2f} s  = {end_to_end / len(files):.2f} s per volume, "
        f"{slices / end_to_end:.1f} slices/s"
    )
    print(f"  one volume at a time   {sequential:7.2f} s  (the same work without the pipeline)")
    print(f"  pure forward pass      {forward:7.2f} s  = {slices / forward:.1f} slices/s")
    print(
        f"  ratio end-to-end / forward = {end_to_end / forward:.2f} (one at a time: {sequential / forward:.2f}); "
        f"fastest of {args.repeats} interleaved runs each: "
        + "; ".join(f"{k} {', '.join(f'{v:.1f}' for v in vs)} s" for k, vs in timings.items())
    )
    total = sum(stages.values())
    print("  stages, one at a time: " + ", ".join(f"{k} {v:.2f} s ({100 * v / total:.0f}%)" for k, v in stages.items()))
    print(
        f"  peak traced memory: {one / 2**20:.0f} MiB for 1 volume, {many / 2**20:.0f} MiB for {len(files)} "
        "(bounded: the pipeline holds two volumes at most)"
    )


def bench_batch(args) -> None:
    """What the batch safety costs: the output-folder lock and merging the tables with the
    rows of earlier batches, against the time of a batch of --volumes volumes."""
    import json

    from hippo_utils.core.locks import folder_lock
    from hippo_utils.core.tables import merge_rows, write_table
    from hippo_utils.inference.segment import infer_volumes

    cfg = load_config(args.config)
    model_dir = _model_dir(args, cfg)
    files = _volumes(cfg, args.volumes)
    out = Path(tempfile.mkdtemp()) / "out"
    infer_volumes(model_dir, files[:1], Path(tempfile.mkdtemp()), progress=False)  # warm-up
    t = time.perf_counter()
    infer_volumes(model_dir, files, out, progress=False)
    total = time.perf_counter() - t
    rows = json.loads((out / "volumetry.json").read_text())
    reps = 20
    t = time.perf_counter()
    for _ in range(reps):
        with folder_lock(out, "benchmark"):
            pass
    lock = (time.perf_counter() - t) / reps
    older = [{**r, "input": f"/earlier/{i}/{r['input']}"} for i in range(10) for r in rows]  # 10 batches before
    t = time.perf_counter()
    for _ in range(reps):
        write_table(merge_rows(older, rows, "input"), out / "merge_test.csv")
    merge = (time.perf_counter() - t) / reps
    print(f"batch benchmark: {len(files)} volumes in {total:.1f} s")
    print(f"  taking and releasing the folder lock: {1000 * lock:.2f} ms = {100 * lock / total:.3f}% of the batch")
    print(
        f"  merging {len(rows)} new rows into {len(older)} earlier ones and writing the table: {1000 * merge:.1f} ms "
        f"= {100 * merge / total:.3f}% of the batch"
    )


# ------------------------------------------------------------------------- helpers
def _demo_data(cfg):
    from hippo_utils.data.sources import ensure_dataset

    ensure_dataset(cfg)
    return cfg


def _model(cfg, compiled: bool = True, **compile_kw):
    import keras

    from hippo_utils.model.flexunet import build_flexunet
    from hippo_utils.training.trainer import compile_model

    keras.utils.set_random_seed(cfg.train.seed)
    model = build_flexunet(cfg.model, seed=cfg.train.seed)
    if compiled:
        compile_model(model, cfg, **compile_kw)
    return model


def _timed_epoch(model, data, **fit_kw) -> float:
    t = time.perf_counter()
    model.fit(data, epochs=1, verbose=0, shuffle=False, **fit_kw)
    return time.perf_counter() - t


def _rate(fn, n_items: int, repeats: int = 3) -> float:
    """Items per second of ``fn()``, best of ``repeats`` after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


# ------------------------------------------------------------------------- benchmarks
def bench_pipeline(args) -> None:
    """fit throughput with the tf.data pipeline against the same batches already in memory,
    without and with augmentation (which runs inside the pipeline, on the same cores)."""
    import dataclasses

    from hippo_utils.data.dataset import make_dataset

    base = _demo_data(load_config(args.config))
    print(
        f"training input pipeline: fit, {base.image_size} slices, batch {base.train.batch_size}, "
        f"{os.cpu_count()} CPU cores"
    )
    for augment in (False, True):
        cfg = dataclasses.replace(base, augment=dataclasses.replace(base.augment, enabled=augment))
        ds = make_dataset(cfg, "train")  # decode, cache, shuffle, [augment], batch, prefetch: as training
        model = _model(cfg)
        _timed_epoch(model, ds)  # traces the train step and fills the cache
        batches = [(x.numpy(), y.numpy()) for x, y in ds]  # one epoch of the pipeline's own output
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        n, bs = len(x), cfg.train.batch_size
        pipe, mem = [], []
        for _ in range(2):  # alternate, so that a disturbance hits both alike; best of two
            pipe.append(n / _timed_epoch(model, ds))
            mem.append(n / _timed_epoch(model, x, y=y, batch_size=bs))
        print(
            f"  augmentation {'on ' if augment else 'off'}: {n} slices; tf.data pipeline {max(pipe):5.1f} images/s, "
            f"the same batches in memory {max(mem):5.1f} images/s; ratio {max(pipe) / max(mem):.2f} "
            "(target >= 0.9)"
        )


def bench_epochs(args) -> None:
    """Several epochs in one fit, with validation, as the trainer runs them: a new tf.data
    iterator each epoch (Keras's default for a finite dataset) against the trainer's one
    repeated training iterator and unautotuned validation dataset (see make_dataset)."""
    import keras
    import tensorflow as tf

    from hippo_utils.data.dataset import make_dataset

    cfg = _demo_data(load_config(args.config))
    epochs = 4

    class Times(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    print(
        f"training epochs with validation: fit, {epochs} epochs, the first not counted, batch "
        f"{cfg.train.batch_size}, {os.cpu_count()} CPU cores"
    )
    results = {}
    for how in ("new iterators each epoch", "the trainer's datasets"):
        times: list[float] = []
        model = _model(cfg)
        if how == "the trainer's datasets":
            train_ds, valid_ds = make_dataset(cfg, "train", repeat=True), make_dataset(cfg, "valid")
            model.fit(
                train_ds,
                validation_data=valid_ds,
                epochs=epochs,
                steps_per_epoch=train_ds.steps,
                callbacks=[Times()],
                verbose=0,
                shuffle=False,
            )
        else:
            options = tf.data.Options()
            options.autotune.enabled = True  # as a default tf.data pipeline
            train_ds, valid_ds = make_dataset(cfg, "train"), make_dataset(cfg, "valid").with_options(options)
            model.fit(train_ds, validation_data=valid_ds, epochs=epochs, callbacks=[Times()], verbose=0, shuffle=False)
        results[how] = float(np.mean(times[1:]))
        print(
            f"  {how}: {', '.join(f'{t:.1f}' for t in times)} s per epoch; "
            f"mean after the first {results[how]:.1f} s, {train_ds.steps * cfg.train.batch_size / results[how]:.1f} "
            "images/s"
        )
    before, after = results.values()
    print(f"  epoch time ratio, trainer / new iterators: {after / before:.2f}")


def bench_folder(args) -> None:
    """infer_folder against the original's one image at a time model.predict loop."""
    from PIL import Image

    from hippo_utils.core.png import png_bytes
    from hippo_utils.data.labels import Labels
    from hippo_utils.inference.segment import infer_folder
    from hippo_utils.model.folder import load_model_dir

    cfg = _demo_data(load_config(args.config))
    model = load_model_dir(args.model_dir)[0] if args.model_dir else _model(cfg, compiled=False)
    images_dir = cfg.test.images_dir
    paths = sorted(images_dir.glob("*.png"))[: args.images]
    folder = Path(tempfile.mkdtemp()) / "images"
    folder.mkdir()
    for p in paths:
        (folder / p.name).write_bytes(p.read_bytes())
    out = Path(tempfile.mkdtemp())
    infer_folder(model, cfg, folder, out / "warm", progress=False)
    t = time.perf_counter()
    infer_folder(model, cfg, folder, out / "batched", progress=False)
    batched = time.perf_counter() - t

    lut = Labels.from_config(cfg).colours
    h, w = cfg.image_size

    def naive() -> None:  # the original: read, resize, model.predict one image, colour, write
        (out / "naive").mkdir(exist_ok=True)
        for p in sorted(folder.glob("*.png")):
            img = Image.open(p).convert("RGB")
            x = np.asarray(img.resize((w, h)), np.float32)[None]
            pred = model.predict(x, verbose=0)[0].argmax(-1).astype(np.uint8)
            mask = Image.fromarray(lut[pred]).resize(img.size, Image.Resampling.NEAREST)
            (out / "naive" / p.name).write_bytes(png_bytes(np.asarray(mask)))

    naive()  # warm-up
    t = time.perf_counter()
    naive()
    one_by_one = time.perf_counter() - t
    n = len(paths)
    print(
        f"image-folder inference: {n} images of {cfg.image_size} ({images_dir}), "
        f"batch {cfg.infer.batch_size}, {os.cpu_count()} CPU cores"
    )
    print(f"  one image at a time, model.predict (the original) {one_by_one:6.2f} s = {n / one_by_one:6.1f} images/s")
    print(f"  infer_folder, batched (masks, overlays, strips)   {batched:6.2f} s = {n / batched:6.1f} images/s")
    print(f"  speed-up {one_by_one / batched:.1f}x")


def _train_rss_child(args) -> None:
    """(run in a fresh process) train one epoch on a folder, print peak RSS in MB."""
    import resource

    from hippo_utils.training.trainer import train

    folder = Path(args.folder)
    cfg = load_config(
        args.config,
        [
            f"train.images_dir={folder / 'images'}",
            f"train.masks_dir={folder / 'masks'}",
            f"valid.images_dir={folder / 'valid_images'}",
            f"valid.masks_dir={folder / 'valid_masks'}",
            f"train.model_dir={folder / args.cache / 'model'}",
            f"train.eval_dir={folder / args.cache / 'eval'}",
            f"train.epoch_change_infer_dir={folder / args.cache / 'previews'}",
            "train.epochs=1",
            "train.epoch_change_infer=False",
            f"train.cache={args.cache!r}",
        ],
    )
    t = time.perf_counter()
    train(cfg, progress=False)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RSS {rss:.0f} {time.perf_counter() - t:.1f}")


def bench_memory(args) -> None:
    """Peak RSS of training (one epoch, fresh process) with N and 4N training slices."""
    import shutil
    import subprocess

    cfg = _demo_data(load_config(args.config))
    pairs = sorted(cfg.train.images_dir.glob("*.png"))
    n = min(args.slices, len(pairs))
    root = Path(tempfile.mkdtemp())
    results = {}
    for count in (n, 4 * n):
        folder = root / f"n{count}"
        for sub in ("images", "masks", "valid_images", "valid_masks"):
            (folder / sub).mkdir(parents=True)
        for i in range(count):  # copies under new names: 4N distinct files, as a 4x larger dataset
            src = pairs[i % n]
            for kind, src_dir in (("images", cfg.train.images_dir), ("masks", cfg.train.masks_dir)):
                os.link(src_dir / src.name, folder / kind / f"{i:05d}_{src.name}")
        for src in sorted(cfg.valid.images_dir.glob("*.png"))[:32]:
            shutil.copy(src, folder / "valid_images" / src.name)
            shutil.copy(cfg.valid.masks_dir / src.name, folder / "valid_masks" / src.name)
        for cache in ("auto", "none"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "_train_rss",
                    "--config",
                    args.config,
                    "--folder",
                    str(folder),
                    "--cache",
                    cache,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            line = [x for x in out.stdout.splitlines() if x.startswith("RSS ")]
            if out.returncode or not line:
                raise SystemExit(f"training child failed:\n{out.stderr[-3000:]}")
            results[count, cache] = tuple(float(v) for v in line[-1].split()[1:])
    shutil.rmtree(root)
    mb = cfg.model.image_height * cfg.model.image_width * (cfg.model.image_channels + 1) / 2**20
    print(f"training memory: one epoch in a fresh process, {cfg.image_size} slices, batch {cfg.train.batch_size}")
    for cache in ("auto", "none"):
        a, b = results[n, cache], results[4 * n, cache]
        what = (
            "auto: decoded slices cached while they fit 1 GiB"
            if cache == "auto"
            else "none: PNGs decoded again each epoch"
        )
        print(f"  [train] cache = {what}")
        print(f"    N  = {n:5d} slices: peak RSS {a[0]:6.0f} MB ({a[1]:.0f} s)")
        print(f"    4N = {4 * n:5d} slices: peak RSS {b[0]:6.0f} MB ({b[1]:.0f} s)")
        print(
            f"    ratio 4N / N = {b[0] / a[0]:.2f}  (target <= 1.2; the 3N extra decoded slices are "
            f"{3 * n * mb:.0f} MB)"
        )


def conv_flops(model) -> int:
    """Multiply-adds x 2 of every convolution (and transposed convolution) for one image."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw, cout, cin = layer.kernel.shape
            _, h, w, _ = layer.input.shape
            total += 2 * h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, h, w, _ = layer.output.shape
            total += 2 * h * w * kh * kw * cin * cout
    return int(total)


def matmul_peak(repeats: int = 3) -> tuple[float, str]:
    """The practical peak: the best FLOP/s of large float32 matrix products, by TensorFlow
    and by NumPy's BLAS, at 2048 and 4096. Returns (FLOP/s, which one)."""
    import tensorflow as tf

    best = (0.0, "")
    for n in (2048, 4096):
        a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
        b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
        ta, tb = tf.constant(a), tf.constant(b)
        for name, fn in (
            (f"TF matmul {n}", lambda ta=ta, tb=tb: tf.matmul(ta, tb).numpy()),
            (f"NumPy matmul {n}", lambda a=a, b=b: a @ b),
        ):
            best = max(best, (_rate(fn, 2 * n**3, repeats), name))
    return best


def bench_flops(args) -> None:
    """Achieved forward FLOP/s of the FlexUNet at 128, 256 and 512 against a large matmul."""
    import dataclasses

    import tensorflow as tf

    cfg = load_config(args.config)
    peak, which = matmul_peak()
    print(
        f"model efficiency: forward pass, float32, {os.cpu_count()} CPU cores, "
        f"TF {tf.__version__}; peak = best large matmul ({which}) {peak / 1e9:.1f} GFLOP/s"
    )
    original = load_config(ROOT / "tests" / "data" / "original_train_eval_infer.config").model
    cases = [
        (f"{args.config_name} architecture", dataclasses.replace(cfg.model, image_height=s, image_width=s), b)
        for s, b in ((128, 16), (256, 8), (512, 2))
    ]
    cases.append(("original 11x11, 8 levels", original, 1))
    for name, m, batch in cases:
        from hippo_utils.model.flexunet import build_flexunet

        model = build_flexunet(m)
        x = (
            np.random.default_rng(0)
            .uniform(0, 255, (batch, m.image_height, m.image_width, m.image_channels))
            .astype(np.float32)
        )
        flops = conv_flops(model)
        rate = _rate(lambda model=model, x=x: model.predict_on_batch(x), batch, repeats=2)
        print(
            f"  {name:30s} {m.image_height}x{m.image_width} batch {batch:2d}: {flops / 1e9:7.2f} GFLOP/image, "
            f"{rate:7.2f} images/s = {rate * flops / 1e9:6.1f} GFLOP/s = {rate * flops / peak:5.1%} of peak"
        )


def _policy_rates(cfg, policy: str, jit_compile="auto", steps: int = 20) -> dict[str, float]:
    """Training and inference images/s of ``cfg``'s FlexUNet under ``policy`` (in-memory batches
    of [train] batch_size, and of 16 or more images for inference; the first steps not
    counted), and on a GPU the peak memory of each (bytes)."""
    import keras
    import tensorflow as tf

    from hippo_utils.model.flexunet import build_flexunet, memory_estimate
    from hippo_utils.training.trainer import compile_model

    m, bs = cfg.model, cfg.train.batch_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (bs, m.image_height, m.image_width, m.image_channels)).astype("float32")
    y = np.eye(m.num_classes, dtype="float32")[rng.integers(0, m.num_classes, (bs, m.image_height, m.image_width))]
    big = np.repeat(x, max(1, 16 // bs), axis=0)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.backend.clear_session()
    model = build_flexunet(m, seed=0, dtype_policy=policy)
    compile_model(model, cfg, jit_compile=jit_compile)
    out = {"estimate": memory_estimate(model, bs).total}
    for what, run, n in (
        ("training", lambda: model.train_on_batch(x, y), bs),
        ("inference", lambda: model.predict_on_batch(big), len(big)),
    ):
        for _ in range(3):
            run()
        if gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
        t = time.perf_counter()
        for _ in range(steps):
            run()
        out[what] = steps * n / (time.perf_counter() - t)
        if gpu:
            out[f"{what}_peak"] = tf.config.experimental.get_memory_info("GPU:0")["peak"]
    return out


def bench_precision(args) -> None:
    """Training and inference images/s of the config's FlexUNet in float32 against each reduced
    precision this machine has (bfloat16 on a CPU with AMX or AVX512-BF16, float16 on a GPU
    with tensor cores), in one run: in-memory batches, the first steps not counted."""
    from hippo_utils.model.precision import cpu_bfloat16_flags, cpu_flags, gpu_with_tensor_cores

    cfg = load_config(args.config)
    m = cfg.model
    policies = ["float32"]
    if cpu_bfloat16_flags() or gpu_with_tensor_cores():
        policies.append("mixed_bfloat16")
    if gpu_with_tensor_cores():
        policies.append("mixed_float16")
    flags = sorted(cpu_flags() & {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f"})
    print(
        f"precision benchmark: {args.config_name}, {m.image_height}x{m.image_width}, training batch "
        f"{cfg.train.batch_size}, CPU flags {flags}, "
        f"GPU {gpu_with_tensor_cores() or 'none with tensor cores'}"
    )
    base = None
    for policy in policies:
        rates = _policy_rates(cfg, policy)
        base = base or rates
        train_x, infer_x = rates["training"] / base["training"], rates["inference"] / base["inference"]
        print(
            f"  {policy:15s} training {rates['training']:6.1f} images/s ({train_x:.2f}x), "
            f"inference {rates['inference']:6.1f} images/s ({infer_x:.2f}x)"
        )


def bench_gpu(args) -> None:
    """The original 512x512 FlexUNet (--gpu-config, configs/hfh_512.config) on a GPU: training and
    inference images/s in float32, mixed float16 (GPUs with tensor cores) and mixed bfloat16 (a
    policy the device cannot run is reported as failed), each with XLA off and on for both; the
    peak GPU memory of each next to the estimate; then --gpu-epochs (default 3) epochs of the
    demo config with its own settings. Without a GPU it says so and measures nothing, unless
    --on-cpu (with --size to make the model small enough)."""
    import tensorflow as tf

    from hippo_utils.model.precision import cpu_bfloat16_flags, gpu_with_tensor_cores

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.on_cpu:
        print("gpu benchmark: no GPU visible to TensorFlow; nothing measured (--on-cpu runs it anyway)")
        return
    sets = [f"model.image_width={args.size}", f"model.image_height={args.size}"] if args.size else []
    cfg = load_config(args.gpu_config, sets)
    m = cfg.model
    device = (
        tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
        if gpus
        else f"CPU ({os.cpu_count()} cores)"
    )
    policies = [
        "float32",
        "mixed_float16" if gpu_with_tensor_cores() else None,
        "mixed_bfloat16" if gpus or cpu_bfloat16_flags() else None,
    ]
    print(
        f"gpu benchmark on {device}: {Path(args.gpu_config).name}, {m.image_height}x{m.image_width}, "
        f"{m.num_layers} levels, {m.base_kernels} kernels, training batch {cfg.train.batch_size}"
    )
    mib = 2**20
    base = None
    for policy in filter(None, policies):
        for jit in (False, True):
            try:
                rates = _policy_rates(cfg, policy, jit_compile=jit, steps=args.gpu_steps)
            except Exception as e:  # noqa: BLE001 - a policy the device cannot run is a figure too
                print(f"  {policy:15s} XLA {'on ' if jit else 'off'}: failed: {type(e).__name__}: {str(e)[:200]}")
                continue
            base = base or rates
            peaks = (
                f", peak GPU memory training {rates['training_peak'] / mib:,.0f} MiB (estimated "
                f"{rates['estimate'] / mib:,.0f}), inference {rates['inference_peak'] / mib:,.0f} MiB"
                if "training_peak" in rates
                else ""
            )
            print(
                f"  {policy:15s} XLA {'on ' if jit else 'off'}: training {rates['training']:7.2f} images/s "
                f"({rates['training'] / base['training']:.2f}x), inference {rates['inference']:7.2f} images/s "
                f"({rates['inference'] / base['inference']:.2f}x){peaks}",
                flush=True,
            )
    if args.gpu_epochs:
        from hippo_utils.training.trainer import train

        demo = _demo_data(load_config(args.config))
        with tempfile.TemporaryDirectory() as tmp:
            run = load_config(
                demo.path,
                [
                    f"train.model_dir={tmp}/models",
                    f"train.eval_dir={tmp}/eval",
                    f"train.epochs={args.gpu_epochs}",
                    "train.epoch_change_infer=False",
                ],
            )
            times = train(run, progress=False).history["epoch_time_s"]
        print(
            f"  demo config ({args.config_name}): epoch times {', '.join(f'{t:.1f}' for t in times)} s "
            f"(the first includes building and tracing)"
        )


def bench_levers(args) -> None:
    """What helps on this machine: batch size, jit_compile, compiled vs eager, threads."""
    import subprocess

    import tensorflow as tf

    cfg = load_config(args.config)
    h, w, c = cfg.model.image_height, cfg.model.image_width, cfg.model.image_channels
    rng = np.random.default_rng(0)
    model = _model(cfg, compiled=False)
    print(
        f"levers, forward pass of the {args.config_name} FlexUNet at {h}x{w}, {os.cpu_count()} CPU cores "
        "(slices/s, best of 3):"
    )
    x64 = rng.uniform(0, 255, (64, h, w, c)).astype(np.float32)
    for bs in (1, 4, 8, 16, 32, 64):

        def run(bs=bs):
            for i in range(0, 64, bs):
                model.predict_on_batch(x64[i : i + bs])

        print(f"  batch size {bs:3d}: predict_on_batch {_rate(run, 64):7.1f}")
    x = x64[: cfg.infer.batch_size]
    n = len(x)
    eager = _rate(lambda: model(x, training=False).numpy(), n)
    compiled = _rate(lambda: model.predict_on_batch(x), n)
    xla = tf.function(lambda t: model(t, training=False), jit_compile=True)
    jit = _rate(lambda: xla(x).numpy(), n)
    fixed = tf.function(lambda t: model(t, training=False), input_signature=[tf.TensorSpec((n, h, w, c), tf.float32)])
    sig = _rate(lambda: fixed(x).numpy(), n)
    print(
        f"  batch {n}: eager call {eager:.1f}, predict_on_batch {compiled:.1f}, tf.function with a fixed "
        f"input signature {sig:.1f}, tf.function(jit_compile=True) {jit:.1f}"
    )

    from hippo_utils.data.dataset import make_dataset

    _demo_data(cfg)
    ds = make_dataset(cfg, "train")
    xs, ys = next(iter(ds.unbatch().batch(256)))
    xs, ys = xs.numpy(), ys.numpy()
    for jit_compile in (False, True):
        m = _model(cfg, jit_compile=jit_compile)
        rate = _rate(
            lambda m=m: m.fit(xs, ys, batch_size=cfg.train.batch_size, epochs=1, verbose=0, shuffle=False),
            len(xs),
            repeats=2,
        )
        print(
            f"  training, compile(jit_compile={jit_compile}) (in effect: {m.jit_compile}): {rate:.1f} images/s "
            "(256 in-memory slices)"
        )
    try:
        tf.nn.conv2d(tf.zeros((1, 3, 8, 8)), tf.zeros((3, 3, 3, 4)), 1, "SAME", data_format="NCHW")
        print("  channels-first (NCHW) convolution runs on this CPU")
    except Exception as exc:  # noqa: BLE001 (reported as a finding)
        print(f"  channels-first (NCHW) on CPU: {type(exc).__name__}: {str(exc).splitlines()[0][:110]}")
    for threads in ("1", "0"):
        out = subprocess.run(
            [sys.executable, __file__, "_forward_threads", "--config", args.config, "--threads", threads],
            capture_output=True,
            text=True,
            check=False,
        )
        line = [x for x in out.stdout.splitlines() if x.startswith("RATE ")]
        if out.returncode or not line:
            raise SystemExit(f"thread child failed:\n{out.stderr[-3000:]}")
        what = "intra/inter-op threads forced to 1 (the original)" if threads == "1" else "TF's default threads"
        print(f"  {what}: {float(line[0].split()[1]):.1f} slices/s")
    print("  mixed precision: for GPUs (float16 tensor cores); not measured on this CPU-only machine")


def _forward_threads_child(args) -> None:
    import tensorflow as tf

    if args.threads != "0":
        tf.config.threading.set_intra_op_parallelism_threads(int(args.threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(args.threads))
    cfg = load_config(args.config)
    model = _model(cfg, compiled=False)
    m = cfg.model
    x = np.zeros((cfg.infer.batch_size, m.image_height, m.image_width, m.image_channels), np.float32)
    print(f"RATE {_rate(lambda: model.predict_on_batch(x), len(x)):.2f}")


def bench_viewer(args) -> None:
    from hippo_utils.data.sources import ensure_synthetic
    from hippo_utils.display.viewer import SliceViewer

    cfg = load_config(args.config)
    src = ensure_synthetic(cfg)
    image = sorted((src / "Train").glob("*.img"))[0]
    label = src / "Train" / "Labels" / f"{image.stem}_Hipp_Labels.img"
    viewer = SliceViewer(image, label=label, prediction=label, rgb_map=cfg.mask.rgb_map)
    print(f"slice viewer, {image.name} {viewer.volume.shape}, display {viewer.display_shape()} px:")
    for mode in ("overlay", "side by side", "contour"):
        viewer.mode.value = mode
        for plane in ("coronal", "axial", "sagittal"):
            viewer.plane.value = plane
            print(f"  {mode:12s} {plane:9s} median {viewer.time_updates(50):5.1f} ms per slider move (50 moves)")


BENCHES = {
    "pipeline": bench_pipeline,
    "epochs": bench_epochs,
    "inference": bench_inference,
    "batch": bench_batch,
    "precision": bench_precision,
    "gpu": bench_gpu,
    "folder": bench_folder,
    "memory": bench_memory,
    "flops": bench_flops,
    "levers": bench_levers,
    "viewer": bench_viewer,
}
CHILDREN = {"_train_rss": _train_rss_child, "_forward_threads": _forward_threads_child}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["all", *BENCHES, *CHILDREN])
    parser.add_argument("--config", default=str(ROOT / "configs" / "demo.config"))
    parser.add_argument("--model-dir", help="a trained model (default: an untrained one of the config)")
    parser.add_argument("--volumes", type=int, default=4, help="inference: volumes to segment")
    parser.add_argument("--repeats", type=int, default=3, help="inference: interleaved runs of each measurement")
    parser.add_argument("--images", type=int, default=64, help="folder: images to segment")
    parser.add_argument("--slices", type=int, default=256, help="memory: N training slices")
    parser.add_argument("--gpu-config", default=str(ROOT / "configs" / "hfh_512.config"), help="gpu: the model")
    parser.add_argument("--size", type=int, help="gpu: image size instead of the config's (for a check on CPU)")
    parser.add_argument("--gpu-steps", type=int, default=20, help="gpu: timed steps of each measurement")
    parser.add_argument("--gpu-epochs", type=int, default=3, help="gpu: demo epochs to time (0: none)")
    parser.add_argument("--on-cpu", action="store_true", help="gpu: run even without a GPU")
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--threads", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.config_name = Path(args.config).stem
    if args.what in CHILDREN:
        CHILDREN[args.what](args)
        return
    for name, bench in BENCHES.items():
        if args.what in ("all", name):
            t = time.perf_counter()
            bench(args)
            print(f"  ({name}: {time.perf_counter() - t:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
