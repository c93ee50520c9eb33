"""The two-phase noise-tolerant training loop (method.md): one loop, nothing hidden.

Per epoch e (0-based) of E1 + E2:
  phase = 1 if e < E1 else 2; targets t_i = y~_i (phase 1) or y~_i if r_i >= 0.5 else y^_i (phase 2)
  for each batch:  L = L_cls (phase 1: CE until r's gate opens, then SCE; phase 2: hybrid) + lambda_inst * mean(w_i l_i) + lambda_cat * L_cat
                   then the EMA class prototypes mu^v, mu^a move toward the batch's r-weighted class means
  at the epoch end (evaluation mode, all clips, model/estimate.py): l_i, CE_i -> w_i, r_i (after the warm-up);
  u_i, q_i, y^_i; for every method, until flip_frames "auto" has decided, the mirror test of the clips and their
  mirror images (model/mirror_test.py; the next epochs mirror frames at random only if it found that a mirror image
  keeps its class); checkpoint.pt and a progress.jsonl line (rank 0 only).
Methods for the benchmark share the loop: ``ce`` (plain cross-entropy on every head, no contrastive terms) and
``cosine`` (CE + unweighted cross-modal InfoNCE); ablations switch off L_cat, the w re-weighting or phase 2.
Training writes the model; scoring (flags.csv, embeddings) is :mod:`auditor.scoring`, run after it by
:mod:`auditor.pipeline`. The caller holds the run folder's lock (:class:`auditor.run_folder.RunLock`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from auditor import __version__
from auditor.data.cache import IngestResult
from auditor.errors import UserError
from auditor.model import distributed as dist
from auditor.model.checkpoint import init_from_run, load_checkpoint, save_checkpoint
from auditor.model.config import TrainConfig, resolve_schedule, training_batch
from auditor.model.estimate import INPUT_KEYS, EarlierSound, Evaluation, autocast, estimate_noise, evaluate
from auditor.model.loader import EpochPlan, loader_workers, training_batches
from auditor.model.losses import (
    category_contrastive,
    class_prior,
    cross_modal_infonce,
    hybrid_loss,
    sce,
    sce_constants,
)
from auditor.model.mirror_test import MirrorTest, mirror_test
from auditor.model.network import AudioVisualNet, Outputs, place_on
from auditor.model.presets import FEATURES_PRESET, get_preset
from auditor.model.sources import Arrays, prepare_inputs
from auditor.run_folder import (
    CHECKPOINT_FILE,
    CLASS_REPORT_FILE,
    CONFIG_FILE,
    EMBEDDINGS_FILE,
    FLAGS_FILE,
    PROGRESS_FILE,
    append_progress,
    read_config,
    write_config,
)

# Called after each epoch with (epoch 1-based, the model, its device): see train().
EpochEnd = Callable[[int, torch.nn.Module, torch.device], None]
# Files of an earlier run that a fresh (not resumed) run removes from its folder.
RUN_OUTPUTS = (CHECKPOINT_FILE, PROGRESS_FILE, FLAGS_FILE, EMBEDDINGS_FILE, CLASS_REPORT_FILE)
# Keys that define the architecture or the schedule: a resumed run must have the same (as nanoGPT does).
# TrainConfig fields a resumed run may change: where and how fast it runs, not what it learns. Every other field
# must equal the run's (config.json), so that config.json describes what the checkpoint trained.
RUNTIME_KEYS = ("device", "loader_workers")
PROGRESS_EVERY_STEPS = 5
# Epochs in a row whose mixture must find two populations before re-weighting by it starts (a measured end of the
# warm-up: one lucky split does not switch losses off).
GATE_STREAK = 2
# A gate opens only at an epoch end whose agreement with the given labels (estimate_noise's "agreement") is at most
# this much above the best of the epoch ends before: while the model is still learning, clips it has not learnt
# yet would read as a second population.
PLATEAU_GAIN = 0.01
# NoiseState.mirror before the mirror test has decided.
MIRROR_UNDECIDED = -1
# torch's CPU threads for the features preset's training steps (step_threads). Its small MLPs make many short
# parallel regions; with the sleeping threads of OMP_WAIT_POLICY=PASSIVE (auditor/__main__.py) waking a second
# thread for each costs more than it gains, and one thread is never slowed by a descheduled other (BENCHMARKS.md).
FEATURES_STEP_THREADS = 1


@dataclass
class NoiseState:
    """Per-clip estimates, and the gates and the mirroring decided so far, carried between epochs (all float32 /
    long tensors on the CPU)."""

    w: torch.Tensor  # (N,) correspondence probability
    r: torch.Tensor  # (N,) label-clean probability
    q: torch.Tensor  # (N, K) corrected label distribution (zeros until the first estimate)
    y_hat: torch.Tensor  # (N,) corrected labels
    mu_v: torch.Tensor  # (K, d) EMA visual prototypes
    mu_a: torch.Tensor  # (K, d) EMA audio prototypes
    # Warm-up gates of [w, r]: epochs in a row whose mixture found two populations, and whether re-weighting by
    # that estimate has started (it starts after warmup_epochs once the streak reaches GATE_STREAK and learning has
    # reached a plateau, then stays on); the best agreement with the given labels so far (-1 before the first).
    streak: torch.Tensor  # (2,) long
    gate_open: torch.Tensor  # (2,) bool
    best_agreement: torch.Tensor  # () float
    # The sound evidence of the epoch ends so far (estimate.EarlierSound): the sum (N,) float64 of all but the
    # latest, the latest (N,) and how many epoch ends there were ((), long; 0 before the first).
    sound_total: torch.Tensor
    sound_latest: torch.Tensor
    sound_ends: torch.Tensor
    # TrainConfig.flip_frames "auto": () long, MIRROR_UNDECIDED until the mirror test (model/mirror_test.py) has
    # decided, then 1 (the frames are mirrored at random from the next epoch on) or 0.
    mirror: torch.Tensor

    @classmethod
    def initial(cls, has_audio: torch.Tensor, k: int, d: int) -> NoiseState:
        """w_i = 1 for clips with sound and 0 without (silence is no evidence about correspondence), r_i = 1."""
        n = len(has_audio)
        return cls(w=has_audio.float(), r=torch.ones(n), q=torch.zeros(n, k), y_hat=torch.zeros(n, dtype=torch.long),
                   mu_v=torch.zeros(k, d), mu_a=torch.zeros(k, d), streak=torch.zeros(2, dtype=torch.long),
                   gate_open=torch.zeros(2, dtype=torch.bool), best_agreement=torch.tensor(-1.0),
                   sound_total=torch.zeros(n, dtype=torch.float64), sound_latest=torch.zeros(n),
                   sound_ends=torch.tensor(0), mirror=torch.tensor(MIRROR_UNDECIDED))

    def earlier_sound(self) -> EarlierSound:
        """The sound evidence of every epoch end so far, for the next one's estimate."""
        before = self.last_earlier_sound()
        return before.including(self.sound_latest) if before is not None else EarlierSound(self.sound_total, 0)

    def last_earlier_sound(self) -> EarlierSound | None:
        """What the latest epoch end's estimate was given as earlier sound evidence (None before the first): with
        that epoch end's own sound evidence, it gives the same mean again (scoring the training set)."""
        return EarlierSound.before_latest(self.sound_total, self.sound_ends)

    @classmethod
    def from_checkpoint(cls, saved: dict[str, torch.Tensor], has_audio: torch.Tensor) -> NoiseState:
        """The state of a checkpoint; fields a checkpoint of an older version lacks take their initial values."""
        fresh = cls.initial(has_audio, saved["q"].shape[1], saved["mu_v"].shape[1])
        return cls(**{f.name: saved.get(f.name, getattr(fresh, f.name)) for f in dataclasses.fields(cls)})

    def update_estimates(self, est: dict, epoch: int, cfg: TrainConfig, earlier: EarlierSound) -> None:
        """Take an epoch end's estimates, made with ``earlier`` (earlier_sound()): record its sound evidence;
        advance the gates (a closed one opens after cfg.warmup_epochs once its
        mixture found two populations at GATE_STREAK epoch ends in a row and the agreement with the given labels rose
        by at most PLATEAU_GAIN over the best before); at the epoch end a gate opens, w (resp. r) takes the new
        posterior as it is (the all-clean values before it are no estimate to average with); after that it moves
        toward each new posterior with momentum cfg.estimate_momentum; q, y^ are taken as they are."""
        plateau = est["agreement"] <= float(self.best_agreement) + PLATEAU_GAIN
        self.best_agreement = torch.tensor(max(float(self.best_agreement), est["agreement"]))
        for i, (key, fit) in enumerate((("w", est["w_fit"]), ("r", est["r_fit"]))):
            self.streak[i] = self.streak[i] + 1 if fit.two_populations else 0
            if self.gate_open[i]:
                m = cfg.estimate_momentum
                setattr(self, key, m * getattr(self, key) + (1 - m) * est[key])
            elif epoch + 1 >= cfg.warmup_epochs and self.streak[i] >= GATE_STREAK and plateau:
                self.gate_open[i] = True
                setattr(self, key, est[key].clone())
        self.q, self.y_hat = est["q"], est["y_hat"]
        self.sound_total, self.sound_latest = earlier.total, est["sound_evidence"]
        self.sound_ends = torch.tensor(earlier.ends + 1)

    def mirrors_frames(self, cfg: TrainConfig) -> bool:
        """Whether the next epoch mirrors frames at random: cfg.flip_frames "always", "never", or for "auto" what
        the mirror test decided (no mirroring before it has)."""
        return {"always": True, "never": False}.get(cfg.flip_frames, int(self.mirror) == 1)

    def mirror_test_due(self, cfg: TrainConfig) -> bool:
        """Whether this epoch end runs the mirror test: flip_frames "auto" on decoded clips, not yet decided."""
        return cfg.flip_frames == "auto" and cfg.preset != FEATURES_PRESET and int(self.mirror) == MIRROR_UNDECIDED

    def take_mirror_test(self, test: MirrorTest, epoch: int, cfg: TrainConfig) -> None:
        """Decide, mirror iff test.keeps_class, at the first epoch end (``epoch`` 0-based) whose test is
        decisive, or at the end of the warm-up's last epoch."""
        if test.decisive or epoch + 1 >= cfg.warmup_epochs:
            self.mirror = torch.tensor(int(test.keeps_class))

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass
class Batch:
    """This rank's rows of one training batch, on the training device: clip indices (B,) on the CPU, given
    labels y~ (B,), targets t (B,), correspondence weights w (B,), label-clean probabilities r (B,) and the weight
    of the target t in L_cat and the prototypes (B,): r_i for a kept label, (1 - r_i) max_k q_ik for a corrected one."""

    idx: torch.Tensor
    given: torch.Tensor
    target: torch.Tensor
    w: torch.Tensor
    r: torch.Tensor
    target_weight: torch.Tensor


