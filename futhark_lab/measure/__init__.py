"""Measurement, in nvbench's spirit one module per concern: synchronisation (``sync``), cache flushing
(``cacheflush``), statistics (``stats``), the policy and stopping rule (``timing``), device-side time
(``devicetime``), hardware ceilings (``hardware``), the environment record (``env``), the result store (``store``) and
run comparison (``compare``).  Imports ``builder`` and ``runtime`` below it; nothing above.

``from futhark_lab.measure import Policy, measure`` is the public face for timing a callable yourself.
"""

from .compare import compare
from .hardware import HardwareModel, hardware_model
from .stats import Stats
from .store import RunStore, load_run, new_run_id, results_dir
from .timing import Measurement, Policy, measure

__all__ = ["Policy", "Measurement", "measure", "Stats", "HardwareModel", "hardware_model", "RunStore", "load_run",
           "new_run_id", "results_dir", "compare"]
