"""The two-phase noise-tolerant training loop (method.md), checkpoints, progress.jsonl, resume, DDP.

One loop, nothing hidden. Per epoch e (0-based) of E1 + E2:
  phase = 1 if e < E1 else 2; targets t_i = y~_i (phase 1) or y~_i if r_i >= 0.5 else y^_i (phase 2)
  for each batch:  L = L_cls (phase 1: SCE; phase 2: hybrid) + lambda_inst * mean(w_i l_i) + lambda_cat * L_cat
                   then the EMA class prototypes mu^v, mu^a move toward the batch's r-weighted class means
  at the epoch end (evaluation mode, all clips): l_i, CE_i -> w_i, r_i (after the warm-up); u_i, q_i, y^_i
  checkpoint.pt and a progress.jsonl line (rank 0 only).
Methods for the benchmark share the loop: ``ce`` (plain cross-entropy on every head, no contrastive terms) and
``cosine`` (CE + unweighted cross-modal InfoNCE); ablations switch off L_cat, the w re-weighting or phase 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from auditor import __version__
from auditor.atomic import atomic_write, atomic_write_text
from auditor.data.cache import ClipArrays, IngestResult, ingest, load_arrays
from auditor.errors import UserError
from auditor.model import distributed as dist
from auditor.model.correction import corrected_labels, fused_features
from auditor.model.inputs import batch_inputs
from auditor.model.losses import category_contrastive, cross_modal_infonce, hybrid_loss, sce
from auditor.model.network import AudioVisualNet
from auditor.model.noise_estimation import clean_posterior
from auditor.model.presets import get_preset, preprocess_params
from auditor.runs import RunLock, append_progress

METHODS = ("ntl", "ce", "cosine")
LABEL_EVIDENCE = ("classifier", "classifier+features")
# q_i is clipped here before its log, so a zero vote costs a finite, bounded amount of evidence.
Q_FLOOR = 1e-6
# Clips per chunk when l_i is computed in evaluation mode: every clip of a chunk sees the same negatives.
EVAL_NEGATIVES_CHUNK = 4096
CHECKPOINT_FORMAT = 1


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run (stored in config.json and in the checkpoint)."""

    preset: str = "cpu"
    method: str = "ntl"  # ntl | ce | cosine
    epochs_phase1: int = 0  # 0 = auto (resolve_schedule): enough epochs for MIN_UPDATES gradient steps
    epochs_phase2: int = -1  # -1 = auto; 0 = no phase 2
    warmup_epochs: int = -1  # w and r stay 1 until this many epochs are done; -1 = auto (1/7 of phase 1, >= 2)
    batch_size: int = 0  # 0 = the preset's
    lr: float = 2e-3
    weight_decay: float = 1e-4
    embed_dim: int = 128  # d
    tau: float = 0.1  # cross-modal InfoNCE temperature
    tau_c: float = 0.1  # category-level contrastive temperature
    tau_p: float = 0.1  # prototype softmax temperature (phase 2)
    knn_k: int = 10
    proto_momentum: float = 0.9
    lambda_inst: float = 1.0
    lambda_cat: float = 1.0
    use_cat: bool = True  # ablation: without the category-level loss
    use_w: bool = True  # ablation: without w re-weighting (w is still estimated and reported)
    weight_audio_by_w: bool = True  # w_i also weights audio-side terms (audio head, L_cat's audio term)
    # Evidence the r_i mixture is fitted on: "classifier" = CE(p^av_i, y~_i) as in method.md; "classifier+features"
    # adds the feature-distance evidence CE(q_i, y~_i) of phase 2's corrected distribution (computed from a first
    # classifier-only r), so a label is judged by the classifier and by its neighbours in feature space together.
    label_evidence: str = "classifier+features"
    pretrained: bool = False  # use cached ImageNet weights for the visual ResNet-18 when available
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        get_preset(self.preset)
        if self.label_evidence not in LABEL_EVIDENCE:
            raise UserError(f"unknown label evidence {self.label_evidence!r}; choose one of: {', '.join(LABEL_EVIDENCE)}")
        if self.epochs_phase1 < 0 or self.epochs_phase2 < -1:
            raise UserError("--epochs-phase1 must be >= 1 (0 = auto) and --epochs-phase2 >= 0 (-1 = auto)")

    @property
    def epochs_total(self) -> int:
        return self.epochs_phase1 + (self.epochs_phase2 if self.method == "ntl" else 0)


