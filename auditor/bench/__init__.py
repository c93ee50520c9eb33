"""Benchmark: every method on the same encoders, preset and data with injected, known noise, side by side.

Data: the sample generator at a table of data settings (noise type, label-noise rate, mismatch rate, long-tailed
class sizes, muted sound tracks), each with K seeds of a split (dev or report: disjoint seed ranges), or a data set
folder with ``truth.csv`` (``--data DIR``). ``python -m auditor bench`` runs it (auditor/cli_bench.py); the library
entry is ``auditor.bench.run.run_benchmark(BenchConfig(...))``.

Modules, in the order a bench runs:

  settings   methods, data settings and their syntax, seed splits, BenchConfig, --quick
  run        run_benchmark: every (setting, seed, method) not yet done, resumable, then speed, targets, reports
  methods    one method on one data set: train (or re-score a run), write flags.csv, measure it against the truth
  training   one resumable training of a method (its TrainConfig and schedule, timings, derived data sets)
  baselines  the baselines' scores from a model's outputs: cleanlab, small-loss, InfoNCE loss, kNN disagreement
  speed      decode, training, UMAP and scoring speed
  results    the tables' columns and the mean / std over seeds
  targets    the issue's goals for ntl: met / not met / not run
  report     results.csv, speed.csv, targets.csv, results.md and the plots (HTML, PNG through kaleido)

settings, results, targets and report import no torch (the CLI's parser reads settings); run, methods, training,
baselines and speed train and score, and import it.
"""
