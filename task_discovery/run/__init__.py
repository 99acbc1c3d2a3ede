"""The plumbing of a run: its workdir (files, lock, atomic writes, resume check), checkpoints,
metrics, reports, progress, runs over seeds, figures, and the device mesh.

Every layer above may use these modules; they import nothing of the library but `config` and
each other (`docs/architecture.md`).
"""
