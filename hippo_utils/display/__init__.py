"""Notebook 06 and every picture of the course: drawing takes data (arrays, tables),
never folders.

Read first ``viewer`` (:class:`~hippo_utils.display.viewer.SliceViewer`, notebook 06's slice
viewer), then ``pictures``, which draws its panels.

- ``pictures``: NumPy/PIL pictures, redrawn every epoch or made for every volume
  (overlays, TP/FP/FN agreement, preview strips, the QC snapshot);
- ``figures``: matplotlib figures (planes, histograms, curves, the architecture);
- ``widgets``: the live training panel; ``viewer``: the slice viewer.
"""