@dataclass
class Objective:
    """Constants of the loss for a data set: the logit adjustment added to every head's logits in training
    (tau * log pi_k, pi = the given labels' class frequencies; Menon et al., ICLR 2021), SCE's alpha, beta for
    its number of classes (losses.sce_constants) and phase 2's alpha for the kept labels (max(cfg.hybrid_alpha,
    alpha))."""

    logit_adjust: torch.Tensor  # (K,)
    sce_alpha: float
    sce_beta: float
    hybrid_alpha: float

    @classmethod
    def for_labels(cls, labels: torch.Tensor, num_classes: int, cfg: TrainConfig,
                   device: torch.device) -> Objective:
        prior = class_prior(labels, num_classes)
        tau = cfg.logit_adjust if cfg.method == "ntl" else 0.0
        alpha, beta = sce_constants(num_classes)
        return cls((tau * prior.log()).to(device), alpha, beta, max(cfg.hybrid_alpha, alpha))


@dataclass
class TrainedRun:
    """What :func:`train` leaves for scoring: the run folder, its config.json and the data it trained on."""

    run_dir: Path
    config: dict
    ingest: IngestResult
    arrays: Arrays
    device: torch.device
    is_main: bool  # rank 0 (the only rank that writes into run_dir)
    # The last epoch end's evaluation of the trained model (ntl, when this call trained that epoch; None when the
    # run was already complete or the method estimates nothing): scoring the training set reuses it.
    final: Evaluation | None = None


