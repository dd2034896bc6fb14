#!/usr/bin/env bash
# One command for a newcomer:
#   bash run.sh          set up, then start the app on http://127.0.0.1:8501 (this machine only;
#                        MIXMIN_ADDRESS=0.0.0.0 shares it on the network, see the README)
#   bash run.sh demo     set up, run the offline ToxCast demo experiment, then start the app
#   bash run.sh test     set up (incl. Chromium for the browser test), then run the test suite
# Arguments after app or demo go to Streamlit (bash run.sh app --server.port 8600); after test, to pytest.
set -euo pipefail
cd "$(dirname "$0")"
export MIXMIN_DATA_DIR="${MIXMIN_DATA_DIR:-$(cd .. && pwd)/shared/data}"
ADDRESS="${MIXMIN_ADDRESS:-127.0.0.1}"  # loopback unless sharing is asked for

setup() {
    # torch is pinned to 2.13.0 in requirements.txt (a CPU wheel here; the README says how elsewhere): a looser pin downloads a multi-GB CUDA build
    python3 -m pip install --quiet -r requirements.txt
}

setup_browser() {
    if ! command -v chromium >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
    fi
}

if [[ "${1:-}" == --* ]]; then set -- app "$@"; fi  # bash run.sh --server.port 8600: the app, with that option
case "${1:-app}" in
    app)  setup; exec python3 -m streamlit run app.py --server.address "$ADDRESS" "${@:2}" ;;
    demo) setup
          echo "Running the ToxCast demo: about 11 minutes on 2 cores, then the app starts (Ctrl-C stops it; running" \
               "this again resumes it). Or run 'bash run.sh' and start the demo from the app's Runs page." >&2
          python3 -m jobs run configs/chem_demo.yaml; exec python3 -m streamlit run app.py --server.address "$ADDRESS" "${@:2}" ;;
    test) setup; setup_browser; python3 -m pytest "${@:2}" ;;
    *)    echo "usage: bash run.sh [app|demo [streamlit args]|test [pytest args]]" >&2; exit 2 ;;
esac
