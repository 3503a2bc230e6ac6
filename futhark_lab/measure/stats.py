"""Statistics of raw samples: median with a confidence interval from order statistics, IQR, noise.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

# --------------------------------------------------------------------------- statistics

def median_ci(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median from order statistics (binomial)."""
    from scipy import stats

    x = np.sort(np.asarray(samples, dtype=float))
    n = len(x)
    if n < 6:
        return float(x[0]), float(x[-1])
    alpha = 1 - confidence
    lo = int(stats.binom.ppf(alpha / 2, n, 0.5))
    hi = int(stats.binom.isf(alpha / 2, n, 0.5))
    lo = max(lo - 1, 0)
    hi = min(hi, n - 1)
    return float(x[lo]), float(x[hi])


@dataclasses.dataclass
class Stats:
    n: int
    median: float
    q1: float
    q3: float
    mean: float
    std: float
    min: float
    max: float
    ci_low: float
    ci_high: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def rel_noise(self) -> float:
        """Relative half-width of the median's 95% CI."""
        return (self.ci_high - self.ci_low) / 2 / self.median if self.median > 0 else math.inf

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Stats":
        x = np.asarray(samples, dtype=float)
        if len(x) == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan, nan)
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        lo, hi = median_ci(x)
        return cls(len(x), float(med), float(q1), float(q3), float(x.mean()), float(x.std(ddof=1) if len(x) > 1
                   else 0.0), float(x.min()), float(x.max()), lo, hi)
