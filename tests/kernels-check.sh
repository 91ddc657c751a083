#!/usr/bin/env bash
# How far a rebuild on another machine moves the book (make kernels-check): the tiny grid of tests/ci-params.yaml
# built in scratch clones of HEAD, once with torch's default CPU kernels and once under each other kernel set this
# CPU runs (ATEN_CPU_CAPABILITY=avx2, and default: no vectorisation), which is what another machine changes; then
# `zeroflow compare` of each build against the default one: every verdict of the Claims page and of Table 1's
# statements, every number, the largest difference. The result goes to book/kernels.json, which the book's
# Reproducibility page reads; commit it. A build takes about 7 minutes on 2 busy cores.
set -euo pipefail
repo=$(pwd)
build="$repo/build/kernels"
rm -rf "$build"
mkdir -p "$build"
native=$(python -c "import torch; print(torch.backends.cpu.get_cpu_capability())")
kernels=(native)
# KERNELS_CHECK_SETS narrows the other kernel sets (e.g. "avx2" alone, half the time on a busy machine)
for capability in ${KERNELS_CHECK_SETS:-avx2 default}; do
  upper=$(tr '[:lower:]' '[:upper:]' <<<"$capability")
  if [[ $upper != "$native" ]]; then kernels+=("$capability"); fi
done
echo "kernels-check: this CPU's default kernels are $native; building under: ${kernels[*]}"

for kernel in "${kernels[@]}"; do
  clone="$build/$kernel"
  git clone --quiet "$repo" "$clone"
  cp tests/ci-params.yaml "$clone/params.yaml"
  (
    cd "$clone"
    export PYTHONPATH="$PWD"
    if [[ $kernel != native ]]; then export ATEN_CPU_CAPABILITY=$kernel; fi
    started=$(date +%s)
    dvc repro > "$build/$kernel.log" 2>&1 || { tail -30 "$build/$kernel.log"; exit 1; }
    echo "kernels-check: $kernel built in $(( $(date +%s) - started )) s ($(python -c \
      "import torch; print(torch.backends.cpu.get_cpu_capability())") kernels)"
  )
done

for kernel in "${kernels[@]:1}"; do
  echo "== $kernel against $native (the default)"
  # its exit status says whether any number differs at all; what this check asks is below
  PYTHONPATH="$build/native" zeroflow compare "$build/$kernel" --this "$build/native" --json "$build/$kernel.json" \
    || true
done
# fails when a verdict or statement differs between the kernels; numbers may differ (their size is what is recorded)
PYTHONPATH="$repo" python - "$build" "$native" "${kernels[@]:1}" <<'PY'
import sys
from pathlib import Path

from zeroflow_core.book.compare import record_kernels

build, native, others = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
record = record_kernels(native, {kernel: build / f"{kernel}.json" for kernel in others}, Path("book/kernels.json"))
print("kernels-check: recorded in book/kernels.json")
differing = [kernel for kernel, row in record["against"].items() if row["texts_differing"]]
sys.exit(f"kernels-check: verdicts differ under {', '.join(differing)}" if differing else 0)
PY
