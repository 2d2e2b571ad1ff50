"""Training: the loop, checkpoints, schedule, distributed helpers and experiment naming.

Kept import-light (``slamasr.config`` imports ``slamasr.training.config``).
"""

from slamasr.training.naming import experiment_name

__all__ = ["experiment_name"]