@dataclass
class NoiseState:
    """Per-clip estimates carried between epochs (all length N, float32 tensors on the CPU)."""

    w: torch.Tensor  # correspondence probability
    r: torch.Tensor  # label-clean probability
    q: torch.Tensor  # (N, K) corrected label distribution (zeros until phase 2)
    y_hat: torch.Tensor  # (N,) corrected labels
    mu_v: torch.Tensor  # (K, d) EMA visual prototypes
    mu_a: torch.Tensor  # (K, d) EMA audio prototypes


# The automatic schedule: at least MIN_EPOCHS epochs and at least MIN_UPDATES gradient steps (a small data set
# gets more epochs, so it is not under-fitted), at most MAX_AUTO_EPOCHS; phase 1 takes PHASE1_SHARE of them.
MIN_EPOCHS = 24
MIN_UPDATES = 216
MAX_AUTO_EPOCHS = 100
PHASE1_SHARE = 14 / 24


def resolve_schedule(cfg: TrainConfig, n_clips: int) -> TrainConfig:
    """A copy of ``cfg`` with the automatic epoch counts (0 / -1) replaced by numbers for ``n_clips`` clips."""
    batch = cfg.batch_size or get_preset(cfg.preset).batch_size
    steps_per_epoch = max(1, n_clips // batch)
    total = min(MAX_AUTO_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_UPDATES / steps_per_epoch)))
    e1, e2, warm = cfg.epochs_phase1, cfg.epochs_phase2, cfg.warmup_epochs
    if cfg.method != "ntl":
        e1, e2 = e1 or total, 0
    else:
        if e1 == 0:
            e1 = round(total * PHASE1_SHARE) if e2 < 0 else max(1, total - e2)
        if e2 < 0:
            e2 = max(0, total - e1) if cfg.epochs_phase1 == 0 else round(e1 * (1 - PHASE1_SHARE) / PHASE1_SHARE)
    if warm < 0:
        warm = max(2, round(e1 / 7))
    return dataclasses.replace(cfg, epochs_phase1=e1, epochs_phase2=e2, warmup_epochs=min(warm, e1))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)


def prepare_data(data_dir: str | Path, preset: str, *, workers: int | None = None, show_bar: bool = True,
                 cache_root: str | Path | None = None) -> tuple[IngestResult, ClipArrays]:
    """Ingest (decodes only what is not cached yet) and load the cached arrays."""
    result = ingest(data_dir, preprocess_params(preset), workers=workers, show_bar=show_bar, cache_root=cache_root)
    if len(result.clips) == 0:
        raise UserError(f"{data_dir}: no usable clips (see {result.cache_dir / 'decode_report.csv'})")
    return result, load_arrays(result)


def evaluate(model: AudioVisualNet, arrays: ClipArrays, indices: np.ndarray, cfg: TrainConfig,
             device: torch.device, batch_size: int = 128) -> dict[str, torch.Tensor]:
    """Evaluation-mode forward pass over ``indices``: z_v, z_a (n, d), logits_av/_a/_v (n, K) on the CPU."""
    preset = get_preset(cfg.preset)
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {k: [] for k in ("z_v", "z_a", "logits_av", "logits_a", "logits_v")}
    with torch.no_grad(), _autocast(device):
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            frames, mel = batch_inputs(arrays, idx, preset.num_frames, preset.audio_frames, None)
            out = model(frames.to(device), mel.to(device))
            for k in outs:
                outs[k].append(getattr(out, k).float().cpu())
    model.train()
    return {k: torch.cat(v) if v else torch.zeros(0) for k, v in outs.items()}


def _autocast(device: torch.device):
    # Mixed precision on CUDA only; bfloat16 needs no loss scaling.
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def per_clip_infonce(z_v: torch.Tensor, z_a: torch.Tensor, tau: float, seed: int) -> torch.Tensor:
    """l_i against the same negatives for every clip of a chunk (chunks of EVAL_NEGATIVES_CHUNK, fixed shuffle)."""
    n = z_v.shape[0]
    ell = torch.zeros(n)
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n)) if n > EVAL_NEGATIVES_CHUNK else torch.arange(n)
    for start in range(0, n, EVAL_NEGATIVES_CHUNK):
        idx = order[start:start + EVAL_NEGATIVES_CHUNK]
        ell[idx] = cross_modal_infonce(z_v[idx], z_a[idx], tau)
    return ell


