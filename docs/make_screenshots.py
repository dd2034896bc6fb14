"""Screenshots of the Solver, Compare and Assays pages for the README, taken in headless Chromium.

Serves the app on 127.0.0.1 over a run store, opens each page through a link (the same URLs the
"Copy link to this view" buttons give) and saves the top of the page as a small PNG under docs/.

    MIXMIN_HOME=data python docs/make_screenshots.py --run RUN_ID     # e.g. the ToxCast demo run
    python docs/make_screenshots.py                                   # runs configs/chem_ci.yaml first (~10 s)

Options: ``--solver "step_size=3&max_iter=200"`` etc. add query-string selections per page.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app.browser import chromium, open_page, serve, wait_idle  # noqa: E402

OUT = ROOT / "docs"
PAGES = (("solver", "Solver"), ("compare", "Compare"), ("assays", "Assays"))
VIEWPORT = {"width": 1360, "height": 1000}


def ci_run(home: Path) -> str:
    """Run configs/chem_ci.yaml (a tiny real ToxCast run) into ``home``; return its run id."""
    from mixmin_core.runs.store import RunStore

    env = {**os.environ, "MIXMIN_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "jobs", "run", "configs/chem_ci.yaml", "--quiet"], cwd=ROOT, env=env,
                   check=True, timeout=900)
    return RunStore(home).list_runs()[0]["run_id"]


def shrink(path: Path, colours: int = 128) -> None:
    """Palette PNG (screenshots are flat UI colours): a fraction of the size, no visible change."""
    from PIL import Image

    with Image.open(path) as img:
        small = img.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="run id in MIXMIN_HOME (default: run configs/chem_ci.yaml in a temp store)")
    parser.add_argument("--out", type=Path, default=OUT)
    for path, _ in PAGES:
        parser.add_argument(f"--{path}", default="", help=f"extra query string for the {path} page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mixmin-shots-") as tmp:
        if args.run:
            from mixmin_core.runs.store import default_home

            home, run_id = default_home(), args.run
        else:
            home = Path(tmp) / "home"
            run_id = ci_run(home)
        args.out.mkdir(parents=True, exist_ok=True)
        with serve(home, log_dir=Path(tmp)) as url, chromium() as browser:
            for path, title in PAGES:
                context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
                page = context.new_page()
                extra = getattr(args, path)
                open_page(page, url, f"{path}?run={run_id}" + (f"&{extra}" if extra else ""), title)
                # every page has charts: Plotly's, or the Solver's inline SVG (pages/common/svg.py)
                page.locator(".js-plotly-plot .main-svg, svg[data-chart]").first.wait_for(timeout=180_000)
                wait_idle(page)
                page.add_style_tag(content='[data-testid="stSidebar"] {display: none;}')  # the page, not the chrome
                page.wait_for_timeout(500)
                shot = args.out / f"{path}.png"
                page.screenshot(path=str(shot))
                shrink(shot)
                print(f"{shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot}: "
                      f"{shot.stat().st_size / 1024:.0f} KiB  ({url}/{path}?run={run_id}{'&' + extra if extra else ''})")
                context.close()


if __name__ == "__main__":
    main()