def train(data_dir: str | Path, run_dir: str | Path, cfg: TrainConfig, *, resume: bool = False,
          overwrite: bool = False, workers: int | None = None, quiet: bool = False,
          cache_root: str | Path | None = None, epoch_end: EpochEnd | None = None) -> TrainedRun:
    """Train on ``data_dir`` into ``run_dir`` (config.json, checkpoint.pt after every epoch, progress.jsonl).

    ``epoch_end(epoch, model, device)``, if given, is called on rank 0 after each epoch (1-based) before its
    checkpoint is saved, so a run killed between the two repeats that epoch and calls it again."""
    cfg.validate()
    run_dir = Path(run_dir)
    ctx = dist.setup(cfg.device)
    device = ctx.device if ctx.world > 1 else dist.resolve_device(cfg.device)
    is_main = ctx.rank == 0
    try:
        cfg, result, arrays = prepare_inputs(data_dir, cfg, cfg.features, workers=workers,
                                             show_bar=is_main and not quiet, cache_root=cache_root)
        cfg = resolve_schedule(cfg, len(arrays.clips))
        config = _prepare_run_dir(run_dir, result, cfg, resume, overwrite) if is_main else {}
        dist.barrier()
        final = _train_loop(run_dir, arrays, result.classes, cfg, device, ctx, resume, quiet, epoch_end)
    finally:
        dist.cleanup(ctx)
    return TrainedRun(run_dir, config, result, arrays, device, is_main, final)