def estimate_noise(ev: dict[str, torch.Tensor], labels: torch.Tensor, has_audio: torch.Tensor,
                   cfg: TrainConfig, num_classes: int) -> dict[str, torch.Tensor]:
    """From an evaluation pass: l_i, CE_i, w_i (GMM on l), r_i (GMM on the label evidence), u_i, q_i, y^_i.

    Clips without a sound track are left out of the w mixture and get w_i = 0 (their silence says nothing about
    correspondence, and a zero keeps it out of u_i); they are reported as not mismatched by the scoring.
    With ``label_evidence == "classifier+features"``: r0 = GMM(CE_i), q from (u, r0), then
    r = GMM(CE_i - log q_i[y~_i]) and q, y^ are recomputed with that r."""
    ell = per_clip_infonce(ev["z_v"], ev["z_a"], cfg.tau, cfg.seed)
    ce = F.cross_entropy(ev["logits_av"], labels, reduction="none")
    mask = has_audio.numpy()
    w = torch.from_numpy(clean_posterior(ell.numpy(), mask=mask if mask.any() else None, seed=cfg.seed)).float()
    w = torch.where(has_audio, w, torch.zeros_like(w))
    r = torch.from_numpy(clean_posterior(ce.numpy(), seed=cfg.seed)).float()
    u = fused_features(ev["z_v"], ev["z_a"], w)
    q, y_hat = corrected_labels(u, labels, r, num_classes, cfg.tau_p, cfg.knn_k)
    evidence = ce
    if cfg.label_evidence == "classifier+features":
        evidence = ce - torch.log(q[torch.arange(len(labels)), labels].clamp_min(Q_FLOOR))
        r = torch.from_numpy(clean_posterior(evidence.numpy(), seed=cfg.seed)).float()
        q, y_hat = corrected_labels(u, labels, r, num_classes, cfg.tau_p, cfg.knn_k)
    return {"ell": ell, "ce": ce, "label_evidence": evidence, "w": w, "r": r, "u": u, "q": q, "y_hat": y_hat}


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


def train(data_dir: str | Path, run_dir: str | Path, cfg: TrainConfig, *, resume: bool = False,
          overwrite: bool = False, workers: int | None = None, quiet: bool = False,
          cache_root: str | Path | None = None) -> Path:
    """Train on ``data_dir`` into ``run_dir`` (see module docstring); returns run_dir. Scoring outputs are written
    by :func:`auditor.scoring.score_run` at the end."""
    from auditor.scoring import score_and_write

    cfg.validate()
    run_dir = Path(run_dir)
    ctx = dist.setup(cfg.device)
    device = ctx.device if ctx.world > 1 else resolve_device(cfg.device)
    is_main = ctx.rank == 0
    lock = RunLock(run_dir) if is_main else None  # rank 0 alone writes into run_dir
    if lock is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    try:
        result, arrays = prepare_data(data_dir, cfg.preset, workers=workers, show_bar=is_main and not quiet,
                                      cache_root=cache_root)
        cfg = resolve_schedule(cfg, len(arrays.clips))
        classes = result.classes
        config = _check_run_dir(run_dir, result, cfg, classes, resume, overwrite) if is_main else None
        dist.barrier()
        _train_loop(run_dir, result, arrays, classes, cfg, device, ctx, resume, quiet)
        if is_main:
            model, state = load_trained(run_dir, device)
            score_and_write(model, state["config"], result, arrays, run_dir, classes=state["classes"], device=device,
                            run_config=config)
            append_progress(run_dir, {"event": "done", "message": f"wrote {run_dir / 'flags.csv'}"})
    except BaseException as err:
        if is_main and run_dir.joinpath("config.json").exists():
            event = "cancelled" if isinstance(err, KeyboardInterrupt) else "error"
            append_progress(run_dir, {"event": event, "message": f"{type(err).__name__}: {err}"})
        raise
    finally:
        if lock is not None:
            lock.release()
        dist.cleanup(ctx)
    return run_dir


