"""Experiments on MSD Task04 that were measured and not adopted: a 3D U-Net, a second 3D stage
after the 2D model, rotation and scale test-time augmentation, and where the anterior/posterior
boundary is lost. What each showed is in benchmarks/RESULTS.md; they are kept so that a result
can be re-run, from the repository root, as ``python -m benchmarks.experiments.NAME ...``.
"""
