"""featureshare benchmarks: side-by-side ratios against named baselines, measured in the same run.

Run ``python -m benchmarks.run [--quick] [--only P1,P2]`` (``make bench`` / ``make bench QUICK=1``); results go
to ``benchmarks/results/latest.json`` and ``latest.md``. See ``benchmarks/README.md`` for how to read them.
"""
