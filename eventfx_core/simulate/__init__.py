"""Synthetic labelled training data (``eventfx generate``).

    dvs.py         DVS-Voltmeter-style stochastic pixel simulator: frames -> events + causes
    scenes.py      procedural scenes (textures, bars, discs; camera and object motion)
    background.py  recorded backgrounds (any file eventfx reads, DSEC events.h5)
    noise.py       leak / shot noise and hot pixels (v2e), rates in Hz per pixel
    flare.py       procedural or Flare7K(++) flare, animated with motion, scale and flicker
    mix.py         E-Deflare occlusion mixing, flare/light-source cause maps
    sequence.py    GenerateConfig and make_sequence(cfg, index) -> (Events, labels, meta)
    dataset.py     sharded, resumable, parallel archive writing
    fit.py         noise statistics of a real noise-only recording
    rng.py         counter-based random numbers shared by kernels and references
"""
