"""Tuning human review before changing it: dry runs of rules over historical predictions.

- :mod:`~a2i_worker.tuning.sweep`: ``PATH=START:STOP:STEP`` specs and rules variants
  with one threshold changed (a JSON pointer into the rules document).
- :mod:`~a2i_worker.tuning.simulate`: the streaming engine: one pass over a JSONL file,
  constant memory, any number of rules variants evaluated per line.
- :mod:`~a2i_worker.tuning.output`: tables and CSV of a simulation.
- :mod:`~a2i_worker.tuning.plot`: the sweep plot (PNG, matplotlib Agg).

The CLI is ``a2i-worker rules simulate``; docs/tuning.md is the user guide.
"""

from __future__ import annotations

from a2i_worker.tuning.simulate import (
    ErrorSpec,
    LineInput,
    Simulation,
    SimulationError,
    Tally,
    parse_line,
)
from a2i_worker.tuning.sweep import SweepSpec, parse_sweep, sweep_rulesets

__all__ = [
    "ErrorSpec",
    "LineInput",
    "Simulation",
    "SimulationError",
    "SweepSpec",
    "Tally",
    "parse_line",
    "parse_sweep",
    "sweep_rulesets",
]
