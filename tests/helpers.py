"""Small helpers shared by the pipeline tests."""


def only_run(store):
    """The single run in ``store`` and its folder (fails if there is not exactly one)."""
    (run,) = store.list_runs()
    return run, store.run_dir(run["run_id"])