def _check_run_dir(run_dir: Path, result: IngestResult, cfg: TrainConfig, classes: list[str], resume: bool,
                   overwrite: bool) -> dict:
    cfg_path = run_dir / "config.json"
    data_dir = str(result.manifest.root)
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        if old.get("data_dir") != data_dir and not overwrite:
            raise UserError(f"{run_dir}: holds a run of another data set ({old.get('data_dir')}); "
                            "choose another --run folder")
        has_ckpt = (run_dir / "checkpoint.pt").exists()
        if resume and has_ckpt:
            _check_resumable(old, cfg, classes, run_dir)
            return old
        if has_ckpt and not resume and not overwrite:
            raise UserError(f"{run_dir}: already holds a trained or partial run; pass --resume to continue it "
                            "or --overwrite to start again")
    elif resume:
        print(f"note: {run_dir} has no run to resume; starting a new one", file=sys.stderr)
    for name in ("checkpoint.pt", "progress.jsonl", "flags.csv", "embeddings.parquet", "class_report.csv"):
        (run_dir / name).unlink(missing_ok=True)
    config = {"run_id": f"{run_dir.name}-{int(time.time())}", "data_dir": data_dir, "classes": classes,
              "train": asdict(cfg), "preprocess": asdict(result.params), "code_version": __version__,
              "clips": int(len(result.clips)), "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "preset": cfg.preset}
    atomic_write_text(cfg_path, json.dumps(config, indent=2))
    return config


def _check_resumable(old: dict, cfg: TrainConfig, classes: list[str], run_dir: Path) -> None:
    # Like nanoGPT: the architecture-defining keys must match the checkpoint's.
    for key in ("preset", "method", "embed_dim", "epochs_phase1", "epochs_phase2", "seed"):
        if old["train"].get(key) != getattr(cfg, key):
            raise UserError(f"{run_dir}: cannot resume with {key}={getattr(cfg, key)!r}; the run was started with "
                            f"{key}={old['train'].get(key)!r}")
    if old["classes"] != classes:
        raise UserError(f"{run_dir}: the data set's classes changed since the run started; cannot resume")


def _new_state(n: int, k: int, d: int) -> NoiseState:
    return NoiseState(w=torch.ones(n), r=torch.ones(n), q=torch.zeros(n, k), y_hat=torch.zeros(n, dtype=torch.long),
                      mu_v=torch.zeros(k, d), mu_a=torch.zeros(k, d))


def _train_loop(run_dir: Path, result: IngestResult, arrays: ClipArrays, classes: list[str], cfg: TrainConfig,
                device: torch.device, ctx: dist.Context, resume: bool, quiet: bool) -> None:
    preset = get_preset(cfg.preset)
    n, k = len(arrays.clips), len(classes)
    labels = torch.tensor([classes.index(c) for c in arrays.labels])
    has_audio = torch.from_numpy(arrays.has_audio.copy())
    # Each step uses the same global batch for any number of ranks K; rank k takes rows k*B/K .. (k+1)*B/K - 1.
    local_batch = max(2, (cfg.batch_size or preset.batch_size) // ctx.world)
    batch_size = local_batch * ctx.world
    steps_per_epoch = max(1, n // batch_size)  # drop the last partial batch: InfoNCE wants full batches

    torch.manual_seed(cfg.seed)
    model = AudioVisualNet(preset, k, cfg.embed_dim, cfg.pretrained).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total_steps = cfg.epochs_total * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total_steps, steps_per_epoch))
    state = _new_state(n, k, cfg.embed_dim)
    start_epoch, elapsed0 = 0, 0.0
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state = NoiseState(**{f.name: ckpt["state"][f.name] for f in dataclasses.fields(NoiseState)})
        start_epoch, elapsed0 = int(ckpt["epoch"]), float(ckpt["elapsed_s"])
    ddp_model = dist.wrap(model, ctx)
    if ctx.rank == 0:
        append_progress(run_dir, {"event": "start", "epoch": start_epoch, "epochs_total": cfg.epochs_total,
                            "clips": n, "classes": k, "device": str(device), "world_size": ctx.world,
                            "resumed": bool(resume and start_epoch > 0)})
    bar = _bar(cfg.epochs_total * steps_per_epoch, start_epoch * steps_per_epoch) if ctx.rank == 0 and not quiet else None
    t0 = time.time() - elapsed0
    for epoch in range(start_epoch, cfg.epochs_total):
        phase = 1 if epoch < cfg.epochs_phase1 else 2
        target = labels if phase == 1 else torch.where(state.r >= 0.5, labels, state.y_hat)
        w_train = state.w if (cfg.use_w and cfg.method == "ntl") else torch.where(has_audio, 1.0, 0.0)
        # Deterministic per (seed, epoch): a resumed run draws exactly what the uninterrupted one drew.
        rng = np.random.default_rng([cfg.seed, epoch])
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(n)
        torch.manual_seed(cfg.seed * 100_003 + epoch * 1009 + ctx.rank)  # dropout
        sums: dict[str, float] = {}
        for step in range(steps_per_epoch):
            # The whole global batch's inputs are drawn on every rank (cheap next to the network) so that the
            # augmentation does not depend on K; each rank then keeps its own rows.
            batch = perm[step * batch_size:(step + 1) * batch_size]
            mine = slice(ctx.rank * local_batch, (ctx.rank + 1) * local_batch)
            frames, mel = batch_inputs(arrays, batch, preset.num_frames, preset.audio_frames, rng)
            idx, frames, mel = batch[mine], frames[mine], mel[mine]
            if device.type == "cpu":
                pass  # channels_last is applied per 4-D frame batch inside the encoder call
            idx_t = torch.from_numpy(idx)
            y, t, w, r = labels[idx_t].to(device), target[idx_t].to(device), w_train[idx_t].to(device), state.r[idx_t].to(device)
            with _autocast(device):
                out = ddp_model(frames.to(device, non_blocking=True), mel.to(device, non_blocking=True))
            terms = _loss_terms(out, y, t, w, r, state, idx_t, phase, cfg, device)
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if cfg.method == "ntl":
                with torch.no_grad():
                    w_a = r * w if cfg.weight_audio_by_w else r
                    state.mu_v = update_prototypes(state.mu_v.to(device), out.z_v, t, r, cfg.proto_momentum).cpu()
                    state.mu_a = update_prototypes(state.mu_a.to(device), out.z_a, t, w_a, cfg.proto_momentum).cpu()
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.item()
            sums["total"] = sums.get("total", 0.0) + loss.item()
            if bar is not None:
                bar.update(1)
                if step % 5 == 0 or step == steps_per_epoch - 1:
                    _progress_step(run_dir, phase, epoch, step, steps_per_epoch, cfg, terms, loss, t0)
        # Epoch end: per-clip estimates in evaluation mode over every clip (sharded over ranks, then gathered).
        # Epoch end (ntl only; the baselines need no per-clip estimates): evaluation mode over every clip,
        # sharded over ranks and gathered.
        estimates = {}
        if cfg.method == "ntl":
            ev = dist.gather_eval(lambda ix: evaluate(model, arrays, ix, cfg, device), n, ctx)
            est = estimate_noise(ev, labels, has_audio, cfg, k)
            if epoch + 1 >= cfg.warmup_epochs:
                state.w, state.r = est["w"], est["r"]
            state.q, state.y_hat = est["q"], est["y_hat"]
            estimates = {"est_label_noise": float((1 - est["r"]).mean()),
                         "est_mismatch": float((1 - est["w"])[has_audio].mean()) if has_audio.any() else 0.0,
                         "train_acc": float((est["q"].argmax(1) == labels).float().mean())}
        if ctx.rank == 0:
            elapsed = time.time() - t0
            save_checkpoint(ckpt_path, model, opt, sched, state, epoch + 1, elapsed, cfg, classes, arrays.clips)
            done = epoch + 1 - start_epoch
            eta = (elapsed - elapsed0) / done * (cfg.epochs_total - epoch - 1) if done else None
            append_progress(run_dir, {"event": "epoch", "phase": phase, "epoch": epoch + 1,
                                      "epochs_total": cfg.epochs_total,
                                      "losses": {k_: v / steps_per_epoch for k_, v in sums.items()}, **estimates,
                                      "elapsed_s": round(elapsed, 2),
                                      "eta_s": round(eta, 1) if eta is not None else None})
        dist.barrier()
    if bar is not None:
        bar.close()


def _lr_factor(step: int, total: int, steps_per_epoch: int) -> float:
    """Linear warm-up over the first epoch, then cosine decay to 5% of the base rate."""
    if step < steps_per_epoch:
        return (step + 1) / steps_per_epoch
    progress = (step - steps_per_epoch) / max(1, total - steps_per_epoch)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _loss_terms(out, y, t, w, r, state: NoiseState, idx, phase: int, cfg: TrainConfig,
                device: torch.device) -> dict[str, torch.Tensor]:
    """The loss terms of one batch, by name (method.md phase 1 / phase 2)."""
    w_audio = w if cfg.weight_audio_by_w else torch.ones_like(w)
    if cfg.method != "ntl":
        ce = F.cross_entropy
        terms = {"cls": ce(out.logits_av, y) + 0.5 * (ce(out.logits_v, y) + ce(out.logits_a, y))}
        if cfg.method == "cosine":
            terms["inst"] = _batch_infonce(out, cfg).mean()
        return terms
    if phase == 1:
        cls = sce(out.logits_av, y) + 0.5 * (sce(out.logits_v, y) + w_audio * sce(out.logits_a, y))
    else:
        q = state.q[idx].to(device)
        cls = (hybrid_loss(out.logits_av, y, q, r)
               + 0.5 * (hybrid_loss(out.logits_v, y, q, r) + w_audio * hybrid_loss(out.logits_a, y, q, r)))
    terms = {"cls" if phase == 1 else "hyb": cls.mean(),
             "inst": cfg.lambda_inst * (w * _batch_infonce(out, cfg)).mean()}
    if cfg.use_cat:
        terms["cat"] = cfg.lambda_cat * category_contrastive(
            out.z_v, out.z_a, state.mu_v.to(device), state.mu_a.to(device), t, r, w_audio, cfg.tau_c)
    return terms


def _batch_infonce(out, cfg: TrainConfig) -> torch.Tensor:
    """l_i of this rank's rows with the whole global batch (all ranks) as negatives, as with one process."""
    z_v, offset = dist.gather_with_grad(out.z_v)
    z_a, _ = dist.gather_with_grad(out.z_a)
    return cross_modal_infonce(z_v, z_a, cfg.tau)[offset:offset + out.z_v.shape[0]]


def _bar(total: int, initial: int):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc="train", file=sys.stderr)


