"""Export a mixture for training: a panel the Solver and Targets pages mount (not a page itself).

Given the sources' sizes (the run's sources.csv: ``tokens`` for language-model runs, ``n_labelled``
rows for chemistry; else a CSV the user uploads), a training budget and a repeat limit, the panel
shows how much of each source to draw and how many epochs that is, warns about sources repeated
more than the limit (with a button that solves again with caps that respect it) and writes the plan
in the format a trainer reads (see :mod:`mixmin_core.engine.export`). Everything stays in memory:
downloads write nothing to the run store, so the panel works in read-only mode too.
"""
from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from mixmin_core.engine import export
from mixmin_core.errors import InputError
from mixmin_core.runs import layout
from pages.common import data, multi, state

FORMAT_LABELS = {
    "json": "JSON (plan with tokens/rows and epochs per source)",
    "csv": "CSV (one row per source)",
    "hf": "Hugging Face datasets: interleave_datasets snippet",
    "olmix": "OLMo / Olmix mixture YAML",
    "megatron": "Megatron-LM --data-path weights",
    "chem-table": "Chemistry training table (molecule, assay, label, weight)",
}
FILE_NAMES = {"json": "mixture_plan.json", "csv": "mixture_plan.csv", "hf": "interleave_mixture.py",
              "olmix": "mixture.yaml", "megatron": "megatron_data_path.txt", "chem-table": "training_table.csv"}
MIME = {"json": "application/json", "csv": "text/csv", "hf": "text/x-python", "olmix": "application/yaml",
        "megatron": "text/plain", "chem-table": "text/csv"}
LANGUAGE = {"json": "json", "hf": "python", "olmix": "yaml", "megatron": "bash"}
PREVIEW_LINES = 30


def run_of(problem_ids: tuple) -> str | None:
    """The run behind ``run:<run_id>:<key>`` problem ids (None for the example and uploads)."""
    ref = data.parse_problem(problem_ids[0])
    return ref.run_id if ref.kind == "run" else None


def variant_of(problem_ids: tuple) -> str:
    """The run setting of ``run:<run_id>:<key>`` problem ids ("" for the example and uploads)."""
    ref = data.parse_problem(problem_ids[0])
    return layout.Problem.from_key(ref.key).variant if ref.kind == "run" else ""


def _features(run_dir: Path) -> Path:
    return run_dir / "features" / "labels.npz"


def _stamp(run_dir: Path) -> tuple:
    """When the files a run's source sizes come from last changed."""
    return tuple(data.mtime(p) for p in (run_dir / "sources.csv", _features(run_dir), run_dir / "sources" / "members.npz"))


@st.cache_data(max_entries=32, show_spinner=False)
def run_sizes(run_dir: str, stamp: tuple, variant: str) -> export.SourceSizes:
    """A run's source sizes in setting ``variant`` (cached on :func:`_stamp`)."""
    return export.run_source_sizes(run_dir, variant)


@st.cache_resource(max_entries=2, show_spinner="Reading the run's labelled molecules...")
def chem_examples(run_dir: str, stamp: tuple, variant: str):
    """A chemistry run's labelled examples ``molecule, assay, label`` in setting ``variant`` (shared, never
    modified: a full ToxCast run has about a million rows)."""
    return export.run_chem_examples(run_dir, variant=variant)


def uploaded_sizes(upload) -> tuple[dict, dict | None]:
    """``{source: size}`` and ``{source: documents}`` (None without that column) from an uploaded CSV
    (read in memory; nothing is written; read once per content, not on every rerun)."""
    return _read_sizes(Path(upload.name).name or "sizes.csv", upload.getvalue())


@st.cache_data(max_entries=4, show_spinner=False)
def _read_sizes(name: str, data: bytes) -> tuple[dict, dict | None]:
    return export.read_sizes_csv(name, data=data), export.read_documents_csv(name, data=data)


def source_sizes(run_id: str | None, variant: str, mount: str) -> export.SourceSizes | None:
    """The run's source sizes (in setting ``variant``), else those of a CSV the user uploads (None until there is
    one)."""
    note = "This mixture's run records no source sizes"
    if run_id:
        run_dir = data.store().run_dir(run_id)
        try:
            found = run_sizes(str(run_dir), _stamp(run_dir), variant)
        except InputError:
            found = None
        if found is not None:
            own = st.file_uploader(f"Source sizes from the run ({found.unit}); to use your own instead, "
                                   "upload a CSV (columns source, size; optionally documents)", type=["csv"],
                                   key=f"export.{mount}.own_sizes")
            if own is None:
                caveat = export.sizes_note(data.run_config(run_id), estimated=found.estimated)  # the cached config
                if caveat:
                    st.caption(f"Sizes: {caveat[0].upper()}{caveat[1:]}")
                return found._replace(note=caveat)  # the downloads' warnings carry it
            sizes, documents = uploaded_sizes(own)
            return export.SourceSizes(sizes, found.unit, documents)
    else:
        note = "Uploads and the example carry no source sizes"
    c1, c2 = st.columns([3, 1])
    upload = c1.file_uploader(f"{note}: upload them (CSV with columns source, size; optionally documents)",
                              type=["csv"], help="documents (examples) per source let the Hugging Face snippet draw "
                              "each source's share of tokens, not of examples.",
                              key=f"export.{mount}.sizes_upload")
    unit = c2.radio("Unit", export.UNITS, key=f"export.{mount}.unit", horizontal=True,
                    help="tokens for language-model data, rows (examples) for tables.")
    if upload is None:
        return None
    sizes, documents = uploaded_sizes(upload)
    return export.SourceSizes(sizes, unit, documents)