def _prepare_run_dir(run_dir: Path, result: IngestResult, cfg: TrainConfig, resume: bool, overwrite: bool) -> dict:
    """Check that ``run_dir`` may take this run (or resume it) and write its config.json; returns the config."""
    old = read_config(run_dir)
    data_dir = str(result.manifest.root)
    if old is not None:
        if old.get("data_dir") != data_dir and not overwrite:
            raise UserError(f"{run_dir}: holds a run of another data set ({old.get('data_dir')}); "
                            "choose another --run folder")
        has_ckpt = (run_dir / CHECKPOINT_FILE).exists()
        if resume and has_ckpt:
            _check_resumable(old, cfg, result.classes, run_dir)
            return old
        if has_ckpt and not resume and not overwrite:
            raise UserError(f"{run_dir}: already holds a trained or partial run; pass --resume to continue it "
                            "or --overwrite to start again")
        if not overwrite and any((run_dir / name).exists() for name in (FLAGS_FILE, EMBEDDINGS_FILE)):
            raise UserError(f"{run_dir}: already holds scored results (e.g. from `score --out`); choose another "
                            "--run folder or pass --overwrite to replace them")
    elif resume:
        print(f"note: {run_dir} has no run to resume; starting a new one", file=sys.stderr)
    for name in RUN_OUTPUTS:
        (run_dir / name).unlink(missing_ok=True)
    config = {"run_id": f"{run_dir.name}-{int(time.time())}", "data_dir": data_dir, "classes": result.classes,
              "train": asdict(cfg), "preprocess": asdict(result.params), "code_version": __version__,
              "clips": int(len(result.clips)), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "preset": cfg.preset}
    write_config(run_dir, config)
    return config