def _progress_step(run_dir, phase, epoch, step, steps_per_epoch, cfg, terms, loss, t0) -> None:
    elapsed = time.time() - t0
    append_progress(run_dir, {"event": "step", "phase": phase, "epoch": epoch, "epochs_total": cfg.epochs_total,
                        "step": step + 1, "steps_per_epoch": steps_per_epoch,
                        "losses": {k: round(float(v), 5) for k, v in terms.items()} | {"total": round(float(loss), 5)},
                        "elapsed_s": round(elapsed, 2)})


def save_checkpoint(path: Path, model, opt, sched, state: NoiseState, epoch: int, elapsed: float,
                    cfg: TrainConfig, classes: list[str], clips: list[str]) -> None:
    """Everything needed to resume, as tensors and plain Python values only (loadable with weights_only=True)."""
    payload = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "elapsed_s": elapsed, "config": asdict(cfg),
               "classes": list(classes), "clips": list(clips), "model": model.state_dict(),
               "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
               "state": {f.name: getattr(state, f.name) for f in dataclasses.fields(NoiseState)},
               "torch_rng": torch.get_rng_state()}
    atomic_write(path, lambda fh: torch.save(payload, fh))


def load_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True: a checkpoint carrying any pickled object is refused, never executed."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no checkpoint there") from None
    except pickle.UnpicklingError:
        raise UserError(f"{path}: refused to load the checkpoint: it holds pickled Python objects besides tensors, "
                        "which could run code; only AV Auditor's own checkpoints (tensors and plain values) "
                        "are loaded") from None
    except Exception as err:  # a torn file, not a checkpoint at all
        raise UserError(f"{path}: refused to load the checkpoint ({str(err).splitlines()[0][:200]})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not an AV Auditor checkpoint of format {CHECKPOINT_FORMAT} "
                        f"(found {ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt).__name__})")
    return ckpt


def load_trained(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AudioVisualNet, dict]:
    """The model of a run and its checkpoint dict (config, classes, state)."""
    ckpt = load_checkpoint(Path(run_dir) / "checkpoint.pt")
    cfg = TrainConfig(**ckpt["config"])
    model = AudioVisualNet(get_preset(cfg.preset), len(ckpt["classes"]), cfg.embed_dim)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    return model, ckpt
