"""Synthetic labelled training data: a stochastic DVS simulator, procedural scenes, sensor
noise, lens flare, occlusion mixing and per-event labels (see ``labels.py``)."""