def _check_resumable(old: dict, cfg: TrainConfig, classes: list[str], run_dir: Path) -> None:
    """Raise UserError naming every TrainConfig field (but RUNTIME_KEYS) whose value differs from the run's; a field
    that the run's config.json lacks (a run started before the field existed) has its default there."""
    stored = {f.name: f.default for f in dataclasses.fields(TrainConfig)} | old["train"]
    changed = [f"{key}={value!r} (the run has {stored.get(key)!r})" for key, value in asdict(cfg).items()
               if key not in RUNTIME_KEYS and stored.get(key) != value]
    if changed:
        raise UserError(f"{run_dir}: cannot resume with {', '.join(changed)}; resume with the run's own values "
                        f"(see {run_dir / CONFIG_FILE}) or start a new run")
    if old["classes"] != classes:
        raise UserError(f"{run_dir / CONFIG_FILE}: the data set's classes changed since the run started; "
                        "cannot resume")


def _train_loop(run_dir: Path, arrays: Arrays, classes: list[str], cfg: TrainConfig, device: torch.device,
                ctx: dist.Context, resume: bool, quiet: bool, epoch_end: EpochEnd | None = None) -> Evaluation | None:
    """The epochs from the checkpoint's (``resume``) or the first to cfg.epochs_total; returns the last epoch end's
    evaluation (None when no epoch was left or the method estimates nothing)."""
    preset = get_preset(cfg.preset)
    n, k = len(arrays.clips), len(classes)
    labels = torch.tensor([classes.index(c) for c in arrays.labels])
    has_audio = torch.from_numpy(arrays.has_audio.copy())
    # Each step uses the same global batch for any number of ranks K; rank k takes rows k*B/K .. (k+1)*B/K - 1.
    local_batch = max(2, training_batch(cfg, n) // ctx.world)
    batch_size = local_batch * ctx.world
    steps_per_epoch = max(1, n // batch_size)  # drop the last partial batch: InfoNCE wants full batches

    torch.manual_seed(cfg.seed)
    model = AudioVisualNet(preset, k, cfg.embed_dim, cfg.pretrained, (cfg.visual_dim, cfg.audio_dim))
    initialised = init_from_run(model, cfg.init_from, cfg.preset) if cfg.init_from else None
    model = place_on(model, device)
    if cfg.method == "ce":  # no loss term reads z: frozen heads, so DDP does not wait for gradients that never come
        for head in (model.g_v, model.g_a):
            head.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs_total * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total_steps, steps_per_epoch))
    state = NoiseState.initial(has_audio, k, cfg.embed_dim)
    objective = Objective.for_labels(labels, k, cfg, device)
    start_epoch, elapsed0 = 0, 0.0
    ckpt_path = run_dir / CHECKPOINT_FILE
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state = NoiseState.from_checkpoint(ckpt["state"], has_audio)
        start_epoch, elapsed0 = int(ckpt["epoch"]), float(ckpt["elapsed_s"])
    ddp_model = dist.wrap(model, ctx)
    plan = EpochPlan(arrays, seed=cfg.seed, batch_size=batch_size, local_batch=local_batch, rank=ctx.rank,
                     steps=steps_per_epoch, num_frames=preset.num_frames, audio_frames=preset.audio_frames,
                     flip_frames=state.mirrors_frames(cfg))
    workers = loader_workers(cfg.loader_workers, device, ctx.world)
    batches = training_batches(arrays, plan, workers, pin_memory=device.type == "cuda")
    if ctx.rank == 0:
        append_progress(run_dir, {"event": "start", "epoch": start_epoch, "epochs_total": cfg.epochs_total,
                                  "clips": n, "classes": k, "device": str(device), "world_size": ctx.world,
                                  "resumed": bool(resume and start_epoch > 0),
                                  "init_from": {"run": cfg.init_from, **initialised} if initialised else None})
    bar = None
    if ctx.rank == 0 and not quiet:
        bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch, unit="step", desc="train",
                   file=sys.stderr)
    t0 = time.time() - elapsed0
    final = None
    input_heads = None  # the evidence heads on a features file's vectors, once fitted
    for epoch in range(start_epoch, cfg.epochs_total):
        phase = 1 if epoch < cfg.epochs_phase1 else 2
        kept = state.r >= 0.5
        target = labels if phase == 1 else torch.where(kept, labels, state.y_hat)
        target_weight = state.r if phase == 1 else torch.where(kept, state.r, (1 - state.r) * state.q.max(1).values)
        w_train = state.w if (cfg.use_w and cfg.method == "ntl") else has_audio.float()
        # Order and augmentation per (seed, epoch), drawn for the whole global batch on every rank so that they do
        # not depend on K; each rank's loader makes its own rows (model/loader.py).
        plan.set_epoch(epoch)
        plan.flip_frames = state.mirrors_frames(cfg)
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + ctx.rank)  # dropout
        sums: dict[str, float] = {}
        with step_threads(cfg, device):
            for step, (idx, frames, mel) in enumerate(batches):
                batch = Batch(idx=idx, given=labels[idx].to(device), target=target[idx].to(device),
                              w=w_train[idx].to(device), r=state.r[idx].to(device),
                              target_weight=target_weight[idx].to(device))
                opt.zero_grad(set_to_none=True)
                out, terms, loss = forward_backward(ddp_model, frames, mel, batch, state, phase, cfg, objective)
                opt.step()
                sched.step()
                if cfg.method == "ntl":
                    with torch.no_grad():
                        w_v = batch.target_weight
                        w_a = w_v * batch.w if cfg.weight_audio_by_w else w_v
                        state.mu_v = update_prototypes(state.mu_v.to(device), out.z_v, batch.target, w_v,
                                                       cfg.proto_momentum).cpu()
                        state.mu_a = update_prototypes(state.mu_a.to(device), out.z_a, batch.target, w_a,
                                                       cfg.proto_momentum).cpu()
                losses = batch_losses(terms, loss)
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                if bar is not None:
                    bar.update(1)
                    if step % PROGRESS_EVERY_STEPS == 0 or step == steps_per_epoch - 1:
                        append_progress(run_dir, {"event": "step", "phase": phase, "epoch": epoch,
                                                  "epochs_total": cfg.epochs_total, "step": step + 1,
                                                  "steps_per_epoch": steps_per_epoch,
                                                  "losses": {k_: round(v, 5) for k_, v in losses.items()},
                                                  "elapsed_s": round(time.time() - t0, 2)})
        # Epoch end (ntl only; the baselines need no per-clip estimates): evaluation mode over every clip, its
        # forward pass sharded over ranks and gathered (every rank then holds the same estimates).
        estimates = {}
        ev = None
        if cfg.method == "ntl":
            est_started = time.time()
            windows: dict[str, np.ndarray] = {}
            ev = evaluate(model, arrays, np.arange(n), cfg, device, windows_out=windows, workers=workers, ctx=ctx)
            earlier = state.earlier_sound()
            est = estimate_noise(ev, labels, has_audio, cfg, k, device, heads=input_heads, earlier_sound=earlier)
            if INPUT_KEYS[0] in ev:  # heads on a features file's vectors: the same at every epoch end
                input_heads = est["heads"]
            state.update_estimates(est, epoch, cfg, earlier)
            if epoch == cfg.epochs_total - 1:
                final = Evaluation(ev, est, windows)
            estimates = {"est_label_noise": float((1 - est["r"]).mean()),
                         "est_mismatch": float((1 - est["w"])[has_audio].mean()) if has_audio.any() else 0.0,
                         # agreement of the corrected distribution's argmax with the given labels
                         "q_agreement": float((est["q"].argmax(1) == labels).float().mean()),
                         "agreement": round(est["agreement"], 4),
                         "w_mixture": est["w_fit"].summary(), "r_mixture": est["r_fit"].summary(),
                         "weighting": {"w": bool(state.gate_open[0]), "r": bool(state.gate_open[1])},
                         "estimate_s": round(time.time() - est_started, 2)}
            del est  # so that the next epoch end's evaluation does not find this one still held
        if state.mirror_test_due(cfg):
            test = _mirror_test(model, arrays, labels, k, cfg, device, workers, ctx, ev)
            state.take_mirror_test(test, epoch, cfg)
            estimates["mirror_test"] = test.summary() | {"decided": int(state.mirror) != MIRROR_UNDECIDED}
        del ev
        estimates["mirrored_frames"] = plan.flip_frames
        if ctx.rank == 0:
            if epoch_end is not None:
                epoch_end(epoch + 1, model, device)
            elapsed = time.time() - t0
            save_checkpoint(ckpt_path, model, opt, sched, state.as_dict(), epoch + 1, elapsed, cfg, classes,
                            arrays.clips, arrays.labels)
            done = epoch + 1 - start_epoch
            eta = (elapsed - elapsed0) / done * (cfg.epochs_total - epoch - 1) if done else None
            append_progress(run_dir, {"event": "epoch", "phase": phase, "epoch": epoch + 1,
                                      "epochs_total": cfg.epochs_total,
                                      "losses": {k_: v / steps_per_epoch for k_, v in sums.items()}, **estimates,
                                      "elapsed_s": round(elapsed, 2),
                                      # this process's CPU seconds so far (all its threads): cost under load
                                      "cpu_s": round(time.process_time(), 2),
                                      "eta_s": round(eta, 1) if eta is not None else None})
        dist.barrier()
    if bar is not None:
        bar.close()
    return final


