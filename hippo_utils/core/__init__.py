"""Foundations that every notebook stands on; a learner can skip this sub-package.

- ``config`` and ``schema``: the INI configuration, read into typed sections and checked
  (every setting is used or reported as unused); read ``schema`` to see every setting.
- ``files``, ``ownership`` and ``locks``: hardening. Files are written whole or not at
  all, nothing a user had is overwritten or removed, and two runs never write one folder.
- ``tables`` (CSV/JSON), ``png`` (8-bit PNG in and out) and ``backend`` (TensorFlow's
  import and the device it runs on).
"""
