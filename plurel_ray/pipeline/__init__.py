"""Everything that touches Ray: the generation Dataset and its actors, job arguments.

`seed_worker`, `output` and `index` hold the per-seed work and the run's files without
importing Ray, so the single-process driver (`plurel-ray generate` without `--ray`) runs
the very same code; `ray_stages` wires it into Ray Data.
"""
