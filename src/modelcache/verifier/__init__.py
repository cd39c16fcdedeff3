"""A second stage against false hits: a small tree model over features of each candidate pair.

`Verifier` loads the shipped weights (`weights/`) lazily and judges the top-k candidates of a
query: hit (which one), miss, or unsure (the caller then adds the query's second-model
cosines and asks again). See `verifier.py` for the cascade and `calibration/verifier.md` for
how the models and thresholds were chosen.
"""

from __future__ import annotations

from modelcache.verifier.verifier import WEIGHTS_DIR, Judgement, Mode, OperatingPoint, Verifier

__all__ = ["WEIGHTS_DIR", "Judgement", "Mode", "OperatingPoint", "Verifier"]