def panel(result, *, problem_ids: tuple, mount: str, solver: dict, max_weight: float = 1.0,
          meta: dict | None = None, expander: str | None = "Export this mixture for training") -> None:
    """Plan, warnings, preview and download of ``result``'s mixture.

    ``problem_ids`` and ``solver`` say how ``result`` was solved (one problem: ``mixmin``'s keyword
    arguments; several targets: ``mixmin_multi``'s), so it can be solved again within the repeat
    limit; ``max_weight`` is a per-source cap the page already applied. ``mount`` names the panel's
    widgets. With ``expander`` the panel sits in a collapsed expander of that title.
    """
    box = st.expander(expander, icon=":material/output:") if expander else st.container()
    with box, state.shows_errors():
        _panel(result, tuple(problem_ids), mount, solver, max_weight, dict(meta or {}))


def _panel(result, problem_ids, mount, solver, max_weight, meta) -> None:
    run_id, variant = run_of(problem_ids), variant_of(problem_ids)
    found = source_sizes(run_id, variant, mount)
    if found is None:
        return
    sizes, unit = found.sizes, found.unit
    run_dir = data.store().run_dir(run_id) if run_id else None
    has_chem = run_dir is not None and _features(run_dir).exists() and unit == "rows"
    budget, max_epochs, fmt = settings(result, sizes, unit, has_chem, run_id)
    if fmt == "chem-table":  # the final models' weights, as `jobs export` writes them (solver noise trains on no rows)
        result = export.training_mixture(result)
    meta = {"run": run_id, **meta} if run_id else meta
    if found.tokenizer:
        meta["tokenizer"] = found.tokenizer
    if found.note:
        meta["sizes_note"] = found.note
    plan = export.plan_training(result, sizes, budget=budget, max_epochs=max_epochs, unit=unit, meta=meta,
                                documents=found.documents)
    plan = limit(plan, result, problem_ids, mount, solver, max_weight, sizes)
    frame = plan.to_frame().sort_values("weight", ascending=False, kind="stable")
    st.dataframe(frame, hide_index=True, placeholder="—", width="stretch", height=min(300, 35 * (len(frame) + 1) + 3),
                 column_config={"weight": st.column_config.NumberColumn(format="%.4f"),
                                "epochs": st.column_config.NumberColumn(format="%.3g"),
                                "size": st.column_config.NumberColumn(format="%.0f")})
    prefix = "{source}"
    if fmt == "megatron":
        restore("export.data_prefix")
        prefix = st.text_input("Data prefix per source", key=state.keep("export.data_prefix"), on_change=state.save,
                               args=("export.data_prefix",),
                               help="How a source name becomes its Megatron data prefix, e.g. /data/{source}_text_document.")
    fallback = export.hf_fallback(plan) if fmt == "hf" else None
    if fallback:
        st.warning(state.plain(fallback), icon=":material/warning:")
    preview, text = rendered(plan, fmt, run_dir, variant, prefix)
    st.code(preview, language=LANGUAGE.get(fmt), wrap_lines=fmt == "megatron")
    st.download_button(f"Download {FILE_NAMES[fmt]}", text, FILE_NAMES[fmt], MIME[fmt], key=f"export.{mount}.download",
                       on_click="ignore", icon=":material/download:")


