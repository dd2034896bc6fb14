"""The Solver page in a real browser: time from a step-size key press until the page has caught up.

Starts ``streamlit run app.py`` on 127.0.0.1 with a run store, opens the Solver page in headless
Chromium (Playwright) and moves the step-size slider with the keyboard. Each move is timed from the
key press until the "Weight trajectories" figure and the "Final loss" metric both show the new
solve. Goal (issue 13): median under 0.3 s, worst under 0.6 s.

Moves up the slider visit step sizes the server has not solved yet (a fresh solve each time); the
moves back down revisit them (the solve is cached): both are reported, with the solve alone
(in-process) for scale.

    python -m benchmarks.app_browser                          # synthetic 616 x 1,107 and 1,328 x 20,000 uploads
    python -m benchmarks.app_browser --sizes 616x1107
    MIXMIN_HOME=data python -m benchmarks.app_browser --run RUN_ID [--problem KEY]   # a real run's problem
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

MEDIAN_GOAL, WORST_GOAL = 0.3, 0.6
START_STEP = "0.03"  # then 10 moves right: 0.1, 0.3, 0.5, 1, 2, 3, 5, 10, 30, 100

#: Changes when the trajectory figure (inline SVG, pages/common/svg.py) is redrawn with new data: its last
#: three lines (highlighted sources; the grey ones below them move with them).
STATE_JS = """() => {
  const p = document.querySelector('svg[data-chart="Weight trajectories"]');
  const m = Array.from(document.querySelectorAll('[data-testid="stMetric"]'))
    .find(el => el.innerText.includes('Final loss'));
  const busy = document.querySelector('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]');
  return {traj: p ? Array.from(p.querySelectorAll('polyline')).slice(-3).map(l => l.getAttribute('points')).join('|') : null,
          loss: m ? m.querySelector('[data-testid="stMetricValue"]').innerText : null, busy: !!busy};
}"""
CHANGED_JS = ("(before) => { const now = (" + STATE_JS + ")();"
              " return now.traj !== null && now.traj !== before.traj && (now.loss !== before.loss || !now.busy); }")


def save_synthetic(home: Path, n_sources: int, n_samples: int) -> str:
    """A binary problem of the given size saved as an upload; returns its ``problem`` URL value."""
    from tests.app.fixtures import binary_outputs

    name = f"bench-{n_sources}x{n_samples}"
    path = home / "uploads" / name
    if not path.with_name(name + ".npz").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        outputs = binary_outputs(n_sources, n_samples, np.random.default_rng(0), n_informative=min(20, n_sources),
                                 source_names=[f"source_{i:04d}" for i in range(n_sources)])
        outputs.save(path)
    return f"upload:{name}"


def solve_alone(problem_path: Path, steps: list[float]) -> list[float]:
    """Seconds per MixMin solve (100 iterations) in-process, one per step size, stored as the page stores it."""
    from streamlit.logger import set_log_level

    from mixmin_core import ProxyOutputs, mixmin

    set_log_level("error")  # the pages' caches say "No runtime found" once per cached function, outside an app
    from pages.common.data import live_storage

    outputs = ProxyOutputs.load(problem_path)
    storage = live_storage(outputs)
    mixmin(outputs, step_size=1.0, max_iter=100, storage=storage)  # warm-up
    times = []
    for step in steps:
        t0 = time.perf_counter()
        mixmin(outputs, step_size=step, max_iter=100, storage=storage)
        times.append(time.perf_counter() - t0)
    return times


def time_moves(page, key: str, n: int) -> list[float]:
    from tests.app.browser import wait_idle

    slider = page.get_by_role("slider", name="Step size η")
    slider.focus()
    times = []
    for _ in range(n):
        before = page.evaluate(STATE_JS)
        t0 = time.perf_counter()
        page.keyboard.press(key)
        page.wait_for_function(CHANGED_JS, arg=before, polling="raf", timeout=60_000)
        times.append(time.perf_counter() - t0)
        wait_idle(page)  # let the run finish completely before the next press
        slider.focus()
    return times


def bench(browser, url: str, query: str, moves: int) -> tuple[list[float], list[float], list[str]]:
    from tests.app.browser import open_page

    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    try:
        open_page(page, url, f"solver?{query}&step_size={START_STEP}", "Solver")
        slider = page.get_by_role("slider", name="Step size η")
        fresh = time_moves(page, "ArrowRight", moves)
        visited = [slider.get_attribute("aria-valuetext")]
        cached = time_moves(page, "ArrowLeft", moves)
        caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="target samples").first.inner_text()
        return fresh, cached, visited + [caption]
    finally:
        context.close()


def verdict(times: list[float]) -> str:
    median, worst = statistics.median(times), max(times)
    ok = median < MEDIAN_GOAL and worst < WORST_GOAL
    return (f"median {median:.3f} s, worst {worst:.3f} s "
            f"(goal < {MEDIAN_GOAL} / < {WORST_GOAL} s: {'met' if ok else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="616x1107,1328x20000", help="synthetic problems, sources x samples")
    parser.add_argument("--run", help="time a real run's problem instead (store: MIXMIN_HOME)")
    parser.add_argument("--problem", help="the run's problem key (default: its first problem in the main setting)")
    parser.add_argument("--moves", type=int, default=10)
    args = parser.parse_args()
    from mixmin_core.runs import layout
    from mixmin_core.runs.store import RunStore, default_home
    from tests.app.browser import chromium, serve

    steps = [0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0][: args.moves]
    with tempfile.TemporaryDirectory(prefix="mixmin-bench-") as tmp:
        if args.run:
            home = default_home()
            run_dir = RunStore(home).run_dir(args.run)
            problems = layout.list_problems(run_dir)
            if not problems:
                raise SystemExit(f"--run {args.run}: no proxy outputs under {run_dir}; pick a run with proxy outputs.")
            largest = {p: (layout.sweep_point(p.variant) or ("", 0.0))[1] for p in problems}  # main setting first
            key = args.problem or min(problems, key=lambda p: (p.variant != "", -largest[p], p.target, p.trial)).key
            cases = [(f"run={args.run}&problem={key}", layout.outputs_path(run_dir, layout.Problem.from_key(key)))]
        else:
            home = Path(tmp) / "home"
            cases = []
            for size in args.sizes.split(","):
                p, n = (int(x) for x in size.lower().split("x"))
                problem = save_synthetic(home, p, n)
                cases.append((f"problem={problem}", home / "uploads" / problem.split(":", 1)[1]))
        print(f"Solver page, step-size slider moved {args.moves} times each way in headless Chromium "
              f"(key press -> trajectory figure and final loss updated)")
        with serve(home, log_dir=Path(tmp)) as url, chromium() as browser:
            for query, path in cases:
                fresh, cached, (_, caption) = bench(browser, url, query, args.moves)
                alone = solve_alone(path, steps)
                print(f"\n{caption}  [{query}]")
                print(f"  new step sizes (solved on the server): {verdict(fresh)}")
                print(f"  revisited step sizes (cached solve):  {verdict(cached)}")
                print(f"  the solve alone, in-process:          median {statistics.median(alone):.3f} s, "
                      f"worst {max(alone):.3f} s  (100 iterations, as the page stores the matrix)")
                print("  per move (s): new " + " ".join(f"{t:.2f}" for t in fresh)
                      + " | revisited " + " ".join(f"{t:.2f}" for t in cached))


if __name__ == "__main__":
    main()
