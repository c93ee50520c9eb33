"""The benchmark harness: settings syntax, targets evaluation, report rendering, and a tiny end-to-end bench."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from auditor.bench.baselines import stratified_folds
from auditor.bench.report import render_markdown
from auditor.bench.results import ID_COLUMNS, METRICS
from auditor.bench.settings import (
    GRID,
    METHODS,
    QUICK_SETTING,
    BenchConfig,
    Setting,
    describe_grid,
    parse_methods,
    parse_settings,
)
from auditor.bench.speed import clustered_unit_vectors
from auditor.bench.targets import evaluate_targets
from auditor.cli_bench import add_bench_arguments, config_from_args, run_bench
from auditor.errors import UserError

# ---------------------------------------------------------------------------------------------------------------
# settings syntax


def test_parse_settings_compact_items():
    assert parse_settings("sym0.4+mm0.2") == [Setting("symmetric", 0.4, 0.2)]
    assert parse_settings("asym0.2") == [Setting("asymmetric", 0.2, 0.0)]
    assert parse_settings("mm0.2") == [Setting("symmetric", 0.0, 0.2)]
    assert parse_settings(" symmetric0.6+mm0 , ASYM.4mm0.2") == [Setting("symmetric", 0.6, 0.0),
                                                                   Setting("asymmetric", 0.4, 0.2)]
    assert parse_settings("quick") == [QUICK_SETTING] == [Setting("symmetric", 0.4, 0.2)]


def test_parse_settings_grid_and_duplicates():
    grid = parse_settings("grid")
    assert grid == list(GRID) and len(grid) == 10
    assert {(s.noise_type, s.label_noise) for s in grid} == {("symmetric", 0.2), ("symmetric", 0.4),
                                                             ("symmetric", 0.6), ("asymmetric", 0.2),
                                                             ("asymmetric", 0.4)}
    assert {s.mismatch for s in grid} == {0.0, 0.2}
    assert parse_settings("sym0.4+mm0.2,grid,sym0.4+mm0.2") == [QUICK_SETTING] + [s for s in GRID if s != QUICK_SETTING]


@pytest.mark.parametrize("setting", GRID)
def test_setting_names_parse_back(setting):
    assert parse_settings(setting.name) == [setting]


@pytest.mark.parametrize("bad", ["", "foo", "sym", "sym1.2", "sym0.4+mm1.5", "sym0.4+xx0.1", "+mm0.2", "0.4"])
def test_parse_settings_rejects_bad_items(bad):
    with pytest.raises(UserError, match="--settings"):
        parse_settings(bad)


def test_parse_methods_orders_and_rejects_unknown():
    assert parse_methods("cosine, ntl,ce") == ("ntl", "ce", "cosine")
    with pytest.raises(UserError, match="bogus"):
        parse_methods("ntl,bogus")


def test_describe_grid_names_every_setting():
    assert describe_grid() == "sym 0.2/0.4/0.6, asym 0.2/0.4, each with mm 0 and 0.2"


@pytest.mark.parametrize("field, value, match", [("preset", "gpu", "resnet18"), ("device", "tpu", "cuda"),
                                                 ("methods", ("ntl", "xgb"), "xgb")])
def test_config_validate_names_the_valid_options(tmp_path, field, value, match):
    with pytest.raises(UserError, match=match):
        BenchConfig(out=tmp_path, **{field: value}).validate()


def test_cli_parser_imports_no_torch():
    code = ("import argparse, sys; from auditor.cli_bench import add_bench_arguments; "
            "add_bench_arguments(argparse.ArgumentParser()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_quick_defaults_and_overrides(tmp_path):
    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    cfg = config_from_args(p.parse_args(["--out", str(tmp_path), "--quick"]))
    assert cfg.settings == [QUICK_SETTING] and cfg.methods == METHODS and cfg.umap_points == ()
    assert cfg.clips < 100 and cfg.epochs_phase1 + cfg.epochs_phase2 <= 3
    cfg = config_from_args(p.parse_args(["--out", str(tmp_path), "--quick", "--clips", "50", "--methods", "ce,ntl",
                                         "--settings", "asym0.2,mm0.2", "--seeds", "2", "--umap-points", "10,20",
                                         "--no-speed"]))
    assert cfg.clips == 50 and cfg.methods == ("ntl", "ce") and cfg.seeds == 2 and not cfg.speed
    assert cfg.settings == [Setting("asymmetric", 0.2, 0.0), Setting("symmetric", 0.0, 0.2)]
    assert cfg.umap_points == (10, 20)
    full = config_from_args(p.parse_args(["--out", str(tmp_path)]))
    assert full.settings == list(GRID) and full.umap_points == (10_000, 50_000)


# ---------------------------------------------------------------------------------------------------------------
# targets and report


def _results(rows: list[tuple]) -> pd.DataFrame:
    """rows of (setting, method, seed, {metric: value}) -> a results frame with every column."""
    out = []
    for setting, method, seed, values in rows:
        s = parse_settings(setting)[0]
        out.append({"setting": s.name, "noise_type": s.noise_type, "label_noise": s.label_noise,
                    "mismatch": s.mismatch, "seed": seed, "clips": 100, "method": method}
                   | {k: values.get(k, np.nan) for k in METRICS})
    return pd.DataFrame(out, columns=ID_COLUMNS + list(METRICS))


def _status(targets: pd.DataFrame) -> list[str]:
    return targets["status"].tolist()


def test_targets_met_not_met_and_not_run():
    df = _results([
        ("sym0.4+mm0.2", "ntl", 0, {"label_ap": 0.80, "mismatch_ap": 0.70, "test_acc": 0.82, "train_seconds": 14}),
        ("sym0.4+mm0.2", "cleanlab", 0, {"label_ap": 0.70}),
        ("sym0.4+mm0.2", "cosine", 0, {"mismatch_ap": 0.65}),
        ("sym0.4+mm0.2", "ce_clean", 0, {"test_acc": 0.84}),
        ("sym0.4+mm0.2", "ce", 0, {"label_ap": 0.5, "train_seconds": 10}),
    ])
    t = evaluate_targets(df)
    # label AP 0.80 >= 0.70 + 0.05; mismatch 0.70 < 0.65 + 0.10; acc 0.82 >= 0.84 - 0.03; 14 <= 1.5 * 10
    assert _status(t) == ["met", "not met", "met", "met"]
    assert t.loc[0, "ntl"] == pytest.approx(0.80) and t.loc[0, "reference"] == pytest.approx(0.70)
    assert "sym0.4+mm0.2" in t.loc[1, "detail"]
    assert "ratio 1.40" in t.loc[3, "detail"]

    # other settings only: nothing at 40% symmetric, nothing with 20% mismatch -> not run; ce missing -> not run
    other = _results([("asym0.4+mm0", "ntl", 0, {"label_ap": 0.9, "train_seconds": 10}),
                      ("asym0.4+mm0", "cleanlab", 0, {"label_ap": 0.1})])
    assert _status(evaluate_targets(other)) == ["not run"] * 4
    # a NaN reference is not run either
    nan_ref = _results([("sym0.4+mm0", "ntl", 0, {"label_ap": 0.9}), ("sym0.4+mm0", "cleanlab", 0, {})])
    assert evaluate_targets(nan_ref)["status"].iloc[0] == "not run"


def test_targets_average_over_seeds_and_matching_settings():
    df = _results([
        ("sym0.4+mm0", "ntl", 0, {"label_ap": 0.70, "train_seconds": 20}),
        ("sym0.4+mm0", "ntl", 1, {"label_ap": 0.60, "train_seconds": 20}),
        ("sym0.4+mm0", "cleanlab", 0, {"label_ap": 0.55}),
        ("sym0.4+mm0", "cleanlab", 1, {"label_ap": 0.55}),
        ("sym0.4+mm0.2", "ntl", 0, {"label_ap": 0.50}),
        ("sym0.4+mm0.2", "cleanlab", 0, {"label_ap": 0.60}),
        ("sym0.2+mm0", "ntl", 0, {"label_ap": 0.0}),  # not 40%: ignored
        ("sym0.2+mm0", "cleanlab", 0, {"label_ap": 1.0}),
        ("sym0.4+mm0", "ce", 0, {"train_seconds": 10}),
        ("sym0.4+mm0", "ce", 1, {"train_seconds": 10}),
    ])
    t = evaluate_targets(df)
    assert t.loc[0, "ntl"] == pytest.approx(0.60) and t.loc[0, "reference"] == pytest.approx(0.5666667)
    assert t.loc[0, "status"] == "not met"  # 0.60 < 0.567 + 0.05
    assert "3 setting×seed" in t.loc[0, "detail"]
    assert t.loc[3, "status"] == "not met"  # 20 > 1.5 * 10


def test_markdown_shows_mean_std_over_seeds_and_not_applicable():
    df = _results([("sym0.4+mm0.2", "ntl", 0, {"label_ap": 0.6}), ("sym0.4+mm0.2", "ntl", 1, {"label_ap": 0.8}),
                   ("sym0.4+mm0.2", "ce", 0, {"label_ap": 0.5}), ("sym0.4+mm0.2", "ce", 1, {"label_ap": 0.5})])
    speed = pd.DataFrame([{"measure": "ingest / ffmpeg throughput ratio", "value": 0.5, "detail": "x"}])
    md = render_markdown(df, speed, evaluate_targets(df), seeds=2)
    assert "0.700 ± 0.141" in md and "0.500 ± 0.000" in md
    assert "## Targets" in md and "not run" in md and "## Speed" in md and "| ingest / ffmpeg throughput ratio | 0.500 |" in md
    assert "### sym0.4+mm0.2" in md
    ntl_row = next(line for line in md.splitlines() if line.startswith("| ntl |"))
    assert "–" in ntl_row  # mismatch AP missing -> not applicable


def test_clustered_unit_vectors_and_folds():
    x = clustered_unit_vectors(500, seed=3)
    assert x.shape == (500, 128) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    labels = np.repeat(np.arange(8), 3)
    folds = stratified_folds(labels, 3, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(24))
    for train, h in folds:
        assert set(train).isdisjoint(h) and len(set(labels[train])) == 8  # stratified: every class trains


# ---------------------------------------------------------------------------------------------------------------
# end to end


@pytest.mark.slow
def test_tiny_bench_writes_every_file_and_resumes(tmp_path, capsys):
    out = tmp_path / "bench"
    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    argv = ["--out", str(out), "--quick", "--clips", "24", "--test-clips", "8", "--epochs-phase1", "1",
            "--epochs-phase2", "1", "--batch-size", "8", "--methods", "ntl,ce,cleanlab,cosine", "--workers", "2"]
    assert run_bench(p.parse_args(argv)) == 0
    for name in ("results.csv", "results.md", "speed.csv", "targets.csv", "label_ap.html", "mismatch_ap.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["method"]) == ["ce", "cleanlab", "cosine", "ntl"]
    assert {"noise_type", "label_noise", "mismatch", "seed", "clips", "method"} <= set(results.columns)
    assert len(results) == 4 and set(results["setting"]) == {"sym0.4+mm0.2"}
    md = (out / "results.md").read_text()
    for heading in ("## Targets", "## Quality per setting", "## Speed"):
        assert heading in md
    speed = pd.read_csv(out / "speed.csv")
    assert speed["measure"].str.contains("ffmpeg").any() and speed["measure"].str.contains("scoring").any()
    for method in ("ntl", "ce", "cleanlab", "cosine"):
        run = next((out / "runs").iterdir()) / method
        assert (run / "flags.csv").is_file() and (run / "metrics.json").is_file()

    # a second run recomputes nothing (every run folder is finished) and gives the same table
    capsys.readouterr()
    assert run_bench(p.parse_args(argv + ["--no-speed"])) == 0
    err = capsys.readouterr().err
    assert err.count("done before, reused") == 4 and "running" not in err
    again = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(again, results)
    assert not math.isnan(again.loc[again["method"] == "ntl", "train_seconds"].iloc[0])
