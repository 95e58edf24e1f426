"""Everything that touches Ray, and the runs built on it: the generation Dataset and its
actors, data preparation, training and evaluation, the commands' arguments, the demo,
its report and the scaling-law sweep.

`seed_worker`, `output` and `index` hold the per-seed work and the run's files without
importing Ray, so the single-process driver (`plurel-ray generate` without `--ray`) runs
the very same code; `ray_stages` wires it into Ray Data.
"""