def settings(result, sizes: dict, unit: str, has_chem: bool, run_id) -> tuple[float, float, str]:
    """Budget, repeat limit and format (kept across pages in ``export.*``; the budget per run and unit)."""
    ss = st.session_state
    if ss["export._budget_for"] != (run_id, unit) or not 0 < (ss["export.budget"] or 0) <= export.MAX_BUDGET:
        ss["export._budget_for"] = (run_id, unit)
        total = sum(float(sizes.get(n, 0.0)) for n in result.source_names)
        total = min(total, export.MAX_BUDGET) if math.isfinite(total) else 1.0
        state.fallback("export.budget", float(max(1, round(total))))  # one pass over every source
    state.ensure("export.max_epochs", isinstance(ss["export.max_epochs"], (int, float)) and ss["export.max_epochs"] > 0)
    formats = [f for f in export.FORMATS if f != "chem-table" or has_chem]
    state.ensure("export.format", ss["export.format"] in formats)
    restore("export.budget", "export.max_epochs", "export.format")
    c1, c2, c3 = st.columns([2, 2, 3], vertical_alignment="bottom")
    # a float field, so 2.5e9 reads as typed (an integer field took its first digit, 2), shown and planned whole
    budget = c1.number_input(f"Training budget ({unit})", min_value=1.0, max_value=export.MAX_BUDGET, step=1000.0,
                             format="%.0f", key=state.keep("export.budget"), on_change=state.save, args=("export.budget",),
                             help=f"How many {unit} the final model trains on in all; by default one pass over "
                                  "the sources.")
    max_epochs = c2.number_input("Repeat limit (epochs per source)", min_value=0.1, step=0.5,
                                 key=state.keep("export.max_epochs"), on_change=state.save, args=("export.max_epochs",),
                                 help="Warn about sources the budget would repeat more often than this.")
    fmt = state.select_kept("Format", formats, "export.format", container=c3, format_func=FORMAT_LABELS.get)
    return float(math.floor(budget + 0.5)), float(max_epochs), fmt  # 10.5 shows as 11 (half up): plan 11, not 10


def restore(*keys: str) -> None:
    """Give these widgets their kept values on every run: the panel sits on two pages, and a widget
    value left by the other page's widget of the same key would otherwise be dropped for the default."""
    for key in keys:
        st.session_state["w:" + key] = st.session_state[key]


def limit(plan, result, problem_ids, mount, solver, max_weight, sizes) -> export.TrainingPlan:
    """Warn about sources over the repeat limit and offer to solve again within it; the plan to export."""
    signature = (problem_ids, plan.budget, plan.max_epochs, tuple(sorted(solver.items())), float(max_weight))
    chosen = st.session_state["export.within"]
    if chosen.get(mount) == signature:
        again = multi.solve_within_limit(problem_ids, multi.stamps(problem_ids), plan, float(max_weight), signature[3])
        st.success(f"Solved again with each source capped at {plan.max_epochs:g} × its size / budget: loss "
                   f"{again.loss:.5g} (was {result.loss:.5g}), {again.status.replace('_', ' ')}. No source is "
                   f"repeated more than {plan.max_epochs:g} times.", icon=":material/check_circle:")
        st.button("Export the mixture without the limit", key=f"export.{mount}.unlimit",
                  on_click=_forget, args=(mount,))
        return export.plan_training(again, sizes, budget=plan.budget, max_epochs=plan.max_epochs, unit=plan.unit,
                                    meta={**plan.meta, "resolved_within_limit": True, "from_method": plan.method},
                                    documents=plan.documents_dict())
    over = plan.over_limit
    if not over:
        st.caption(f"Every source is repeated at most {plan.max_epochs:g} times at this budget.")
        return plan
    epochs = dict(zip(plan.source_names, plan.epochs))
    listed = "\n".join(f"- {state.code(n, 80)}: {epochs[n]:.3g} epochs" for n in over[:10])
    more = f"\n- ... and {len(over) - 10} more" if len(over) > 10 else ""
    st.warning(f"**{len(over)} source(s) would be repeated more than {plan.max_epochs:g} times** at this budget:\n"
               f"{listed}{more}", icon=":material/repeat:")
    try:
        export.limit_caps(plan, max_weight=max_weight)
    except InputError as exc:
        st.caption(f"Cannot solve within the limit: {state.plain(exc)}")
        return plan
    st.button("Solve again within the limit", key=f"export.{mount}.within", icon=":material/replay:",
              on_click=_remember, args=(mount, signature),
              help="Re-solves with availability caps w_p ≤ repeat limit × size_p / budget.")
    return plan


def _remember(mount: str, signature: tuple) -> None:
    st.session_state["export.within"] = {**st.session_state["export.within"], mount: signature}


def _forget(mount: str) -> None:
    st.session_state["export.within"] = {k: v for k, v in st.session_state["export.within"].items() if k != mount}


def rendered(plan, fmt: str, run_dir: Path | None, variant: str, prefix: str) -> tuple[str, object]:
    """``(preview, download data)``: the chemistry table is written only when downloaded (it can be
    a million rows), the other formats are short."""
    if fmt == "chem-table":
        examples = chem_examples(str(run_dir), _stamp(run_dir), variant)
        head = export.chem_table(plan, examples)
        preview = head.head(PREVIEW_LINES).to_csv(index=False, float_format="%.6g")
        return preview + (f"... ({len(head):,} rows in the download: every labelled row of the weighted sources, "
                          "their test and validation splits too; `jobs export --fit-rows` gives the rows a final "
                          "model trained on)\n"), \
            lambda: export.render(plan, fmt, examples=examples)
    text = export.render(plan, fmt, path_template=prefix)
    lines = text.splitlines(keepends=True)
    if len(lines) <= PREVIEW_LINES:
        return text, text
    return "".join(lines[:PREVIEW_LINES]) + f"... ({len(lines) - PREVIEW_LINES} more lines in the download)\n", text