def _mirror_test(model: AudioVisualNet, arrays: Arrays, labels: torch.Tensor, num_classes: int, cfg: TrainConfig,
                 device: torch.device, workers: int, ctx: dist.Context,
                 ev: dict[str, torch.Tensor] | None) -> MirrorTest:
    """The mirror test (model/mirror_test.py) of the model as it is: the visual features h_v of every clip (this
    epoch end's evaluation ``ev``, or a new one) and of its mirror image."""
    every = np.arange(len(arrays.clips))
    h = ev["h_v"] if ev is not None else evaluate(model, arrays, every, cfg, device, workers=workers, ctx=ctx)["h_v"]
    h_mirrored = evaluate(model, arrays, every, cfg, device, workers=workers, ctx=ctx, mirrored=True)["h_v"]
    return mirror_test(h, h_mirrored, labels, num_classes, seed=cfg.seed, device=device)


def forward_backward(model: torch.nn.Module, frames: torch.Tensor, mel: torch.Tensor, batch: Batch,
                     state: NoiseState, phase: int, cfg: TrainConfig, objective: Objective
                     ) -> tuple[Outputs, dict[str, torch.Tensor], torch.Tensor]:
    """Forward pass of this rank's rows, the loss terms by name, their sum, and its backward pass (under DDP the
    gradients are then the average over ranks, i.e. those of the global batch's mean loss)."""
    device = batch.given.device
    with autocast(device):
        out = model(frames.to(device, non_blocking=True), mel.to(device, non_blocking=True))
    terms = _loss_terms(out, batch, state, phase, cfg, objective)
    loss = sum(terms.values())
    loss.backward()
    return out, terms, loss


