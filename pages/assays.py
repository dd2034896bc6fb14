"""Assays: per target, the source assays MixMin weights most, with titles and categories."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from mixmin_core.runs import layout
from pages.common import data, state
from pages.common import figures as figs

state.open_page("assays")

GROUP_LABELS = {"cytotoxicity": "cytotoxicity", "phenotypic": "phenotypic screen",
                "protein": "protein binding / inhibition", "other": "other"}
COLOUR_NAMES = {"cytotoxicity": "red", "phenotypic": "green", "protein": "blue", "other": "orange"}  # figs.CATEGORY_COLOURS


def boot_info(run_id: str, problem: layout.Problem) -> tuple[int, float | None]:
    """Bootstrap resamples behind the run's stored intervals for ``problem`` (0: none stored), and the share of
    them that converged (None for a run from before it was stored)."""
    path = layout.topk_path(data.store().run_dir(run_id), problem)
    topk = data.load_json(str(path), data.mtime(path)) if path.exists() else {}
    converged = topk.get("boot_converged")
    return int(topk.get("n_boot") or 0), float(converged) if isinstance(converged, (int, float)) else None


def read_topk(run_id: str, problem: layout.Problem) -> pd.DataFrame:
    """Every source of ``problem`` by MixMin's weight (its saved mixture), with the bootstrap intervals of the run's
    topk file where it has them (its top ``top_k``); the topk file alone where the mixture is missing (then
    ``attrs["partial"]`` is True: the rows may be only the top of the sources)."""
    run_dir = data.store().run_dir(run_id)
    path = layout.topk_path(run_dir, problem)
    rows = topk_rows(data.load_json(str(path), data.mtime(path))) if path.exists() else []
    weights = (data.read_mixtures(run_id, problem).get("mixmin") or {}).get("weights", {})
    if isinstance(weights, dict) and weights:
        stored = {str(r.get("source")): r for r in rows if isinstance(r, dict)}
        rows = [{**stored.get(str(s), {}), "source": s, "weight": w} for s, w in weights.items()]
    frame = pd.DataFrame(rows, columns=None if rows else ["source", "weight"])
    for col in ("lower", "upper"):
        if col not in frame:
            frame[col] = float("nan")
    frame["source"] = frame["source"].astype(str)
    frame = frame.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)
    frame.attrs["partial"] = not (isinstance(weights, dict) and weights)
    return frame


def topk_rows(content) -> list[dict]:
    """The ``{source, weight, lower, upper, ...}`` rows of a topk file (under ``sources``, as the engine writes it)."""
    rows = content.get("sources") if isinstance(content, dict) else None
    return rows if isinstance(rows, list) else []


def own_data(frame: pd.DataFrame, run_id: str, target: str) -> pd.DataFrame:
    """The target's own fit split (a run with ``include_target``) named as such: it is no other assay. (Elsewhere
    a source may share a target's name.)"""
    out = frame.assign(source=list(data.own_data_names(run_id, target, frame["source"])))
    own = (out["source"] == data.OWN_DATA) & (frame["source"] == target)
    out.loc[own, "title"] = f"{target}'s own fit split (include_target)"
    for col in ("labelled", "positives"):  # sources.csv counts the target's whole column, test molecules too
        if col in out:
            out.loc[own, col] = float("nan")
    return out


#: Facts of a chemistry run's sources.csv shown beside each source: its labelled molecules in the table (its proxy
#: trains on its training split, a part of them) and positives, and what it measures.
FACTS = {"n_labelled": "labelled", "n_pos": "positives", "description": "description"}
#: Fewer labelled molecules (or positives) than these: a proxy that says little, a weight that is weak evidence.
FEW_LABELLED, FEW_POSITIVES = 50, 5


