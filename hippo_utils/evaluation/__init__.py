"""Notebook 04, evaluation: foreground Dice and friends on the held-out test subjects.

Read ``evaluate`` (:func:`~hippo_utils.evaluation.evaluate.evaluate`); the maths is in
:mod:`hippo_utils.model.metrics`.
"""
