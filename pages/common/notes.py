"""Notes several pages show about the same results (a test split with few positives)."""
from __future__ import annotations

import math

import streamlit as st

from mixmin_core.chem.splits import FEW_TEST_POSITIVES
from pages.common import state


def few_positives(counts: dict, *, one_trial: bool = False, compared: str = "gaps between methods",
                  container=st) -> bool:
    """Warn about the targets whose average precision rests on fewer than ``FEW_TEST_POSITIVES`` test positives
    (``counts``: ``{target: positives}``, the fewest over trials; MUV: one of five actives ranked first decided a
    method's mean). ``one_trial``: the run has one trial, so no interval shows the noise. Returns whether it warned."""
    few = sorted(((t, int(n)) for t, n in counts.items() if n is not None and not math.isnan(n) and n < FEW_TEST_POSITIVES),
                 key=lambda tn: tn[1])
    if not few:
        return False
    listed = ", ".join(f"{state.code(t, 40)} {n}" for t, n in few[:8])
    more = f" and {len(few) - 8} more" if len(few) > 8 else ""
    if one_trial:
        text = (f"Few positives in the test split: {listed}{more}. An average precision over so few rests on single "
                "molecules: one active ranked first can move it, and with one trial no interval shows that noise. "
                f"Read {compared} as noise unless they are large or hold over many targets.")
    else:
        text = (f"Few positives in the test split (fewest over trials): {listed}{more}. An average precision over so "
                "few rests on single molecules: a method's mean can move by one active ranked first, and an interval "
                f"over a few trials says little. Read {compared} as noise unless they hold over many targets.")
    container.warning(text, icon=":material/scatter_plot:")
    return True