def annotate(frame: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """Titles and categories from the run's sources.csv, else from the topk file itself; and the sources.csv facts
    in :data:`FACTS` where the run records them."""
    if "description" not in meta and "description_summary" in meta:  # PCBA's metadata names it so
        meta = meta.rename(columns={"description_summary": "description"})
    facts = [c for c in FACTS if c in meta]
    meta = meta[["source", "title", "category", *facts]].drop_duplicates("source").set_index("source")
    out = frame.copy()
    for col in ("title", "category"):
        own = out[col] if col in out else pd.Series("", index=out.index)
        mapped = out["source"].map(meta[col]).astype(object)
        mapped = mapped.where(mapped.notna() & (mapped != ""), own.astype(object))
        out[col] = mapped.fillna("").astype(str)
    for col in facts:
        out[FACTS[col]] = out["source"].map(meta[col])
    out["group"] = out["category"].map(figs.category_group)
    return out


def across_trials(run_id: str, target: str, variant: str, trials: list) -> pd.Series:
    """Per source, the range of MixMin's weight over the trials (``"0.070–0.244"``), where there are two or more:
    what a trial draws anew (:func:`trial_varies`), which the bootstrap intervals (one trial's) leave out."""
    weights = [(data.read_mixtures(run_id, layout.Problem(target, t, variant)).get("mixmin") or {}).get("weights")
               for t in trials]
    frame = pd.DataFrame([w for w in weights if isinstance(w, dict)])
    if len(frame) < 2:
        return pd.Series(dtype=object)
    return frame.min().map("{:.3f}".format) + "–" + frame.max().map("{:.3f}".format)


def trial_varies(run_id: str) -> str:
    """What a trial of the run draws anew, in words (the README's "What a trial varies")."""
    pipeline = str(data.run_config(run_id).get("pipeline", ""))
    if pipeline.startswith("chem"):
        return "redraws the splits and reseeds the proxies"
    return "redraws the target's split (the proxies are trained once)" if pipeline == "lm" else "redraws its splits"


def few_labels_note(top: pd.DataFrame, noun: str) -> None:
    """Name the shown sources with few labelled molecules or positives: a weight on their proxy is weak evidence."""
    if "labelled" not in top or "positives" not in top:
        return
    few = top[(top["labelled"] < FEW_LABELLED) | (top["positives"] < FEW_POSITIVES)]
    if len(few):
        names = ", ".join(f"{state.code(r.source, 40)} ({r.labelled:.0f} labelled, {r.positives:.0f} positive)"
                          for r in few.head(5).itertuples())
        st.caption(f"Few labels behind {len(few)} of these {noun}: {names}. A proxy trained on so few predicts little "
                   "more than its base rate, so a weight on it is weak evidence of a related assay.")


def colour_rows(table: pd.DataFrame):
    colours = table["group"].map(figs.CATEGORY_COLOURS)
    return table.style.apply(lambda col: [f"background-color: {c}; color: {figs.text_on(c)}" for c in colours]
                             if col.name == "category" else [""] * len(col), axis=0).format(
        {"weight": "{:.4f}", "lower": "{:.4f}", "upper": "{:.4f}",
         **{c: "{:,.0f}" for c in ("labelled", "positives") if c in table}}, na_rep="")


def legend(categories) -> None:
    """Every category the table shows, each in its colour as the table draws it (the paper's Table 1 groups: a
    legend of the four groups alone left 'cell-based reporter (receptor/pathway)' in orange unexplained)."""
    by_group = {g: sorted({str(c) for c in categories if c and figs.category_group(c) == g}) for g in GROUP_LABELS}
    chips = " ".join(f"<span style='background:{figs.CATEGORY_COLOURS[g]};color:{figs.text_on(figs.CATEGORY_COLOURS[g])};"
                     f"padding:2px 8px;border-radius:4px;margin-right:6px'>{html.escape(c)}</span>"
                     for g, names in by_group.items() for c in names)
    groups = ", ".join(f"{COLOUR_NAMES[g]} {GROUP_LABELS[g]}" for g in GROUP_LABELS)
    st.markdown(chips + f" &nbsp;(colours as in the paper's Table 1: {groups}; the categories come from the assay "
                "metadata's labels, a guide and not ground truth: an assay's description can say more, e.g. a "
                "viability readout filed as phenotypic)", unsafe_allow_html=True)


def by_category(kept: pd.DataFrame) -> None:
    """The mixture's weight summed by category, over every source: a family of related assays (23 ER assays) holds
    its share from trial to trial where the single assay that leads it does not."""
    shares = kept.assign(category=kept["category"].replace("", "uncategorised")).groupby("category")["weight"].sum()
    shares = shares[shares >= 0.0005].sort_values(ascending=False)
    if len(shares) > 1:
        st.caption("Weight by category, over all sources: " + ", ".join(f"{html.escape(c)} {w:.3f}"
                                                                        for c, w in shares.items()) + ".")


def source_noun(run_id: str) -> str:
    """What the run's sources are, in words: assays for chemistry, text domains for language models."""
    pipeline = str(data.run_config(run_id).get("pipeline", ""))
    return "source assays" if pipeline.startswith("chem") else "source domains" if pipeline == "lm" else "sources"


#: Most sources (columns) the all-targets map draws.
MAP_COLUMNS = 30


def heatmap(run_id: str, problems: list, k: int, meta: pd.DataFrame, noun: str) -> pd.DataFrame:
    """Targets x union of their top-``k`` sources; returns the long table for export."""
    long = []
    for prob in problems:
        top = own_data(annotate(read_topk(run_id, prob).head(k), meta), run_id, prob.target)
        mixture = data.read_mixtures(run_id, prob).get("mixmin") or {}
        # how far to trust the weights and intervals travels with them: the solve's status and gap, the share of
        # bootstrap resamples that converged
        long.append(top.assign(target=prob.target, trial=prob.trial, variant=prob.variant, rank=range(1, len(top) + 1),
                               mixmin_status=mixture.get("status"), mixmin_gap=mixture.get("gap"),
                               boot_converged=boot_info(run_id, prob)[1]))
    long = pd.concat(long, ignore_index=True) if long else pd.DataFrame()
    if long.empty:
        return long
    # a source outside a target's top k is blank, not 0 (its weight may be 0.02); a target that is another's source
    # is none of its own: blank too
    grid = long.pivot_table(index="target", columns="source", values="weight", aggfunc="mean")
    union = grid.shape[1]
    grid = grid[grid.max().sort_values(ascending=False).index[:MAP_COLUMNS]]
    if (grid.max() >= 0.01).any():  # leave out sources no target gives even 1%
        grid = grid.loc[:, grid.max() >= 0.01]
    shown = int(long["rank"].max())  # a run's topk file may keep fewer than k
    top = float(np.nanmax(grid.to_numpy())) if grid.size else 1.0
    fig = px.imshow(grid.to_numpy(), x=list(grid.columns), y=list(grid.index), color_continuous_scale="Reds",
                    zmin=0, zmax=max(top, 0.01), aspect="auto",  # from 0: a weight's colour, not its rank
                    title=f"Targets × their top-{min(k, shown)} {noun} (weight, trial {problems[0].trial})")
    fig.update_layout(height=max(420, 40 * len(grid) + 300), margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(tickangle=-45))
    st.plotly_chart(figs.safe(fig), key="assays.heatmap")
    drawn = grid.notna().sum(axis=1)
    fewest = drawn.idxmin()
    kept = int((long["target"] == fewest).sum())
    st.caption(f"{grid.shape[1]} of the {union} {noun} in some target's top {min(k, shown)}: those with the largest "
               f"weight (at most {MAP_COLUMNS}, and only those some target gives 1% or more), so a row may draw only "
               f"part of its target's top {min(k, shown)} (fewest: {fewest}, {int(drawn[fewest])} of {kept}). A blank "
               "cell is a source outside the drawn part of that target's top k (every weight is in the export below), "
               "or the target itself.")
    return long


WHAT = ("What you are looking at: for one target, the {noun} MixMin gives the most weight, with 95% bootstrap "
        "intervals and, for assays, their categories (colours as in the paper's Table 1); below, every target's "
        "top sources side by side.")


def page() -> None:
    st.title("Assays")
    run_id = state.current_run()
    noun = source_noun(run_id) if run_id else "source assays"
    state.explain(WHAT.format(noun=noun))
    if not run_id:
        return
    problems = data.layout_problems(run_id)
    if not problems:
        st.info(data.no_outputs_note(run_id))
        return
    meta = data.source_table(run_id)
    c1, c2, c3, c4, c5 = st.columns([2, 3, 1, 1, 2], vertical_alignment="bottom")
    variants = sorted({p.variant for p in problems}, key=data.main_first)
    variant = state.select_kept("Setting", variants, "assays.variant", container=c1, format_func=data.setting_label)
    in_variant = [p for p in problems if p.variant == variant]
    target = state.select_kept("Target", sorted({p.target for p in in_variant}), "assays.target", container=c2)
    trials = sorted(p.trial for p in in_variant if p.target == target)
    trial = state.select_kept("Trial", trials, "assays.trial", container=c3)
    state.ensure("assays.k", 1 <= st.session_state["assays.k"] <= 100)
    k = c4.number_input("Top k", 1, 100, key=state.keep("assays.k"), on_change=state.save, args=("assays.k",))
    ranked = read_topk(run_id, layout.Problem(target, trial, variant))
    spread = across_trials(run_id, target, variant, trials)
    annotated = annotate(ranked, meta)
    if len(spread):  # by the sources' own names, before the target's own data is renamed
        annotated = annotated.assign(trials=annotated["source"].map(spread))
    kept = own_data(annotated, run_id, target)
    top = kept.head(int(k))
    if len(kept) < k and ranked.attrs.get("partial"):
        st.caption(f"{len(kept)} {noun} are on record for this target (a run keeps the top `top_k` of its config).")
    elif len(kept) < k:
        own = data.OWN_DATA in set(kept["source"])  # include_target: one of them is no other assay
        st.caption(f"This setting gives {target} {len(kept) - own} {noun}{' and its own data' if own else ''}" + (
            " (a sources-N setting has the first N informative assays, less the target)." if "sources-" in variant
            else "."))
    mixture = data.read_mixtures(run_id, layout.Problem(target, trial, variant)).get("mixmin") or {}
    if mixture.get("status") == "max_iter":  # the Compare page says so for the setting; here it is one ranking
        st.caption(f"MixMin stopped at its iteration limit (Frank–Wolfe gap {float(mixture.get('gap') if mixture.get('gap') is not None else 'nan'):.2g}), "
                   "not converged: the weights may still move, the top ones and their order too (on the ToxCast demo "
                   "the converged top assay was another), and so may the intervals. See them converge on the Solver "
                   "page (at its most iterations, with a larger step size).")
    without = int(top["lower"].isna().sum())
    if 0 < without < len(top):
        st.caption(f"The run stored bootstrap intervals for its top {len(top) - without} {noun} (`top_k`); the "
                   "others show their weight only.")
    categories = sorted(c for c in top["category"].unique() if c)
    if categories:
        picked = st.session_state["assays.categories"]
        state.ensure("assays.categories", picked is not None and set(picked) <= set(categories), categories)
        chosen = st.multiselect("Categories", categories, key=state.keep("assays.categories"),
                                on_change=state.save, args=("assays.categories",))
        before = len(top)
        top = top[top["category"].isin(chosen) | (top["category"] == "")]
        if not chosen:
            st.info("No category is selected: pick one or more above to list their sources.")
        elif len(top) < before:
            st.caption(f"{before - len(top)} of the top {before} {noun} are hidden by the category filter.")
    if categories and noun == "source assays":  # the paper's assay categories; an LM run's sources are 'text'
        legend(top["category"].unique())
        by_category(kept)
    facts = [c for c in (*FACTS.values(), "trials") if c in top]
    shown = top[["source", "title", "category", "weight", "lower", "upper", "group", *facts]]
    st.dataframe(colour_rows(shown), hide_index=True, placeholder="—", width="stretch",
                 column_order=["source", "weight", "lower", "upper", *[c for c in facts if c != "description"],
                               "category", "title", *[c for c in facts if c == "description"]])
    if len(spread):
        st.caption(f"trials: the source's weight over this setting's {len(trials)} trials (lowest–highest); each trial "
                   f"{trial_varies(run_id)}.")
    few_labels_note(top, noun)
    n_boot, converged = boot_info(run_id, layout.Problem(target, trial, variant))
    st.caption(f"lower / upper: 95% bootstrap interval over the {n_boot} resamples the run stored: the target's "
               "samples resampled, this trial's proxies fixed, so they leave out what another trial changes (each "
               f"{trial_varies(run_id)}; compare the trials). They also leave out other mixtures that fit as well: "
               "assays that are near copies of each other can split their weight in any way at the same loss, and "
               "an interval shows only the split the solver reached. The Solver page draws its own resamples, live (as many as you "
               "set there), so its intervals differ, the more so the fewer resamples either has"
               f"{' (a few dozen are rough)' if n_boot < 100 else ''}." if n_boot else
               "lower / upper: this run stored no bootstrap intervals (`n_boot` in its config); the Solver page "
               "computes them live.")
    if n_boot and converged is not None and converged < 0.9:  # as the Solver page says of its own
        st.warning(f"{1 - converged:.0%} of these resamples stopped at the iteration limit before converging: the "
                   "intervals show where their iterations stopped more than where the weights would settle (a lower "
                   "end above 0 may be an artefact). Raise `max_iter`, or see them settle on the Solver page.",
                   icon=":material/hourglass_bottom:")
    if not top.empty:
        fig = figs.weights_figure(list(top["source"]), top["weight"].to_numpy(),
                                     None if top["lower"].isna().all() else top["lower"].to_numpy(),
                                     None if top["upper"].isna().all() else top["upper"].to_numpy(), k=int(k),
                                     colours=list(top["group"].map(figs.CATEGORY_COLOURS)),
                                     title=f"Top {noun} for {target}")
        st.plotly_chart(figs.safe(fig), key="assays.bars")
    st.header("All targets")
    long = heatmap(run_id, [p for p in in_variant if p.trial == trial], int(k), meta, noun)
    if not long.empty:
        st.download_button(f"Export top {noun} of every target (CSV)", long.drop(columns="group").to_csv(index=False),
                           f"top_assays_{variant or 'main'}.csv", "text/csv", key="assays.export")
    state.share_link("assays", c5)


with state.shows_errors():
    page()
state.write_url("assays")
