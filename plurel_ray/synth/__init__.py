"""The PluRel generator: integer seed + `Config` → a synthetic relational database.

Entry points: `database.generate_database(seed, config)` and `dataset.SyntheticDataset`.
No Ray and no torch here; the heavy per-row arithmetic runs in `plurel_ray._native`.
"""
