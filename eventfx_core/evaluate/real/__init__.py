"""The real-data benchmark (``eventfx realbench``): DND21's protocol on real recordings.

Guo and Delbruck, "Low Cost and Latency Event Camera Background Activity Denoising", TPAMI 2022
(DND21): a real recording is the signal, noise with known labels is injected, and every filter
is scored by the share of real events it keeps against the share of injected noise it removes,
along a sweep of its parameters.

    recordings.py  the real recordings, their sensor, duration, licence and tune/report split
    noise.py       injected noise: uniform Poisson, or resampled from a real noise recording
    methods.py     the methods and their parameter sweeps -> operating points and scores
    curves.py      upper hull, ROC-AUC, comparison at an operating point
    report.py      report.md, report.json, curves.png
    run.py         the whole benchmark
"""
