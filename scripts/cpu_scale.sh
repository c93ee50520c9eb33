#!/usr/bin/env bash
# The issue-11 scale rows on this machine (BENCHMARKS.md "Scale"): for each size, render the sample, ingest it,
# train ntl for 2 epochs (warm-up 1: the second epoch weights with w and r) and let train score, each stage under
# /usr/bin/time -v. Results: $OUT/scale.tsv (one line per stage) and each run's progress.jsonl.
#   OUT=/tmp/scale SIZES="2000 5000 20000" bash scripts/cpu_scale.sh
set -u
OUT=${OUT:?set OUT}; SIZES=${SIZES:-"2000 5000 20000"}; PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
row() {  # row SIZE STAGE command...
  local n=$1 stage=$2; shift 2
  /usr/bin/time -v -o "$OUT/time_${n}_$stage.txt" "$@" >"$OUT/log_${n}_$stage.txt" 2>&1
  local rc=$? wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT/time_${n}_$stage.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.2f", $2 / 1048576}' "$OUT/time_${n}_$stage.txt")
  printf '%s\t%s\trc=%s\twall=%s\tpeak_rss_gb=%s\n' "$n" "$stage" "$rc" "$wall" "$rss" | tee -a "$OUT/scale.tsv"
}
for n in $SIZES; do
  d=$OUT/s$n
  [ -f "$d/labels.csv" ] || row "$n" sample $PY -m auditor sample --out "$d" --clips "$n" --seed 1 --workers 2
  row "$n" ingest $PY -m auditor ingest --data "$d" --workers 2
  printf '%s\tcache\t%s bytes\n' "$n" "$(du -sb "$d/.auditor/cache" | cut -f1)" | tee -a "$OUT/scale.tsv"
  row "$n" train $PY -m auditor train --data "$d" --run "$OUT/r$n" --method ntl --epochs-phase1 2 \
    --warmup-epochs 1 --epochs-phase2 0 --quiet
  cp "$OUT/r$n/progress.jsonl" "$OUT/progress_$n.jsonl" 2>/dev/null
  row "$n" score $PY -m auditor score --run "$OUT/r$n" --data "$d" --out "$OUT/score$n"
done
