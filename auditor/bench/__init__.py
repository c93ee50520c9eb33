"""Benchmark: every method on the same encoders, preset and data with injected, known noise, side by side.

Data: the sample generator at a grid of noise settings (noise type, label-noise rate r, mismatch rate m), or a
data set folder with ``truth.csv`` (``--data DIR``). ``python -m auditor bench`` runs it (auditor/cli_bench.py);
the library entry is ``auditor.bench.run.run_benchmark(BenchConfig(...))``.

Modules, in the order a bench runs:

  settings   methods, noise settings and their syntax, BenchConfig, --quick
  run        run_benchmark: every (setting, seed, method) not yet done, resumable, then speed, targets, reports
  methods    one method on one data set: train, then measure its flags against the truth
  training   one resumable training of a method (its TrainConfig, timings, derived data sets)
  baselines  cleanlab on K-fold out-of-sample probabilities of ce
  speed      decode, training, UMAP and scoring speed
  results    the tables' columns and the mean / std over seeds
  targets    ntl against the reference methods: met / not met / not run
  report     results.csv, speed.csv, targets.csv, results.md and the plots

settings, results, targets and report import no torch (the CLI's parser reads settings); run, methods, training,
baselines and speed train and score, and import it.
"""