def batch_losses(terms: dict[str, torch.Tensor], loss: torch.Tensor) -> dict[str, float]:
    """The loss terms and their sum ("total") of the global batch: each rank's mean over its rows, averaged over
    the ranks (every rank has as many rows), on every rank; the values logged to progress.jsonl."""
    values = torch.stack([t.detach().float() for t in (*terms.values(), loss)])
    values = dist.all_reduce_sum(values) / dist.world_size()
    return dict(zip([*terms, "total"], values.tolist(), strict=True))


def update_prototypes(mu: torch.Tensor, z: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                      momentum: float) -> torch.Tensor:
    """EMA of r-weighted class means of unit embeddings, renormalised: mu_k <- normalise(m mu_k + (1-m) zbar_k).

    zbar_k = normalise(sum_{i: t_i = k} weight_i z_i), summed over all ranks; a class first seen takes zbar_k."""
    sums = torch.zeros_like(mu).index_add_(0, target, weight[:, None] * z.detach().float())
    sums = dist.all_reduce_sum(sums)
    seen = sums.norm(dim=1) > 0
    zbar = F.normalize(sums, dim=1)
    fresh = mu.norm(dim=1) == 0
    new = torch.where(fresh[:, None], zbar, F.normalize(momentum * mu + (1 - momentum) * zbar, dim=1))
    return torch.where(seen[:, None], new, mu)


