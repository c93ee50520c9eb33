#!/usr/bin/env bash
# The issue-11 GPU measurement, as one call on a lent GPU machine (BENCHMARKS.md "Scale"):
# render N clips, ingest them for the resnet18 preset, train ce and ntl briefly with --device "$DEVICE" while
# nvidia-smi samples the GPU's utilisation, and leave summary.txt, the progress logs and the samples in $OUT.
#   N=20000 DEADLINE_S=540 OUT=/tmp/out bash scripts/gpu_scale.sh
# PyAV, umap-learn and pynndescent are not on the lent GPU image: wheels in .whl/ (git-ignored) are installed first
# when present; made here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 -d .whl av==18.1.0 umap-learn==0.5.12 pynndescent==0.7.0
set -u
N=${N:-20000}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python3}
OUT=${OUT:?set OUT to a folder for the results}
DEADLINE=$(( $(date +%s) + ${DEADLINE_S:-540} ))
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
D=${DATA:-/tmp/gpu_s$N}
S="$OUT/summary.txt"
log() { echo "$(date +%T) $*" | tee -a "$S"; }
left() { echo $(( DEADLINE - $(date +%s) )); }
smi() { command -v nvidia-smi >/dev/null && nvidia-smi "$@"; }
smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$S"
$PY -c "import torch, numpy, pandas, av, sklearn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
 'numpy', numpy.__version__, 'pandas', pandas.__version__, 'av', av.__version__, 'cpus', __import__('os').cpu_count())" \
  2>&1 | tee -a "$S" || exit 1

stage() {  # stage NAME SECONDS-AT-MOST command...: run, time, log rc and peak RSS of the process tree's largest
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s.%N)
  ( smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 250 \
      >"$OUT/smi_$name.csv" 2>/dev/null ) & local smipid=$!
  echo "== $name: $*" >>"$OUT/logs.txt"
  timeout "$limit" "$@" >/tmp/log_$name.txt 2>&1; local rc=$?
  kill $smipid 2>/dev/null; wait $smipid 2>/dev/null
  local t1=$(date +%s.%N)
  local util=$(awk -F', ' '{s+=$2; n++} END {if (n) printf "%.0f%% mean of %d samples", s/n, n}' "$OUT/smi_$name.csv" 2>/dev/null)
  case $name in ce|ntl) ;; *) rm -f "$OUT/smi_$name.csv" ;; esac  # at most 8 files come back
  tr '\r' '\n' </tmp/log_$name.txt | grep -v '^ingest: .*clip/s\]$' >>"$OUT/logs.txt"
  log "$name: rc=$rc wall=$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}") s gpu_util=${util:-n/a}"
  tail -3 "$OUT/logs.txt" | tee -a "$S"
}

[ -f "$D/labels.csv" ] || stage sample $(( $(left) - 200 )) $PY -m auditor sample --out "$D" --clips "$N" --seed 1 --workers 16
stage ingest $(( $(left) - 150 )) $PY -m auditor ingest --data "$D" --preset resnet18 --workers 16
du -sb "$D/clips" "$D/.auditor" 2>/dev/null | tee -a "$S"
stage ce $(( ($(left) - 20) / 3 )) $PY -m auditor train --data "$D" --run /tmp/gpu_ce --preset resnet18 --device "$DEVICE" \
  --method ce --epochs-phase1 2 --quiet
cp /tmp/gpu_ce/progress.jsonl "$OUT/progress_ce.jsonl" 2>/dev/null
stage ntl $(( $(left) - 10 )) $PY -m auditor train --data "$D" --run /tmp/gpu_ntl --preset resnet18 --device "$DEVICE" \
  --method ntl --epochs-phase1 3 --warmup-epochs 1 --epochs-phase2 1 --quiet
cp /tmp/gpu_ntl/progress.jsonl "$OUT/progress_ntl.jsonl" 2>/dev/null
log "done; $(left) s of the deadline left"
