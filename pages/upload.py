"""Upload: bring your own proxy outputs (.npz + .json, or a CSV/Parquet table) and solve."""
from __future__ import annotations

import contextlib
import os

import numpy as np
import pandas as pd
import streamlit as st

from mixmin_core import mixmin
from mixmin_core.solver.proxy_outputs import KINDS
from pages.common import data, state
from pages.common import figures as figs
from pages.common.access import read_only
from pages.common.uploads import (
    MAX_EXPANDED_BYTES,
    MAX_UPLOAD_BYTES,
    parse_upload,
    save_compressed,
    upload_name,
)

state.open_page("upload")

FORMATS = f"""
**Table** (`.csv` or `.parquet`): one row per target sample, one numeric column per source holding
that source's proxy output on the sample, plus optional columns:

- `label`: the sample's label (required for `binary`: 0/1, and for `mse`);
- `token_count`: tokens in the sample (`loglik`: the loss is per token);
- `sample_id`: an identifier.

Outputs are P(y=1|x) in [0, 1] for `binary`, total log-probabilities (<= 0) for `loglik`, and
predictions for `mse`. **Saved proxy outputs**: the `.npz` and `.json` pair written by
`ProxyOutputs.save` (upload both; the `.npz` must match the checksum in the `.json`). Files are
read without pickle; the limits are {MAX_UPLOAD_BYTES >> 20} MB per upload and
{MAX_EXPANDED_BYTES >> 20} MB of uncompressed arrays.
"""


def example_csv() -> str:
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.3).astype(int)
    frame = pd.DataFrame({f"assay_{i}": np.clip(0.3 + (0.4 - 0.1 * i) * (labels - 0.3) + rng.normal(0, 0.1, 200), 0.01, 0.99)
                          for i in range(4)})
    frame["label"] = labels
    return frame.round(4).to_csv(index=False)


def save_upload(outputs, files, *, again: bool = False) -> str:
    """Keep the parsed outputs in the store (``uploads/``, compressed) so the Solver page can load them; ``again``:
    the user uploaded a file already stored, which becomes the newest upload (first in the Solver's list)."""
    path = data.store().root / "uploads" / upload_name(files, outputs.kind)
    stored = path.with_name(path.name + ".npz")
    if not stored.exists():
        save_compressed(outputs, path)
    elif again:  # not on every rerun of the page: a new mtime is a new version, solved and cached again
        for p in (stored, path.with_name(path.name + ".json")):
            with contextlib.suppress(OSError):  # a store file this user cannot write: it stays where it was
                os.utime(p)
    return data.upload_problem_id(path)


def manage_uploads() -> None:
    """The uploads kept in the store, one of which can be deleted (they counted against the store's budget with no
    way out but its folder)."""
    saved = data.list_uploads()
    if not saved:
        return
    with st.expander(f"Uploads kept in the run store ({len(saved)})"):
        pick = st.selectbox("Upload", saved, format_func=data.problem_label, key="upload.manage")
        if st.button("Delete this upload", key="upload.delete", icon=":material/delete:"):
            with state.shows_errors():
                data.delete_upload(pick)
                st.rerun()


def solve_in_memory(outputs) -> None:
    """Read-only mode: solve the upload here without storing it."""
    result = mixmin(outputs, step_size=1.0, max_iter=100)
    st.plotly_chart(figs.weights_figure(result.source_names, result.weights, k=15,
                                           title="MixMin weights (step size 1, 100 iterations)"),
                    key="upload.weights")
    st.caption("Read-only mode: the upload is solved here and not saved, so the Solver page cannot open it.")


def page() -> None:
    st.title("Upload")
    if read_only():  # the sidebar says what read-only mode is; here, what it means for this page
        st.info("Read-only mode: an upload is solved here, in memory; nothing is stored.")
    st.write("Solve for the mixture of your own sources: upload every proxy's output on your target samples.")
    with st.expander("File formats", expanded=False):
        st.markdown(FORMATS)
        st.download_button("Download an example CSV", example_csv(), "example_proxy_outputs.csv", "text/csv",
                           key="upload.example")
    kind = st.radio("Objective", ["auto", *KINDS], horizontal=True, key=state.keep("upload.kind"),
                    on_change=state.save, args=("upload.kind",),
                    help="auto: binary with 0/1 labels and outputs in [0, 1]; mse with other labels (0/1 labels "
                         "with other outputs are refused: pick mse for them); loglik without labels")
    uploaded = st.file_uploader("Proxy outputs", type=["csv", "parquet", "pq", "npz", "json"],
                                accept_multiple_files=True, key="upload.files")
    kept = None if read_only() else st.container()  # filled last, so it counts an upload this run saves
    try:
        read_upload(uploaded, kind)
    finally:
        if kept is not None:
            with kept:
                manage_uploads()


def read_upload(uploaded, kind: str) -> None:
    """Read, save (unless read-only) and solve the uploaded files."""
    if not uploaded:
        return
    files = [(f.name, f.getvalue()) for f in uploaded]
    with state.shows_errors():
        outputs = parse_upload(files, kind=kind)
        if read_only():
            st.success(f"Read {data.shape_text(outputs)} (objective `{outputs.kind}`).")
            solve_in_memory(outputs)
            return
        ids = [getattr(f, "file_id", f.name) for f in uploaded]  # a new upload action, not a rerun of the page
        problem_id = save_upload(outputs, files, again=ids != st.session_state["upload.saved_ids"])
        st.session_state["upload.saved_ids"] = ids
        state.choose("solve.problem", problem_id)
        st.success(f"Read {data.shape_text(outputs)} (objective `{outputs.kind}`).")
        # every argument given, as the Solver gives them: its first solve is then this one, cached (a default left
        # out is another cache key: "Explore in the Solver" solved a 1000 x 40000 upload again, 4 s)
        result, _ = data.solve(problem_id, data.problem_stamp(problem_id), 1.0, 100, "uniform", 1.0, 0.0)
        st.plotly_chart(figs.weights_figure(result.source_names, result.weights, k=15,
                                               title="MixMin weights (step size 1, 100 iterations)"),
                        key="upload.weights")
        data.storage_note(result)
        if st.button("Explore in the Solver", type="primary", key="upload.open_solver"):
            st.switch_page("pages/solver.py")


page()
state.write_url("upload")
