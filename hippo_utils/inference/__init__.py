"""Notebook 05, inference and volumetry: segment new scans, measure their hippocampi.

Read ``segment`` (:func:`~hippo_utils.inference.segment.infer_volume` and
:func:`~hippo_utils.inference.segment.infer_volumes`), then ``predict`` (a volume cut
into slices, predicted and put back on its own grid) and ``volumetry`` (volumes in mm3,
the asymmetry index).
"""
