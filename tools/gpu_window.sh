#!/usr/bin/env bash
# One GPU window for `python -m sparse_ssm.gpu_check` on a machine that has torch (CUDA), Triton, numpy,
# scipy, matplotlib and PyYAML but none of this project's pure-Python needs, and no network.
#   here, with PyPI:   bash tools/gpu_window.sh prepare          -> .whl/ (git-ignored, a few MB of wheels)
#   there, on the GPU: bash tools/gpu_window.sh run [MINUTES]    -> report.json, report.md and the log in $OUT
#                      (default MINUTES 7: with the start and the imports it stays inside a 10-minute command)
# The wheels: fastcore (the package's own), mambapy (the scan peer), nbdev and what it needs (to run the
# notebooks' own `#| cuda` cells); the versions are the ones the test suite runs with.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS="fastcore==1.12.47 mambapy==1.2.0 nbdev==2.4.14 execnb==0.1.18 ghapi==1.1.1 fastgit==0.1.4 astunparse==1.6.3
 watchdog==7.1.0 asttokens==3.0.2 ipython==9.18.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 parso==0.8.7
 matplotlib-inline==0.2.2 traitlets==5.16.1 pexpect==4.9.0 ptyprocess==0.7.0 prompt_toolkit==3.0.53 wcwidth==0.9.4
 stack_data==0.6.3 executing==2.3.0 pure_eval==0.2.4"
case "${1:-}" in
prepare)
  ex="$(git rev-parse --git-path info/exclude)"; grep -qx '/.whl/' "$ex" 2>/dev/null || echo '/.whl/' >> "$ex"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
  ls .whl | wc -l; du -sh .whl ;;
run)
  minutes="${2:-7}"; out="${OUT:-gpu_report}"; mkdir -p "$out"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  nvidia-smi -L || true
  set +e; python3 -m sparse_ssm.gpu_check --out "$out" --minutes "$minutes" 2>&1 | tee "$out/gpu_check.log"; rc=${PIPESTATUS[0]}
  echo "gpu_check exit status $rc"; exit "$rc" ;;
*) echo "usage: bash tools/gpu_window.sh prepare | run [MINUTES]" >&2; exit 2 ;;
esac
