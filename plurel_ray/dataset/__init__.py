"""Dataset folders: RelBench-3 folders written from generated databases and read back.

`relbench_io` writes and reads a folder (Parquet tables, manifest, tasks, `plurel.json`
with its content hash), `autocomplete` derives one autocomplete task per feature column,
and `synthetic` serves a generated database as a RelBench `Dataset`. The generator
(`synth/`) knows nothing of folders; the store (`store/`) reads folders through here.
"""
