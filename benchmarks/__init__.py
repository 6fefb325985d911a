"""The maintained benchmarks: scripts that measure what the package does (accuracy on MSD Task04,
speed and memory, split leakage, demo volumetry, the course's time) and print figures; what they
measured is in RESULTS.md, with the command of each row. Run each from the repository root as a
file, ``python benchmarks/NAME.py ...``; ``common`` holds the few helpers more than one script
uses, and ``experiments/`` the scripts that were measured and not adopted.
"""
