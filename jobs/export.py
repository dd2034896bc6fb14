"""``python -m jobs export``: a mixture as a training plan, in the format a trainer reads.

    python -m jobs export --run RUN_ID --problem KEY [--method mixmin] --budget-tokens N
                          [--max-epochs 4] --format json|csv|hf|olmix|megatron|chem-table [--out FILE]
    python -m jobs export --weights mixture.json --sizes sizes.csv --budget-tokens N --format hf

Source sizes come from the run's sources.csv (``tokens`` for language-model runs, ``n_labelled``
rows for chemistry) or from ``--sizes`` (a CSV with columns ``source,size`` and, for the ``hf``
format's per-example probabilities, ``documents``). Every source the
budget would repeat more than ``--max-epochs`` times is reported; ``--respect-limit`` solves again
with availability caps that keep every source within the limit (it needs the run's proxy outputs; a joint
mixture is solved again over all its targets' outputs).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from mixmin_core.engine import export
from mixmin_core.errors import InputError
from mixmin_core.runs.fileio import read_json, write_text
from mixmin_core.runs.layout import (
    Problem,
    list_mixtures,
    mixture_path,
    mixture_problems,
    outputs_path,
    run_problem,
)
from mixmin_core.solver.results import MixtureResult


def add_parser(sub) -> None:
    """Register ``export`` on the CLI's subparsers; its own usage errors are one ``error:`` line too."""
    p = sub.add_parser("export", help="write a mixture as a training plan (JSON, CSV, datasets, Olmix, Megatron, chemistry table)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="run id (see `python -m jobs status`)")
    p.add_argument("--problem", help="problem key within the run, e.g. TOX21_AR__sources-all__trial0 or piqa__budget-0.1__trial0 (the names of the run's mixtures/ files)")
    p.add_argument("--method", help="whose mixture to export (default: mixmin)")
    p.add_argument("--weights", help="a MixtureResult JSON file (instead of --run/--problem)")
    p.add_argument("--sizes", help="CSV with columns source,size (tokens or rows) and optionally documents; "
                   "default: the run's (a language-model run's whole-corpus tokens and documents)")
    p.add_argument("--budget-tokens", metavar="N", help="training budget in tokens (language models)")
    p.add_argument("--budget-rows", metavar="N", help="training budget in rows (chemistry; chem-table: optional, "
                   "default every row of the sources, weighted)")
    p.add_argument("--budget", metavar="N", help="training budget in the plan's unit (tokens or rows)")
    p.add_argument("--unit", help="tokens or rows (default: the run's, else tokens; rows for chem-table)")
    p.add_argument("--max-epochs", default="4", help="warn about sources repeated more often (default 4)")
    p.add_argument("--fit-rows", action="store_true",
                   help="chem-table: only the rows the run's final models of --problem trained on (each source's fit "
                        "split in its trial), not every labelled row")
    p.add_argument("--respect-limit", action="store_true",
                   help="solve MixMin again with availability caps so no source exceeds --max-epochs (--method mixmin, "
                        "or a joint mixmin_joint_<mode> over its targets)")
    p.add_argument("--format", dest="fmt", help=f"one of {', '.join(export.FORMATS)} (default json)")
    p.add_argument("--data-prefix", default="{source}", help="megatron: data prefix per source, e.g. /data/{source}_text_document")
    p.add_argument("--seed", default="0", help="hf: interleaving seed (default 0)")
    p.add_argument("--out", default="-", help="output file (default: standard output)")
    p.__class__ = _OneLineErrors  # the subparser exists already; only its error reporting changes
    p.set_defaults(func=cmd_export)


class _OneLineErrors(argparse.ArgumentParser):
    """Usage errors (an unknown flag, a missing value) as one ``error:`` line and exit status 2."""

    def error(self, message: str):
        print(f"error: {message} (see python -m jobs export --help)", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:  # reported here, not by the top-level parser with its usage block
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def cmd_export(args) -> int:
    listing = args.run and not args.problem and not args.weights and not any(
        (args.budget, args.budget_tokens, args.budget_rows, args.fmt, args.sizes, args.respect_limit, args.fit_rows,
         args.out != "-"))
    args.fmt = "json" if args.fmt is None else args.fmt
    if args.weights and args.method is not None:  # it would be ignored: the file is the mixture
        raise InputError(f"--method picks a run's mixture; --weights {args.weights} is the mixture itself: drop one.")
    if args.weights and args.problem is not None and args.run is None:
        raise InputError("--problem names a problem of --run RUN_ID (its setting's source sizes); without --run, drop it.")
    args.method = args.method or "mixmin"
    if args.fmt not in export.FORMATS:
        raise InputError(f"--format must be one of {', '.join(export.FORMATS)}; got {args.fmt!r}.")
    run_dir, problem = _run(args, listing)  # first: without --problem it lists the run's problem keys
    if listing:
        keys = _problem_keys(run_dir)  # `export --run RUN_ID` alone: the listing, one key per line
        print("\n".join(keys) if keys else f"run {args.run} has no mixtures yet")
        return 0
    if args.fmt == "chem-table" and run_dir is None:
        raise InputError("--format chem-table needs --run RUN_ID (a chemistry run, for its molecules and labels).")
    if args.fit_rows and (args.fmt != "chem-table" or problem is None):
        raise InputError("--fit-rows selects a chemistry run's training rows for --format chem-table with --run RUN_ID "
                         "--problem KEY (its trial's fit splits).")
    if args.data_prefix != "{source}" and args.fmt != "megatron":  # it would be ignored
        raise InputError(f"--data-prefix applies to --format megatron only; drop it for --format {args.fmt}.")
    given = [(f, v) for f, v in (("--budget-tokens", args.budget_tokens), ("--budget-rows", args.budget_rows),
                                 ("--budget", args.budget)) if v is not None]
    if len(given) > 1:
        raise InputError(f"give one budget; got {' and '.join(f for f, _ in given)}.")
    if not given and args.fmt != "chem-table":
        raise InputError("--budget-tokens (or --budget-rows) is required: the total amount the final model trains on.")
    budget_flag = given[0][0] if given else None
    budget = _number(budget_flag, given[0][1]) if given else None
    max_epochs = _number("--max-epochs", args.max_epochs)
    seed = _integer("--seed", args.seed)
    if not 0 <= seed < 2**32:  # what the snippet's shuffles take
        raise InputError(f"--seed must be an integer from 0 to {2**32 - 1}; got {args.seed}.")
    result = _read_weights(args.weights) if args.weights else _run_mixture(run_dir, problem, args.method)
    if args.fmt == "chem-table":  # the final models' weights: one under 5e-6 (solver noise) trains on no rows
        result = export.training_mixture(result)
    variant = problem.variant if problem else ""
    sizes, unit, documents, tokenizer, note = _sizes(args, run_dir, variant)
    members = export.run_trial_rows(run_dir, problem.trial) if args.fit_rows else None
    if members:  # the table holds these rows: the repeat check and a default budget count them, not every label
        sizes = {**sizes, **{name: float(len(rows)) for name, (_, rows) in members.items()}}
    unsized = [n for n in result.source_names if n not in sizes]
    if args.sizes and unsized:
        raise InputError(f"{args.sizes}: no row for {len(unsized)} source(s) of the mixture, e.g. {unsized[:5]}; give "
                         "each source one row (its name as the run writes it in sources.csv).")
    if args.unit is not None:
        if run_dir is not None and not args.sizes and args.unit in export.UNITS and args.unit != unit:
            raise InputError(f"--unit {args.unit}: this run's source sizes (its sources.csv) are in {unit}; "
                             f"drop --unit, or give --sizes FILE.csv with sizes in {args.unit}.")
        unit = args.unit
    if args.fmt == "chem-table" and unit != "rows":
        raise InputError(f"--format chem-table lists a chemistry run's molecules; these sources are sized in {unit} (a "
                         "language-model run): use json, csv, hf, olmix or megatron.")
    wrong = {"--budget-tokens": "rows", "--budget-rows": "tokens"}.get(budget_flag)
    if wrong == unit:
        raise InputError(f"{budget_flag}: this plan's sizes are in {unit}, so its budget is too; give "
                         f"--budget-{unit} (or --budget).")
    if budget is None:  # chem-table: every row of the weighted sources, as the pipeline's final models train on
        budget = float(round(sum(float(sizes[n]) for n, w in zip(result.source_names, result.weights)
                                 if w > 0 and n in sizes)))  # whole rows (a sizes file may hold 1710.5)
    if budget < 1:
        raise InputError(f"{budget_flag or '--budget-rows'}: a budget is at least one {unit[:-1]}; got {budget:g}"
                         + ("" if budget_flag else " (the weighted sources' sizes add up to that)") + ".")
    meta = {"run": args.run, "problem": problem.key} if problem is not None else {}
    if tokenizer:
        meta["tokenizer"] = tokenizer
    if note:  # the exports' warnings carry it too (json, hf and olmix files)
        meta["sizes_note"] = note
    try:
        plan = export.plan_training(result, sizes, budget=budget, max_epochs=max_epochs, unit=unit, meta=meta,
                                    documents=documents)
    except InputError as exc:  # a bad weight is the file's; a budget or a sizes file is not
        raise InputError(f"{args.weights}: {exc}" if args.weights and str(exc).startswith("result.weights")
                         else str(exc)) from None
    if args.respect_limit and not _resolvable(result):  # solving again is MixMin's: it would swap the mixture
        instead = ("a run's MixMin mixture (--run RUN_ID --method mixmin)" if args.weights else "--method mixmin")
        raise InputError(f"--respect-limit solves MixMin again under the repeat limit, so it applies to --method mixmin "
                         f"(or a joint mixmin_joint_<mode>) only; the {result.method!r} mixture would be replaced by a "
                         f"MixMin one. Drop --respect-limit (the warnings name the sources over the limit), or export "
                         f"{instead}.")
    if args.respect_limit and not given:  # chem-table's table holds every row: no draws, no limit to respect
        raise InputError("--respect-limit solves again so no source is drawn more than --max-epochs times in a "
                         "budget; give the budget (--budget-rows).")
    if args.respect_limit and plan.over_limit:
        plan = _solve_again(plan, result, run_dir, problem, sizes)
    fallback = export.hf_fallback(plan) if args.fmt == "hf" else None
    # chem-table without a budget draws nothing: no repeats to check
    checked = plan.warnings() if given else [f"sizes: {note}"] if note else []
    for line in checked + ([fallback] if fallback else []):
        print(f"warning: {line}", file=sys.stderr)
    examples = (export.run_chem_examples(run_dir, plan.source_names, variant, members)
                if args.fmt == "chem-table" and run_dir else None)
    text = export.render(plan, args.fmt, examples=examples, path_template=args.data_prefix, seed=seed)
    _write(args.out, text)
    what = f"{plan.budget:.6g} {plan.unit}"
    if args.fmt == "chem-table":  # the table is the same at any budget: say what the budget meant
        rows = ("the rows the run's final models of this problem trained on, each source's fit split in trial "
                f"{problem.trial}" if args.fit_rows else "every labelled row of its weighted sources, their test and "
                "validation splits too (--fit-rows: only what the run's final models trained on)")
        what = (f"{len(text.splitlines()) - 1} rows ({rows}; each source's rows "
                "sum to its weight times the rows: sample weights of mean 1, as the pipeline's final models train with; "
                f"the repeat check assumes {plan.budget:.6g} rows drawn with them as probabilities)")
    sources = f"{len(plan.source_names)} sources"
    if args.fmt == "chem-table":
        sources = f"{int((plan.weights > 0).sum())} weighted of {sources}"
    print(f"{args.fmt}: {sources}, {what}, method {plan.method}"
          + ("" if args.out == "-" else f" -> {args.out}"), file=sys.stderr)
    return 0


def _number(flag: str, text) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InputError(f"{flag} must be a positive number; got {text!r}.") from None
    if not value > 0 or value == float("inf"):
        raise InputError(f"{flag} must be a positive number; got {text!r}.")
    return value


def _integer(flag: str, text) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise InputError(f"{flag} must be an integer; got {text!r}.") from None


def _run(args, listing: bool = False):
    if args.run is None:
        if args.weights is None:
            raise InputError("say which mixture to export: --run RUN_ID --problem KEY, or --weights FILE.json.")
        return None, None
    from mixmin_core.runs.store import RunStore

    store = RunStore()
    run_dir = store.run_dir(args.run)
    if store.get_run(args.run) is None or not run_dir.is_dir():  # the catalog's ids: never a path elsewhere
        raise InputError(f"no run {args.run!r} in {store.root}; `python -m jobs status` lists the runs.")
    if args.problem is None:
        if args.weights is not None or listing:
            return run_dir, None
        raise InputError(f"--problem is required with --run; problems with mixtures: {_problems(run_dir)}.")
    try:
        problem = run_problem(run_dir, args.problem)
    except (ValueError, IndexError):
        raise InputError(f"--problem {args.problem!r} is not a problem key such as TARGET__trial0; "
                         f"this run has {_problems(run_dir)}.") from None
    return run_dir, problem


def _problem_keys(run_dir: Path) -> list[str]:
    return sorted(p.key for p in mixture_problems(run_dir))


def _problems(run_dir: Path, shown: int = 10) -> str:
    """The run's problem keys with mixtures, the first ``shown`` of them and how many there are."""
    keys = _problem_keys(run_dir)
    return str(keys[:shown]) + (f" and {len(keys) - shown} more (the run's mixtures/ folder names them all)"
                                if len(keys) > shown else "")


def _run_mixture(run_dir: Path, problem: Problem, method: str) -> MixtureResult:
    path = mixture_path(run_dir, problem, method)
    if not path.exists():
        methods = sorted(list_mixtures(run_dir, problem))
        if not methods:
            raise InputError(f"run has no mixtures for problem {problem.key!r}; problems with mixtures: {_problems(run_dir)}.")
        raise InputError(f"no {method!r} mixture for problem {problem.key!r}; --method can be one of {methods}.")
    return _read_weights(path)


#: Largest --weights file read (a mixture of a million sources fits).
MAX_WEIGHTS_BYTES = 64 << 20


def _read_weights(path) -> MixtureResult:
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a device such as /dev/zero (it reads forever)
        raise InputError(f"{path}: not a regular file; --weights takes a mixture JSON file.")
    if path.exists() and path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise InputError(f"{path}: {path.stat().st_size / 2**20:,.0f} MB is more than a mixture JSON needs "
                         f"(at most {MAX_WEIGHTS_BYTES >> 20} MB).")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM, as an editor on Windows saves it
        result = MixtureResult.from_dict(data)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found.") from None
    except OSError as exc:  # a folder, a file without read permission
        raise InputError(f"{path}: cannot read it as a mixture JSON ({exc.strerror}).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc}).") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (KeyError, TypeError, AttributeError, ValueError):
        raise InputError(f"{path}: not a mixture; expected MixtureResult.to_dict() JSON with a 'weights' "
                         "object {source: weight}.") from None
    if not result.source_names:
        raise InputError(f"{path}: 'weights' is empty.")
    return result


def _sizes(args, run_dir, variant: str) -> tuple[dict, str, dict | None, str | None, str | None]:
    """``(sizes, unit, documents per source or None, what counted the tokens or None, what the sizes are or None)``
    from --sizes, else from the run (its setting ``variant``'s sources)."""
    if args.sizes:  # in the run's unit (a chemistry run's are rows), else in the budget's
        try:
            unit = export.run_source_sizes(run_dir, variant).unit if run_dir is not None else None
        except (InputError, OSError):
            unit = None
        unit = unit or ("rows" if args.fmt == "chem-table" or args.budget_rows is not None else "tokens")
        return export.read_sizes_csv(args.sizes), unit, export.read_documents_csv(args.sizes), None, None
    if run_dir is None:
        raise InputError("--weights needs the source sizes: --sizes FILE.csv (columns source,size) or --run RUN_ID.")
    found = export.run_source_sizes(run_dir, variant)
    try:
        note = export.sizes_note(read_json(run_dir / "config.json"), estimated=found.estimated)
    except (OSError, ValueError):
        note = None
    note = note and note.replace("in a CSV (source,size", "with --sizes FILE.csv (source,size")
    return found.sizes, found.unit, found.documents, found.tokenizer, note


def _resolvable(result: MixtureResult) -> bool:
    """Whether --respect-limit can solve ``result`` again: MixMin's own, or a joint one whose record says how."""
    meta = result.meta if isinstance(result.meta, dict) else {}
    return result.method == "mixmin" or (result.method.startswith("mixmin_joint_") and isinstance(meta.get("targets"), list)
                                         and meta.get("mode") in ("mean", "worst"))


def _solve_again(plan, result, run_dir, problem, sizes):
    from mixmin_core.solver.proxy_outputs import ProxyOutputs

    if problem is None:
        raise InputError("--respect-limit solves again on the run's proxy outputs: give --run RUN_ID --problem KEY.")
    # the mixture's own solver settings (the app's export panel does the same); older files lack max_iter
    meta = result.meta if isinstance(result.meta, dict) else {}
    joint = result.method != "mixmin"  # a joint file from before max_iter was recorded: mixmin_multi's default
    step, iters = float(meta.get("step_size", 1.0)), int(meta.get("max_iter", 1000 if joint else 100))
    if not joint:
        again = export.solve_within_limit(ProxyOutputs.load(outputs_path(run_dir, problem)), plan, step_size=step,
                                          max_iter=iters, tol=1e-6)
    else:  # a joint mixture: every target's outputs of its trial and setting, in its mode
        outputs = {t: ProxyOutputs.load(outputs_path(run_dir, Problem(t, problem.trial, problem.variant)))
                   for t in meta["targets"]}
        again = export.solve_within_limit(outputs, plan, step_size=step, max_iter=iters, tol=1e-6, mode=meta["mode"],
                                          normalise=bool(meta.get("normalise")), target_weights=meta.get("target_weights"))
        again = dataclasses.replace(again, method=result.method)
    print(f"solved again with caps max_epochs * size / budget (step size {step:g}, {iters} iterations, as the "
          f"mixture was): loss {again.loss:.6g} (was {result.loss:.6g}), {again.status}", file=sys.stderr)
    return export.plan_training(again, sizes, budget=plan.budget, max_epochs=plan.max_epochs, unit=plan.unit,
                                meta={**plan.meta, "resolved_within_limit": True, "from_method": plan.method},
                                documents=plan.documents_dict())


def _write(out: str, text: str) -> None:
    if out == "-":
        sys.stdout.write(text)
        return
    path = Path(out)
    if not out or path.is_dir() or path.is_symlink() or (path.exists() and not path.is_file()):
        # the file is replaced whole (written beside it, then renamed): a link, a device or a pipe would be
        # replaced by a plain file, not written through
        raise InputError(f"--out {out!r}: not a plain file path (a folder, a link, a device or a pipe); give the "
                         "path of a file to write, or - for standard output.")
    try:
        write_text(out, text)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write ({exc.strerror or exc}).") from None