@contextlib.contextmanager
def step_threads(cfg: TrainConfig, device: torch.device):
    """torch's intra-op CPU threads while the training steps run: FEATURES_STEP_THREADS for the features preset on
    the CPU (the threads there were before are restored after), unchanged otherwise."""
    if device.type != "cpu" or cfg.preset != FEATURES_PRESET:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, FEATURES_STEP_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _lr_factor(step: int, total: int, steps_per_epoch: int) -> float:
    """Linear warm-up over the first epoch, then cosine decay to 5% of the base rate."""
    if step < steps_per_epoch:
        return (step + 1) / steps_per_epoch
    progress = (step - steps_per_epoch) / max(1, total - steps_per_epoch)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _loss_terms(out: Outputs, batch: Batch, state: NoiseState, phase: int, cfg: TrainConfig,
                objective: Objective) -> dict[str, torch.Tensor]:
    """The loss terms of one batch, by name (method.md phase 1 / phase 2)."""
    y, w, r = batch.given, batch.w, batch.r
    if cfg.method != "ntl":
        ce = F.cross_entropy
        terms = {"cls": ce(out.logits_av, y) + 0.5 * (ce(out.logits_v, y) + ce(out.logits_a, y))}
        if cfg.method == "cosine":
            terms["inst"] = _batch_infonce(out, cfg).mean()
        return terms
    w_audio = w if cfg.weight_audio_by_w else torch.ones_like(w)
    heads = [out.logits_av + objective.logit_adjust, out.logits_v + objective.logit_adjust,
             out.logits_a + objective.logit_adjust]
    a, b = objective.sce_alpha, objective.sce_beta
    if phase == 1 and cfg.ce_until_label_noise and not state.gate_open[1]:
        a, b = 1.0, 0.0  # plain CE until the label mixture has found noisy labels (method.md departure 19)
    if phase == 1:
        av, v, au = (sce(logits, y, a, b) for logits in heads)
    else:
        q = state.q[batch.idx].to(y.device)
        av, v, au = (hybrid_loss(logits, y, q, r, objective.hybrid_alpha, b) for logits in heads)
    terms = {"cls" if phase == 1 else "hyb": (av + 0.5 * (v + w_audio * au)).mean(),
             "inst": cfg.lambda_inst * (w * _batch_infonce(out, cfg)).mean()}
    if cfg.use_cat:
        terms["cat"] = cfg.lambda_cat * category_contrastive(
            out.z_v, out.z_a, state.mu_v.to(y.device), state.mu_a.to(y.device), batch.target, batch.target_weight,
            w_audio, cfg.tau_c)
    return terms


def _batch_infonce(out: Outputs, cfg: TrainConfig) -> torch.Tensor:
    """l_i of this rank's rows with the whole global batch (all ranks) as negatives, as with one process."""
    z_v, offset = dist.gather_with_grad(out.z_v)
    z_a, _ = dist.gather_with_grad(out.z_a)
    return cross_modal_infonce(z_v, z_a, cfg.tau)[offset:offset + out.z_v.shape[0]]
