"""Notebook 06 and every picture of the course: drawing takes data (arrays, tables),
never folders.

- ``figures``: matplotlib figures (planes, histograms, curves, the architecture);
- ``widgets``: the live training panel; ``viewer``: the slice viewer.
"""
