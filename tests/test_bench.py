"""The benchmark harness: settings syntax and seed splits, the schedules, the baselines' scores on hand-built
inputs, the metrics, targets evaluation, report rendering, and a tiny end-to-end bench."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from auditor.bench import run as bench_run
from auditor.bench import settings as bench_settings
from auditor.bench.baselines import (
    infonce_loss_scores,
    knn_scores,
    minmax,
    small_loss_scores,
    stratified_folds,
)
from auditor.bench.early_stopping import (
    EpochRecorder,
    held_out_criterion,
    keep_records_consistent,
    load_record,
    record_path,
    select_epoch,
)
from auditor.bench.methods import measured_flags
from auditor.bench.report import METHOD_COLOURS, render_markdown
from auditor.bench.results import ID_COLUMNS, METRICS
from auditor.bench.settings import (
    GRID,
    LABEL_BASELINES,
    METHOD_SPECS,
    METHODS,
    QUICK_SETTING,
    TABLE,
    BenchConfig,
    Setting,
    check_generator,
    describe_grid,
    parse_methods,
    parse_settings,
)
from auditor.bench.speed import clustered_unit_vectors
from auditor.bench.targets import TARGETS, Target, evaluate_targets
from auditor.bench.training import train_config, updates_per_epoch
from auditor.cli_bench import add_bench_arguments, config_from_args, run_bench
from auditor.errors import UserError
from auditor.metrics import class_recall, flag_metrics

# ---------------------------------------------------------------------------------------------------------------
# settings syntax and seed splits


def test_parse_settings_compact_items():
    assert parse_settings("sym0.4+mm0.2") == [Setting("symmetric", 0.4, 0.2)]
    assert parse_settings("asym0.2") == [Setting("asymmetric", 0.2, 0.0)]
    assert parse_settings("mm0.2") == [Setting("symmetric", 0.0, 0.2)]
    assert parse_settings(" symmetric0.6+mm0 , ASYM.4mm0.2") == [Setting("symmetric", 0.6, 0.0),
                                                                   Setting("asymmetric", 0.4, 0.2)]
    assert parse_settings("quick") == [QUICK_SETTING] == [Setting("symmetric", 0.4, 0.2)]


def test_parse_settings_data_shape_parts():
    assert parse_settings("sym0.2+mm0.1+lt8+mute0.04") == [Setting("symmetric", 0.2, 0.1, imbalance=8.0,
                                                                    muted=0.04)]
    assert parse_settings("lt8") == [Setting(imbalance=8.0)]
    assert parse_settings("mute0.04") == [Setting(muted=0.04)]
    assert parse_settings("clean") == [Setting()] and Setting().name == "clean"
    assert parse_settings("sym0.4+dur10-30+cls32") == [Setting("symmetric", 0.4, seconds=(10.0, 30.0), classes=32)]
    long_1s = parse_settings("sym0.1+mm0.1+dur10-30+evt1-1")[0]
    assert long_1s == Setting("symmetric", 0.1, 0.1, seconds=(10.0, 30.0), event=(1.0, 1.0))
    assert long_1s.generator_args()["event_seconds"] == (1.0, 1.0)
    assert "event_seconds" not in parse_settings("sym0.1+dur10-30")[0].generator_args()
    with pytest.raises(UserError, match="evt needs dur"):
        parse_settings("sym0.1+evt1-1")


def test_parse_settings_suites_and_duplicates():
    grid = parse_settings("grid")
    assert grid == list(GRID) and len(grid) == 10
    assert {(s.noise_type, s.label_noise) for s in grid} == {("symmetric", 0.2), ("symmetric", 0.4),
                                                             ("symmetric", 0.6), ("asymmetric", 0.2),
                                                             ("asymmetric", 0.4)}
    assert {s.mismatch for s in grid} == {0.0, 0.2}
    assert parse_settings("sym0.4+mm0.2,grid,sym0.4+mm0.2") == [QUICK_SETTING] + [s for s in GRID if s != QUICK_SETTING]
    table = parse_settings("table")
    assert table == list(TABLE)
    # the settings: clean, low noise, long-tailed ~8:1 with 4% muted, asym 40%, sym 40% / 60% + 20% mismatch
    assert Setting() in table and Setting("symmetric", 0.1, 0.05) in table
    assert Setting("asymmetric", 0.4) in table and Setting("symmetric", 0.6, 0.2) in table
    assert any(s.imbalance == 8 and s.muted == 0.04 for s in table)
    assert Setting("symmetric", 0.4, 0.2) in table


@pytest.mark.parametrize("setting", GRID + TABLE + (
    Setting("asymmetric", 0.2, 0.1, 4.0, 0.1, seconds=(10.0, 30.0), classes=32),
    Setting("symmetric", 0.1, 0.1, seconds=(10.0, 30.0), event=(1.0, 1.5), media="mixed")))
def test_setting_names_parse_back(setting):
    assert parse_settings(setting.name) == [setting]


@pytest.mark.parametrize("bad", ["", "foo", "sym", "sym1.2", "sym0.4+mm1.5", "sym0.4+xx0.1", "+mm0.2", "0.4",
                                 "lt0.5", "mute1", "dur30-10", "cls1", "mute0.1+lt8", "sym0.4+lt"])
def test_parse_settings_rejects_bad_items(bad):
    with pytest.raises(UserError, match="--settings"):
        parse_settings(bad)


def test_generator_args_only_name_what_differs_from_the_default():
    assert Setting("symmetric", 0.4, 0.2).generator_args() == {"label_noise": 0.4, "noise_type": "symmetric",
                                                              "mismatch": 0.2}
    assert Setting(imbalance=8.0, muted=0.04).generator_args() == {
        "label_noise": 0.0, "noise_type": "symmetric", "mismatch": 0.0, "imbalance": 8.0, "muted": 0.04}


def test_settings_the_generator_cannot_make_are_refused_naming_the_option(tmp_path, monkeypatch):
    check_generator(TABLE)  # long-tailed and muted: the generator has them
    check_generator(parse_settings("sym0.4+dur10-30"))  # long clips: clip_seconds
    BenchConfig(out=tmp_path, settings=parse_settings("sym0.3+cls32")).validate()  # the generator has num_classes
    what = bench_settings.GENERATOR_OPTIONS["seconds"][1]  # a generator without the option: refused, named
    monkeypatch.setitem(bench_settings.GENERATOR_OPTIONS, "seconds", ("clip_length", what))
    with pytest.raises(UserError, match="dur10-30 needs long clips .* no clip_length= option"):
        check_generator(parse_settings("sym0.4+dur10-30"))


def test_mixed_media_setting_part():
    setting = parse_settings("sym0.1+mm0.05+mixed")[0]
    assert setting == Setting("symmetric", 0.1, 0.05, media="mixed") and setting.name == "sym0.1+mm0.05+mixed"
    assert parse_settings(setting.name) == [setting] and parse_settings("MIXED") == [Setting(media="mixed")]
    assert parse_settings("sym0.2+lt8+mute0.04+dur10-30+cls16+mixed")[0].media == "mixed"
    assert setting.generator_args() == {"label_noise": 0.1, "noise_type": "symmetric", "mismatch": 0.05,
                                        "media": "mixed"}
    assert "media" not in Setting("symmetric", 0.1, 0.05).generator_args()  # uniform data is still reused
    check_generator([setting])  # generate_dataset has media=
    for bad in ("sym0.1+mixed+mm0.05", "mixedsym0.1", "sym0.1+mix", "sym0.1+mixed+"):
        with pytest.raises(UserError, match="--settings"):
            parse_settings(bad)


def test_bench_generates_long_clips_once_and_reuses_them(tmp_path, monkeypatch):
    import auditor.bench.run as bench_run

    calls = []

    def fake_generate(out_dir, **kwargs):
        calls.append(kwargs)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "truth.csv").write_text("clip,true_label\n")
        return {"seconds": 0.0}

    monkeypatch.setattr(bench_run, "generate_dataset", fake_generate)
    cfg = BenchConfig(out=tmp_path, clips=10, test_clips=0)
    setting = parse_settings("sym0.2+dur10-30")[0]
    for _ in range(2):
        bench_run.setting_data(cfg, setting, 0, lambda line: None)
    assert len(calls) == 1 and calls[0]["clip_seconds"] == (10.0, 30.0)


def test_parse_methods_orders_and_rejects_unknown():
    assert parse_methods("cosine, ntl,ce") == ("ntl", "ce", "cosine")
    assert parse_methods("knn,infonce_loss,small_loss") == ("small_loss", "knn", "infonce_loss")
    with pytest.raises(UserError, match="bogus"):
        parse_methods("ntl,bogus")
    assert set(LABEL_BASELINES) <= set(METHODS)
    assert {"ntl_no_cat", "ntl_no_w", "ntl_no_phase2", "ntl_classifier_evidence"} <= set(METHODS)


def test_describe_grid_names_every_setting():
    assert describe_grid() == "sym 0.2/0.4/0.6, asym 0.2/0.4, each with mm 0 and 0.2"


def test_splits_use_disjoint_seeds(tmp_path):
    dev = BenchConfig(out=tmp_path, seeds=3)
    report = BenchConfig(out=tmp_path, seeds=3, split="report")
    assert dev.seed_list() == [0, 1, 2] and report.seed_list() == [1000, 1001, 1002]
    big_dev, big_report = BenchConfig(out=tmp_path, seeds=1000), BenchConfig(out=tmp_path, seeds=1000, split="report")
    assert not set(big_dev.seed_list()) & set(big_report.seed_list())
    for bad, match in (({"seeds": 1001}, "--seeds"), ({"split": "test"}, "dev, report")):
        with pytest.raises(UserError, match=match):
            BenchConfig(out=tmp_path, **bad).validate()


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
    assert cfg.clips < 100 and cfg.epochs_phase1 + cfg.epochs_phase2 <= 3 and cfg.seeds == 1
    cfg = config_from_args(p.parse_args(["--out", str(tmp_path), "--quick", "--clips", "50", "--methods", "ce,ntl",
                                         "--settings", "asym0.2,mm0.2", "--seeds", "2", "--umap-points", "10,20",
                                         "--no-speed", "--split", "report", "--knn-k", "5"]))
    assert cfg.clips == 50 and cfg.methods == ("ntl", "ce") and cfg.seeds == 2 and not cfg.speed
    assert cfg.settings == [Setting("asymmetric", 0.2, 0.0), Setting("symmetric", 0.0, 0.2)]
    assert cfg.umap_points == (10, 20) and cfg.split == "report" and cfg.knn_k == 5
    full = config_from_args(p.parse_args(["--out", str(tmp_path)]))
    assert full.settings == list(TABLE) and full.umap_points == (10_000, 50_000)
    assert full.seeds == 3 and full.split == "dev" and full.folds == 5 and full.clips == 600


# ---------------------------------------------------------------------------------------------------------------
# schedules


@pytest.mark.parametrize("clips", [240, 600, 1000])
def test_cleanlab_folds_get_at_least_ntls_updates(tmp_path, clips):
    cfg = BenchConfig(out=tmp_path)
    ntl = train_config("ntl", cfg, 0, clips)
    ntl_updates = ntl.epochs_total * updates_per_epoch(ntl, clips)
    for train_idx, _ in stratified_folds(np.arange(clips) % 8, cfg.folds, 0):
        fold = train_config("cleanlab", cfg, 0, clips, train_clips=len(train_idx))
        assert fold.method == "ce" and fold.epochs_phase2 == 0 and fold.epochs_total >= ntl.epochs_total
        assert fold.epochs_total * updates_per_epoch(fold, len(train_idx)) >= ntl_updates
    # the example: 240 clips, batch 64 -> ntl makes 72 epochs x 3 = 216 updates; a 4/5 fold (192 clips)
    # makes 3 updates an epoch, so it needs 72 epochs as well (3 folds of 160 clips got 144 updates)
    if clips == 240:
        assert ntl_updates == 216 and train_config("cleanlab", cfg, 0, 240, train_clips=192).epochs_total == 72


def test_method_schedules(tmp_path):
    cfg = BenchConfig(out=tmp_path)
    ntl = train_config("ntl", cfg, 0, 600)
    for method, model in (("small_loss", "ce"), ("infonce_loss", "cosine")):  # as long as ntl, read earlier
        tc = train_config(method, cfg, 0, 600)
        assert tc.method == model and tc.epochs_total == ntl.epochs_total == tc.epochs_phase1
    assert train_config("ntl_classifier_evidence", cfg, 0, 600).label_evidence == "classifier"
    assert train_config("ntl_in_sample_evidence", cfg, 0, 600).evidence_folds == 0 < ntl.evidence_folds
    assert train_config("ntl_sce_hybrid", cfg, 0, 600).hybrid_alpha == 0.0 < train_config("ntl", cfg, 0, 600).hybrid_alpha
    assert train_config("ce", cfg, 0, 600).epochs_total == ntl.epochs_total
    assert train_config("ntl_no_phase2", cfg, 0, 600).epochs_phase1 == ntl.epochs_total


# ---------------------------------------------------------------------------------------------------------------
# early stopping of the warm-up baselines


def test_select_epoch_takes_the_best_and_the_earliest_of_ties():
    assert select_epoch({1: 0.2, 2: 0.5, 3: 0.5, 4: 0.4}) == 2
    assert select_epoch({3: -1.0}) == 3
    with pytest.raises(ValueError):
        select_epoch({})


def test_held_out_criterion_reads_the_given_labels_and_sounds():
    labels = ["a", "b", "a", "b", "c"]
    record = {"indices": torch.tensor([0, 1, 3]), "logits_av": torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 0.0]])}
    # the selection run knows classes a, b; clip 3 (given b) is predicted a: 2 of 3 right
    assert held_out_criterion("small_loss", record, labels, ["a", "b"], np.ones(5, bool), 0.1, 0) == pytest.approx(2 / 3)
    z = torch.eye(4)
    aligned = {"indices": torch.tensor([0, 1, 2, 4]), "z_v": z, "z_a": z.clone()}
    swapped = {**aligned, "z_a": z[[1, 0, 2, 3]]}
    has_audio = np.array([True, True, True, True, True])
    args = (labels, ["a", "b", "c"], has_audio, 0.1, 0)
    assert held_out_criterion("infonce_loss", aligned, *args) > held_out_criterion("infonce_loss", swapped, *args)
    silent = np.array([True, False, False, True, False])  # one held-out clip with sound: nothing to compare
    assert held_out_criterion("infonce_loss", aligned, labels, ["a", "b", "c"], silent, 0.1, 0) == 0.0
    with pytest.raises(ValueError):
        held_out_criterion("ce", record, *args)


@pytest.mark.slow
def test_the_recorder_sees_every_epoch_once_more_after_a_kill(small_dataset, tmp_path):
    from auditor.data.cache import prepare_data
    from auditor.model.config import TrainConfig
    from auditor.model.presets import preprocess_params
    from auditor.train import train

    cfg = TrainConfig(method="ce", epochs_phase1=3, epochs_phase2=0, warmup_epochs=1, batch_size=16)
    arrays = prepare_data(small_dataset, preprocess_params(cfg.preset), show_bar=False)[1]
    run, seen = tmp_path / "run", []
    recorder = EpochRecorder(run, arrays, np.arange(0, 40, 4), cfg, ("logits_av",))

    def killed_in_epoch_2(epoch, model, device):
        recorder(epoch, model, device)
        seen.append(epoch)
        if epoch == 2 and seen.count(2) == 1:
            raise KeyboardInterrupt  # after the record, before the checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(small_dataset, run, cfg, quiet=True, epoch_end=killed_in_epoch_2)
    keep_records_consistent(run, fresh=False)  # epoch 1 trained and recorded: kept
    assert record_path(run, 1).is_file() and (run / "checkpoint.pt").is_file()
    train(small_dataset, run, cfg, resume=True, quiet=True, epoch_end=killed_in_epoch_2)
    assert seen == [1, 2, 2, 3]
    record = load_record(run, 3)
    assert record["indices"].tolist() == list(range(0, 40, 4)) and record["logits_av"].shape == (10, 8)
    record_path(run, 2).unlink()  # an epoch trained without its record: the run must start again
    keep_records_consistent(run, fresh=False)
    assert not (run / "checkpoint.pt").exists() and not record_path(run, 1).exists()


# ---------------------------------------------------------------------------------------------------------------
# the baselines' scores on hand-built inputs


def test_minmax():
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]
    assert minmax(np.array([5.0, 5.0])).tolist() == [0.0, 0.0] and minmax(np.array([])).size == 0


def test_small_loss_ranks_by_cross_entropy():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 4.0]])
    labels = torch.tensor([0, 0, 0, 2])  # clip 1 is labelled against its prediction: the largest loss
    score = small_loss_scores(logits, labels)
    assert score[1] == 1.0 and score.min() == 0.0 and score[0] == pytest.approx(score[3], abs=1e-6)
    assert 0 < score[2] < 1  # the uncertain clip in between
    ce = -torch.log_softmax(logits, 1)[torch.arange(4), labels].numpy()
    assert np.allclose(score, (ce - ce.min()) / (ce.max() - ce.min()))


def test_infonce_loss_puts_the_swapped_pair_first_and_silence_at_zero():
    z = torch.eye(6)[:, :6]
    z_v, z_a = z.clone(), z.clone()
    z_a[[0, 1]] = z_a[[1, 0]]  # clips 0 and 1 have each other's sound
    labels = torch.arange(6)
    has_audio = np.array([True, True, True, True, True, False])
    score = infonce_loss_scores(z_v, z_a, labels, has_audio, tau=0.1, seed=0)
    assert score[0] == score[1] == 1.0 and np.allclose(score[2:5], 0.0, atol=1e-6) and score[5] == 0.0


def test_knn_disagreement_on_two_clusters():
    # two tight clusters of 4 clips (labels 0 and 1); clip 3 sits in cluster 0 but is labelled 1
    emb = np.array([[1, 0.01 * i] for i in range(4)] + [[0.01 * i, 1] for i in range(4)], dtype=float)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    share, vote, vote_share = knn_scores(emb, labels, k=3)
    assert share[3] == 1.0 and vote[3] == 0 and vote_share[3] == 1.0  # its 3 neighbours are all labelled 0
    assert np.allclose(share[:3], 1 / 3) and np.all(vote[:3] == 0)  # clip 3 is among their 3 neighbours
    assert np.all(share[4:] == 0.0) and np.all(vote[4:] == 1)
    # a tie between the given label and another goes to the given label
    _, vote, _ = knn_scores(np.array([[1.0, 0.0], [1.0, 0.1], [1.0, 0.2]]), np.array([0, 0, 1]), k=2)
    assert vote[1] == 0 and vote[2] == 0
    assert knn_scores(np.ones((1, 2)), np.array([4]), k=10)[0].tolist() == [0.0]


# ---------------------------------------------------------------------------------------------------------------
# metrics


def test_flag_metrics_rates_per_score():
    truth = pd.DataFrame({"clip": list("abcdef"), "true_label": ["x", "x", "x", "y", "y", "y"],
                          "label_is_noisy": [1, 0, 0, 0, 0, 0], "is_mismatched": [0, 1, 0, 0, 0, 0],
                          "is_muted": [0, 0, 1, 0, 0, 0]})
    flags = pd.DataFrame({"clip": list("abcdef"), "suggested_label": ["y", "x", "x", "y", "y", "y"],
                          "label_noise_score": [0.9, 0.6, 0.1, 0.7, 0.2, 0.1],
                          "mismatch_score": [0.1, 0.8, 0.6, 0.0, 0.0, 0.0]})
    m = flag_metrics(flags, truth)
    assert m["label_precision"] == pytest.approx(1 / 3) and m["label_recall"] == 1.0
    assert m["label_false_alarm"] == pytest.approx(2 / 5) and m["label_flagged"] == pytest.approx(3 / 6)
    assert m["label_class_false_alarm_max"] == pytest.approx(1 / 2)  # x: 1 of 2 clean; y: 1 of 3
    assert m["mismatch_precision"] == pytest.approx(1 / 2) and m["mismatch_false_alarm"] == pytest.approx(1 / 5)
    assert m["muted_flagged_mismatch"] == 1.0 and m["suggestion_acc_noisy"] == 0.0
    # clean data: ranking metrics undefined, the alarm rates are not
    clean = truth.assign(label_is_noisy=0, is_mismatched=0).drop(columns="is_muted")
    m = flag_metrics(flags, clean)
    assert math.isnan(m["label_ap"]) and math.isnan(m["label_recall"]) and math.isnan(m["muted_flagged_mismatch"])
    assert m["label_false_alarm"] == m["label_flagged"] == pytest.approx(3 / 6)
    # a method without a label score: its label metrics and suggestion accuracy are NaN, the clips still count
    m = flag_metrics(flags.assign(label_noise_score=np.nan, suggested_label=""), truth)
    assert m["clips"] == 6 and math.isnan(m["label_ap"]) and math.isnan(m["label_flagged"])
    assert math.isnan(m["suggestion_acc_noisy"]) and m["mismatch_ap"] == 1.0


def test_methods_are_measured_only_on_their_own_scores():
    flags = pd.DataFrame({"clip": ["a", "b"], "suggested_label": ["x", "y"], "label_noise_score": [0.2, 0.9],
                          "mismatch_score": [np.nan, 0.0]})  # ce: no mismatch score, 0 on a silent clip
    ce = measured_flags(flags, METHOD_SPECS["ce"].scores)
    assert ce["mismatch_score"].isna().all() and ce["label_noise_score"].tolist() == [0.2, 0.9]
    clean = measured_flags(flags, METHOD_SPECS["ce_clean"].scores)
    assert clean[["label_noise_score", "mismatch_score", "suggested_label"]].isna().all().all()
    assert measured_flags(flags, METHOD_SPECS["infonce_loss"].scores)["suggested_label"].isna().all()
    assert measured_flags(flags, METHOD_SPECS["ntl"].scores).equals(flags)


def test_class_recall():
    truth = pd.DataFrame({"clip": list("abcd"), "true_label": ["x", "x", "y", "y"]})
    pred = pd.DataFrame({"clip": list("abcd"), "predicted_label": ["x", "y", "y", "y"]})
    assert class_recall(pred, truth, "predicted_label").to_dict() == {"x": 0.5, "y": 1.0}


# ---------------------------------------------------------------------------------------------------------------
# targets and report


def _results(rows: list[tuple]) -> pd.DataFrame:
    """rows of (setting, method, seed, {metric: value}) -> a results frame with every column."""
    out = []
    for setting, method, seed, values in rows:
        s = parse_settings(setting)[0]
        out.append({"setting": s.name, "noise_type": s.noise_type, "label_noise": s.label_noise,
                    "mismatch": s.mismatch, "imbalance": s.imbalance, "muted": s.muted, "seed": seed,
                    "clips": 100, "method": method} | {k: values.get(k, np.nan) for k in METRICS})
    return pd.DataFrame(out, columns=ID_COLUMNS + list(METRICS))


def _status(targets: pd.DataFrame) -> dict[str, str]:
    return dict(zip(targets["target"], targets["status"], strict=True))


def test_targets_met_not_met_and_not_run():
    df = _results([
        ("sym0.4+mm0.2", "ntl", 0, {"label_ap": 0.80, "mismatch_ap": 0.70, "test_acc": 0.82, "train_seconds": 14,
                                    "suggestion_acc_noisy": 0.6}),
        ("sym0.4+mm0.2", "cleanlab", 0, {"label_ap": 0.70}),
        ("sym0.4+mm0.2", "small_loss", 0, {"label_ap": 0.74}),
        ("sym0.4+mm0.2", "knn", 0, {"label_ap": 0.60}),
        ("sym0.4+mm0.2", "infonce_loss", 0, {"mismatch_ap": 0.66}),
        ("sym0.4+mm0.2", "ce_clean", 0, {"test_acc": 0.84}),
        ("sym0.4+mm0.2", "ce", 0, {"label_ap": 0.5, "train_seconds": 10, "suggestion_acc_noisy": 0.7}),
        ("clean", "ntl", 0, {"label_flagged": 0.0, "mismatch_flagged": 0.02}),
        ("clean", "ce", 0, {}),
    ])
    t = evaluate_targets(df)
    status = _status(t)
    best = "ntl label AP ≥ best label baseline + 0.05 at 40% symmetric noise"
    assert status[best] == "met"  # 0.80 >= max(0.5, 0.70, 0.74, 0.60) + 0.05
    row = t[t["target"] == best].iloc[0]
    assert row["reference"] == pytest.approx(0.74) and "against small_loss" in row["detail"]
    assert "cleanlab 0.700" in row["detail"]
    assert status["ntl mismatch AP ≥ infonce_loss + 0.05 at 20% mismatch"] == "not met"  # 0.70 < 0.66 + 0.05
    assert status["ntl label AP ≥ ce (sym0.4+mm0.2)"] == "met"
    assert status["ntl label AP ≥ ce (clean)"] == "not run"  # no label AP without noise
    assert status["ntl suggestion acc (noisy) ≥ ce (sym0.4+mm0.2)"] == "not met"  # 0.6 < 0.7: a regression
    assert status["ntl label score flags ≤ 1% of clips on clean data"] == "met"
    assert status["ntl mismatch score flags ≤ 1% of clips on clean data"] == "not met"
    assert status["ntl flags ≤ 2% of muted clips as mismatched"] == "not run"
    assert status["ntl clean-test accuracy within 3 points of ce_clean at 40% symmetric noise"] == "met"
    seconds = t[t["target"].str.startswith("ntl train seconds")].iloc[0]
    assert seconds["status"] == "met" and "ratio 1.40" in seconds["detail"]


def test_targets_need_every_reference_and_average_over_seeds():
    df = _results([
        ("sym0.4", "ntl", 0, {"label_ap": 0.70, "train_seconds": 20}),
        ("sym0.4", "ntl", 1, {"label_ap": 0.60, "train_seconds": 20}),
        ("sym0.4", "ce", 0, {"label_ap": 0.55, "train_seconds": 10}),
        ("sym0.4", "ce", 1, {"label_ap": 0.55, "train_seconds": 10}),
        ("sym0.2", "ntl", 0, {"label_ap": 0.0}),  # not 40%: ignored by the headline target
        ("sym0.2", "ce", 0, {"label_ap": 1.0}),
    ])
    t = evaluate_targets(df)
    status = _status(t)
    best = t[t["target"].str.startswith("ntl label AP ≥ best")].iloc[0]
    assert best["status"] == "not run" and "cleanlab" in best["detail"]  # cleanlab, small_loss, knn not run
    only_ce = evaluate_targets(df, (Target("x", "label_ap", "diff", 0.05, ("ce",), "sym40"),)).iloc[0]
    assert only_ce["ntl"] == pytest.approx(0.65) and only_ce["reference"] == pytest.approx(0.55)
    assert only_ce["status"] == "met" and "2 setting×seed" in only_ce["detail"]
    assert status["ntl label AP ≥ ce (sym0.4+mm0)"] == "met" and status["ntl label AP ≥ ce (sym0.2+mm0)"] == "not met"
    assert t[t["target"].str.startswith("ntl train seconds")]["status"].iloc[0] == "not met"  # 20 > 1.5 * 10
    muted = _results([("sym0.2+mm0.1+lt8+mute0.04", "ntl", s, {"muted_flagged_mismatch": v})
                      for s, v in ((0, 0.0), (1, 0.03))])
    assert _status(evaluate_targets(muted))["ntl flags ≤ 2% of muted clips as mismatched"] == "met"  # mean 0.015
    empty = evaluate_targets(_results([]))
    assert set(empty["status"]) == {"not run"} and len(empty) == len(TARGETS)


def test_markdown_shows_mean_std_over_seeds_split_and_groups():
    df = _results([("sym0.4+mm0.2", "ntl", 0, {"label_ap": 0.6}), ("sym0.4+mm0.2", "ntl", 1, {"label_ap": 0.8}),
                   ("sym0.4+mm0.2", "ce", 0, {"label_ap": 0.5}), ("sym0.4+mm0.2", "ce", 1, {"label_ap": 0.5}),
                   ("sym0.4+mm0.2", "infonce_loss", 0, {"mismatch_ap": 0.4}),
                   ("sym0.4+mm0.2", "infonce_loss", 1, {"mismatch_ap": 0.4})])
    speed = pd.DataFrame([{"measure": "ingest / ffmpeg throughput ratio", "value": 0.5, "detail": "x"}])
    md = render_markdown(df, speed, evaluate_targets(df), seeds=2, split="Split `report`: seeds 1000–1001.")
    assert "Split `report`: seeds 1000–1001." in md
    assert "0.700 ± 0.141" in md and "0.500 ± 0.000" in md
    assert "## Targets" in md and "not run" in md and "## Speed" in md and "| ingest / ffmpeg throughput ratio | 0.500 |" in md
    assert "### sym0.4+mm0.2" in md and "Label:" in md and "Mismatch:" in md
    label_table = md.split("Label:")[1].split("Mismatch:")[0]
    assert "| ntl |" in label_table and "| infonce_loss |" not in label_table  # no label metric: no row
    ntl_row = next(line for line in label_table.splitlines() if line.startswith("| ntl |"))
    assert "–" in ntl_row  # label F1 missing -> not applicable


def test_clustered_unit_vectors_and_folds():
    x = clustered_unit_vectors(500, seed=3)
    assert x.shape == (500, 128) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    labels = np.repeat(np.arange(8), 5)
    folds = stratified_folds(labels, 5, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(40))
    for train, h in folds:
        assert set(train).isdisjoint(h) and len(set(labels[train])) == 8  # stratified: every class trains


def test_every_method_has_a_colour_of_its_own_in_the_plots():
    assert set(METHOD_COLOURS) == set(METHODS) and len(set(METHOD_COLOURS.values())) == len(METHODS)


# ---------------------------------------------------------------------------------------------------------------
# end to end


@pytest.mark.slow
def test_tiny_bench_writes_every_file_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bench"
    p = argparse.ArgumentParser()
    add_bench_arguments(p)
    methods = ["ntl", "ce", "cleanlab", "small_loss", "knn", "cosine", "infonce_loss"]
    argv = ["--out", str(out), "--quick", "--clips", "24", "--test-clips", "8", "--epochs-phase1", "1",
            "--epochs-phase2", "1", "--batch-size", "8", "--methods", ",".join(methods), "--folds", "2",
            "--workers", "2", "--split", "report"]
    assert run_bench(p.parse_args(argv)) == 0
    for name in ("results.csv", "results.md", "speed.csv", "targets.csv", "label_ap.html", "mismatch_ap.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["method"]) == sorted(methods)
    assert set(ID_COLUMNS) <= set(results.columns) and set(results["seed"]) == {1000}
    assert len(results) == len(methods) and set(results["setting"]) == {"sym0.4+mm0.2"}
    by = results.set_index("method")
    assert by.loc[["small_loss", "knn", "cleanlab"], "mismatch_ap"].isna().all()  # label baselines
    assert math.isnan(by.loc["infonce_loss", "label_ap"]) and not math.isnan(by.loc["infonce_loss", "mismatch_ap"])
    assert by.loc[["ntl", "ce", "small_loss", "knn", "cleanlab"], "label_ap"].notna().all()
    md = (out / "results.md").read_text()
    for heading in ("## Targets", "## Quality per setting", "## Speed", "Split `report`: seeds 1000–1000"):
        assert heading in md
    speed = pd.read_csv(out / "speed.csv")
    assert speed["measure"].str.contains("ffmpeg").any() and speed["measure"].str.contains("scoring").any()
    runs = next((out / "runs").iterdir())
    for method in methods:
        flags = pd.read_csv(runs / method / "flags.csv")
        assert (runs / method / "metrics.json").is_file() and len(flags) == 24
        assert flags["label_noise_score"].dropna().between(0, 1).all()
    assert len(list((runs / "cleanlab" / "folds").iterdir())) == 2
    for method in ("small_loss", "infonce_loss"):  # early-stopped: both runs recorded every epoch
        chosen = json.loads((runs / method / "early_stopping.json").read_text())
        assert chosen["epoch"] in (1, 2) and set(chosen["criterion"]) == {"1", "2"}
        for run in (runs / method, runs / method / "select" / "run"):
            assert record_path(run, 1).is_file() and record_path(run, 2).is_file()

    # a second run recomputes nothing (every run folder is finished) and gives the same table
    capsys.readouterr()
    assert run_bench(p.parse_args(argv + ["--no-speed"])) == 0
    err = capsys.readouterr().err
    assert err.count("done before, reused") == len(methods) and "running" not in err
    again = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(again, results)
    assert not math.isnan(again.loc[again["method"] == "ntl", "train_seconds"].iloc[0])

    # changed measuring code measures every run again, on the trainings it has (none trains again)
    trained = {path: path.stat().st_mtime_ns for path in runs.rglob("checkpoint.pt")}
    monkeypatch.setattr(bench_run, "measuring_code", lambda: "changed")
    assert run_bench(p.parse_args(argv + ["--no-speed"])) == 0
    err = capsys.readouterr().err
    assert err.count(": running") == len(methods) and "done before" not in err
    assert {path: path.stat().st_mtime_ns for path in runs.rglob("checkpoint.pt")} == trained
    assert json.loads((runs / "ntl" / "metrics.json").read_text())["key"]["measuring_code"] == "changed"
    remeasured = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(remeasured, results)
