"""Scoring cleaners on labelled archives: keep-vs-remove metrics, per-class removal rates,
noise-vs-signal ROC, and the markdown/JSON/PNG report of ``eventfx evaluate``."""
