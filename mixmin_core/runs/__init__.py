"""Run infrastructure: run store and job catalog, unit runner, run-folder layout, file I/O, datasets."""
