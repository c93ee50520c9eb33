"""Per-clip estimates of a model over a whole data set: the evaluation pass, l_i, and w_i, r_i, u_i, q_i, y^_i.

Called at every epoch end by the training loop and once by scoring, so both read the same numbers from the same
code (method.md phase 1 step 2, phase 2 steps 1-4). N clips, K classes, d embedding size.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from auditor.data.feature_file import FeatureArrays
from auditor.model import distributed as dist
from auditor.model.config import TrainConfig
from auditor.model.correction import corrected_labels, fused_features
from auditor.model.cross_fit import L2_PENALTY, PENALTIES, out_of_fold_probabilities
from auditor.model.heap import reused_heap
from auditor.model.loader import evaluation_batches
from auditor.model.losses import class_prior, cross_modal_infonce
from auditor.model.neighbours import nearest_neighbours
from auditor.model.network import AudioVisualNet
from auditor.model.noise_estimation import SOUND_MIN_CLIP_EVIDENCE, mixture_posterior
from auditor.model.presets import get_preset
from auditor.model.sources import Arrays

# q_i is clipped here before its log, so a zero vote costs a finite, bounded amount of evidence.
Q_FLOOR = 1e-6
# Clips per chunk when l_i is computed in evaluation mode: every clip of a chunk sees the same negatives.
EVAL_NEGATIVES_CHUNK = 4096
EVAL_BATCH = 128
# Rows of a features file a forward pass of the evaluation takes at once: small MLPs over vectors, whose cost is
# in the number of batches.
VECTOR_EVAL_BATCH = 4096
# evaluate's keys of the network's outputs (network.Outputs), and of a features file's vectors of each clip
# (frozen_inputs; absent for decoded clips).
OUTPUT_KEYS = ("h_v", "h_a", "z_v", "z_a", "logits_av", "logits_a", "logits_v")
INPUT_KEYS = ("x_v", "x_a")
# The feature-distance evidence needs neighbours of the clip's own class: with fewer other clips of its class than
# this, a clip has no class to be near and is judged by the classifier alone.
MIN_CLASS_NEIGHBOURS = 2
# A long clip is judged by its best-aligned window among those whose sound is within this many dB of its loudest
# window's: the audible parts of its track, not the background between its sound events.
AUDIBLE_WITHIN_DB = 10.0


@dataclass
class EarlierSound:
    """The sound evidence (sound_evidence) of the same clips at earlier epoch ends of a training: their sum (N,)
    float64 and how many (``ends``). A pair the network fits as it trains (a swapped sound learnt as its
    picture's) has large evidence before it is fitted and small after: its mean over the epoch ends keeps what
    the last one has forgotten (Pleiss et al.'s area under the margin does the same for labels)."""

    total: torch.Tensor
    ends: int

    @classmethod
    def before_latest(cls, total: torch.Tensor, ends: torch.Tensor | int) -> EarlierSound | None:
        """From a training state (train.NoiseState: ``total`` of every epoch end but the latest, ``ends`` epoch
        ends in all): what the latest epoch end was estimated with; None before the first."""
        return cls(total, int(ends) - 1) if int(ends) > 0 else None

    def mean_with(self, sound: torch.Tensor) -> torch.Tensor:
        """(total + s) / (ends + 1): the mean sound evidence including this epoch end's ``sound`` (N,), float32."""
        return ((self.total + sound.double()) / (self.ends + 1)).float()

    def including(self, sound: torch.Tensor) -> EarlierSound:
        """The earlier sound evidence of the next epoch end: this one's and ``sound``."""
        return EarlierSound(self.total + sound.double(), self.ends + 1)


def training_earlier_sound(ckpt: dict, clips: list[str], labels: list[str]) -> EarlierSound | None:
    """The earlier sound evidence the training's last epoch end was estimated with, when ``clips`` and their given
    ``labels`` are exactly those of the checkpoint ``ckpt`` (checkpoint.load_checkpoint); None otherwise or for a
    run that estimated nothing. Scoring the training set with it repeats the training's own estimate; any other
    data set is judged by the model's evaluation alone."""
    state = ckpt.get("state", {})
    same = list(clips) == ckpt.get("clips") and [str(label) for label in labels] == ckpt.get("labels")
    return EarlierSound.before_latest(state["sound_total"], state["sound_ends"]) if same and "sound_ends" in state \
        else None


@dataclass
class Evaluation:
    """A model's evaluation pass over every clip of a data set (``ev``, from :func:`evaluate`), its per-window
    table (``windows``, evaluate's ``windows_out``; empty without windows) and :func:`estimate_noise` of it
    (``est``): what an epoch end computes, and all that scoring needs of the model."""

    ev: dict[str, torch.Tensor]
    est: dict
    windows: dict[str, np.ndarray] = field(default_factory=dict)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only (bfloat16 needs no loss scaling); a no-op context on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def evaluate(model: AudioVisualNet, arrays: Arrays, indices: np.ndarray, cfg: TrainConfig,
             device: torch.device, batch_size: int | None = None,
             windows_out: dict[str, np.ndarray] | None = None, workers: int = 0,
             ctx: dist.Context | None = None, mirrored: bool = False) -> dict[str, torch.Tensor]:
    """Evaluation-mode forward pass over ``indices``, ``batch_size`` items at a time (default EVAL_BATCH, or
    VECTOR_EVAL_BATCH for a features file): the evidence heads' inputs, z_v, z_a (n, d) and logits_av/_a/_v (n, K)
    on the CPU. The heads' inputs are h_v, h_a (n, C) for decoded clips, and for a features
    file its vectors x_v, x_a (frozen_inputs) instead of h, which nothing else reads. With ``mirrored`` every clip's
    frames are mirrored left-right (decoded clips only; the mirror test, model/mirror_test.py). The model's
    inputs are made by ``workers`` loader processes ahead of the model (model/loader.evaluation_batches). Under
    torchrun (``ctx`` of K > 1 ranks) each rank runs the forward pass of every K-th item (clip, or window) and
    all ranks gather every item's outputs before anything is computed across items: the results are those of one
    process for any K.

    Clips cut into aligned windows (``arrays.windows``) are evaluated window by window and summarised per clip:
    l_{i,s} = the InfoNCE loss of window s among the windows of the other clips (per_clip_infonce, the clip's own
    windows left out of its negatives); the clip's z_v, z_a are those of its best-aligned window s* = argmin_s
    l_{i,s} over the windows whose sound is present and within AUDIBLE_WITHIN_DB of the clip's loudest window
    (window 0 when none is), its h and logits the mean over its windows (the picture's class shows in all of them). ``windows_out``, if given, receives per window: owner
    (position in ``indices``), window, ell, cosine (z_v . z_a), level (the window's sound level, dBFS), audible
    (the windows s* is chosen from) and best (s == s*)."""
    ctx = ctx or dist.Context()
    indices = np.asarray(indices)
    inputs = frozen_inputs(arrays, indices)
    keys = tuple(k for k in OUTPUT_KEYS if not (inputs and k in ("h_v", "h_a")))
    batch_size = batch_size or (VECTOR_EVAL_BATCH if isinstance(arrays, FeatureArrays) else EVAL_BATCH)
    if arrays.windows is None or len(indices) == 0:
        return dist.gather_eval(lambda pos: _forward(model, arrays, indices[pos], keys, device, batch_size, cfg,
                                                     workers, mirrored), len(indices), ctx) | inputs
    items, owner, window = arrays.window_items(indices)
    ev = dist.gather_eval(lambda pos: _forward(model, items, pos, keys, device, batch_size, cfg, workers, mirrored),
                          len(owner), ctx)
    ell = per_clip_infonce(ev["z_v"], ev["z_a"], cfg.tau, cfg.seed, torch.from_numpy(owner))
    levels = arrays.window_levels(np.asarray(indices))[owner, window]
    loudest = np.full(len(indices), -np.inf)
    np.maximum.at(loudest, owner, levels)
    audible = items.has_audio & (levels >= loudest[owner] - AUDIBLE_WITHIN_DB)
    ranked = np.where(audible, ell.numpy(), np.inf)
    order = np.lexsort((window, ranked, owner))  # by clip, then l (absent sound last), then window number
    best = order[np.r_[0, np.flatnonzero(np.diff(owner[order])) + 1]] if len(order) else order
    counts = torch.from_numpy(np.bincount(owner, minlength=len(indices))).clamp_min(1).float()[:, None]
    out = {k: ev[k][best] for k in ("z_v", "z_a")}
    for k in (k for k in keys if k not in out):
        out[k] = torch.zeros(len(indices), ev[k].shape[1]).index_add_(0, torch.from_numpy(owner), ev[k]) / counts
    if windows_out is not None:
        windows_out.update(owner=owner, window=window, ell=ell.numpy(), best=np.isin(np.arange(len(owner)), best),
                           cosine=(ev["z_v"] * ev["z_a"]).sum(1).numpy(), level=levels, audible=audible)
    return out | inputs


def frozen_inputs(arrays: Arrays, indices: np.ndarray) -> dict[str, torch.Tensor]:
    """x_v (n, D_v), x_a (n, D_a): the features file's vectors of the clips ``indices`` (FeatureArrays.clip_vectors,
    shared with ``arrays`` where it can), which no label has touched; {} for clips decoded for our own encoders,
    whose inputs are frames and sound."""
    if not isinstance(arrays, FeatureArrays):
        return {}
    return dict(zip(INPUT_KEYS, map(torch.from_numpy, arrays.clip_vectors(indices)), strict=True))


def _forward(model: AudioVisualNet, arrays: Arrays, indices: np.ndarray, keys: tuple[str, ...],
             device: torch.device, batch_size: int, cfg: TrainConfig, workers: int,
             mirrored: bool = False) -> dict[str, torch.Tensor]:
    """The forward pass of :func:`evaluate` over items ``indices`` of ``arrays`` (their frames mirrored with
    ``mirrored``): the outputs ``keys``."""
    preset = get_preset(cfg.preset)
    was_training = model.training
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
    batches = evaluation_batches(arrays, indices, batch_size, preset.num_frames, preset.audio_frames, workers,
                                 pin_memory=device.type == "cuda", mirrored=mirrored)
    with torch.no_grad(), autocast(device):
        for _, frames, mel in batches:
            out = model(frames.to(device, non_blocking=True), mel.to(device, non_blocking=True))
            for k in outs:
                outs[k].append(getattr(out, k).float().cpu())
    model.train(was_training)
    return {k: torch.cat(v) if v else torch.zeros(0) for k, v in outs.items()}


# How many of the picture's most likely classes (p^v) are left out of a clip's per-clip InfoNCE negatives
# (negative_classes). Two, not one: on a development asymmetric-40% set the visual head had learnt part of the flip
# and 3.7% of the sounds (no clip mismatched) were flagged with one, 0.2% with two; the mismatch AP of the
# development sets stayed within 0.007 (BENCHMARKS.md).
VISUAL_CLASSES_OUT = 2


def per_clip_infonce(z_v: torch.Tensor, z_a: torch.Tensor, tau: float, seed: int,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """l_i of every clip against the same number of negatives: the clips are shuffled (fixed seed) and cut into
    ceil(N / EVAL_NEGATIVES_CHUNK) chunks of equal size (+-1), each clip scored within its chunk; with ``labels``
    ((N,) or (N, m) class sets) the clips sharing a class with it are left out of its negatives
    (losses.cross_modal_infonce). (N,)."""
    n = z_v.shape[0]
    ell = torch.zeros(n)
    if n == 0:
        return ell
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n)) if n > EVAL_NEGATIVES_CHUNK else torch.arange(n)
    with reused_heap():  # each chunk's (chunk, chunk) temporaries in the memory the last one freed
        for idx in torch.tensor_split(order, math.ceil(n / EVAL_NEGATIVES_CHUNK)):
            ell[idx] = cross_modal_infonce(z_v[idx], z_a[idx], tau, None if labels is None else labels[idx])
    return ell


def negative_classes(ev: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """(N, 3): the classes whose clips are no negatives of clip i's per-clip InfoNCE: its given label and the two
    classes its picture alone shows most (the top two of p_i^v; one when there is one class). A wrongly labelled
    clip's sound belongs with the clips of its true class: as negatives they would make its own sound look foreign
    (a label error read as a sound mismatch). The second class is there for a visual head that has partly learnt a
    systematic flip (asymmetric noise): it ranks the wrong given label first and the true class second."""
    logits_v = ev["logits_v"]
    return torch.cat([labels[:, None], logits_v.topk(min(VISUAL_CLASSES_OUT, logits_v.shape[1]), dim=1).indices],
                     dim=1)


def label_evidence_ce(ev: dict[str, torch.Tensor], labels: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """CE_i = -log p~_i[y~_i] with p~_i = w_i p_i^av + (1 - w_i) p_i^v: the fused prediction counts as far as the
    sound belongs to the picture, so a correctly labelled clip with a swapped sound track is judged by its
    picture instead of looking mislabelled. (N,)."""
    p = w[:, None] * torch.softmax(ev["logits_av"], 1) + (1 - w[:, None]) * torch.softmax(ev["logits_v"], 1)
    return -torch.log(p[torch.arange(len(labels)), labels].clamp_min(Q_FLOOR))


def out_of_fold_heads(ev: dict[str, torch.Tensor], labels: torch.Tensor, has_audio: torch.Tensor, num_classes: int,
                      cfg: TrainConfig, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Cross-fitted class probabilities (model/cross_fit.py, ``cfg.evidence_folds`` folds) of the picture (from
    h_v), the sound (h_a, fitted on and given to clips with sound) and both ([h_v; h_a], likewise): (N, K) each,
    keys p_v, p_a, p_av. Clips without sound get p_a uniform and p_av = p_v. Where ``ev`` holds the features file's
    vectors x_v, x_a (frozen_inputs) the heads read them instead of h: no label has touched them, while the
    features preset's MLPs can fit every given label into h (method.md departure 17); heads on the vectors take the
    ridge weight that cross_fit.choose_penalty chooses among cross_fit.PENALTIES, heads on h cross_fit.L2_PENALTY."""
    vectors = INPUT_KEYS[0] in ev
    x_v, x_a = (ev[key] for key in (INPUT_KEYS if vectors else ("h_v", "h_a")))
    fit = dict(folds=cfg.evidence_folds, seed=cfg.seed, device=device,
               penalties=PENALTIES if vectors else (L2_PENALTY,))
    p_v = out_of_fold_probabilities(x_v, labels, num_classes, **fit)
    p_a = out_of_fold_probabilities(x_a, labels, num_classes, mask=has_audio, **fit)
    p_av = out_of_fold_probabilities((x_v, x_a), labels, num_classes, mask=has_audio, **fit)
    return {"p_v": p_v, "p_a": p_a, "p_av": torch.where(has_audio[:, None], p_av, p_v)}


def label_evidence_out_of_fold(heads: dict[str, torch.Tensor], labels: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """CE_i = -log max(p_i^v[y~_i], w_i p_i^a[y~_i], w_i p_i^av[y~_i]) from cross-fitted heads (out_of_fold_heads):
    a label is as likely as the most confident head makes it, a head that hears the sound counting as far as the
    sound belongs to the picture. A hard picture whose sound agrees with its label is a hard clip, not a wrong
    label; a wrong label is one no head finds. (N,)."""
    rows = torch.arange(len(labels))
    p = torch.stack([heads["p_v"][rows, labels], w * heads["p_a"][rows, labels], w * heads["p_av"][rows, labels]])
    return -torch.log(p.max(0).values.clamp_min(Q_FLOOR))


def uniform_prior(p: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """p'_ik = (p_ik / pi_k) / sum_j (p_ij / pi_j): class probabilities fitted on the given labels, re-weighted to a
    uniform class prior (Menon et al.'s post-hoc logit adjustment), pi = losses.class_prior of the given labels of
    the clips in ``mask`` (a class without such clips counted as one clip). (N, K)."""
    scaled = p / class_prior(labels[mask], p.shape[1]).to(p.dtype)
    return scaled / scaled.sum(1, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)


def sound_evidence(ell: torch.Tensor, heads: dict[str, torch.Tensor], labels: torch.Tensor,
                   has_audio: torch.Tensor) -> torch.Tensor:
    """e_i = (l_i + c_i) / 2, the mean of two losses in nats: the clip's per-clip InfoNCE l_i (its sound against
    the other clips' sounds, given its picture) and c_i = -log max(p'_i^a[y~_i], sum_k p'_i^a[k] p_i^v[k]), how
    unlikely the cross-fitted sound head (out_of_fold_heads) finds the class of the given label or the class the
    cross-fitted picture head sees, its probabilities p'^a taken under a uniform class prior (uniform_prior over
    the clips with sound): whether the sound is likely under a class, not whether the class is frequent, so a
    small class's sounds are not foreign for being rare. A sound looks most foreign when both are large, and one
    alone counts half: a sound the embedding places far from its picture but that the sound head hears as the
    clip's class (a small class's, a quiet one's), and a sound the sound head hears as another class but that the
    embedding pairs with its picture (a pair the network may have fitted). The mean, not the geometric mean: where
    one of the two says little (heads fitted on many wrong labels), a product lets it drown the other's ranking.
    (N,); clips without sound get c_i from a uniform p^a."""
    rows = torch.arange(len(labels))
    p_a = torch.where(has_audio[:, None], uniform_prior(heads["p_a"], labels, has_audio), heads["p_a"])
    heard = torch.maximum(p_a[rows, labels], (p_a * heads["p_v"]).sum(1))
    classes = -torch.log(heard.clamp_min(Q_FLOOR))
    return (ell.clamp_min(0) + classes) / 2


def estimate_noise(ev: dict[str, torch.Tensor], labels: torch.Tensor, has_audio: torch.Tensor,
                   cfg: TrainConfig, num_classes: int, device: torch.device | None = None,
                   heads: dict[str, torch.Tensor] | None = None,
                   earlier_sound: EarlierSound | None = None) -> dict:
    """From an evaluation pass: l_i, sound evidence, w_i, label evidence, r_i, u_i, q_i, y^_i and the two mixtures'
    diagnostics.

    * l_i: per-clip InfoNCE, the clips of its given label and of its picture's two likeliest classes excluded
      from the negatives (negative_classes); the sound evidence s_i (sound_evidence of l_i and the cross-fitted
      heads; l_i alone with ``evidence_folds`` = 0); w_i = mixture posterior over the mean of s_i and the earlier
      epoch ends' sound evidence of the same clips (``earlier_sound``; s_i alone without it), fitted on clips with
      sound (class-normalised when ``cfg.class_normalise``); clips without usable sound get w_i = 0 (they are
      reported as not mismatched by the scoring);
    * CE_i = label_evidence_out_of_fold of heads cross-fitted on the frozen encoder features h, or on the
      features file's vectors x (out_of_fold_heads; ``cfg.evidence_folds`` folds), or label_evidence_ce of the
      network's own heads (gated by w) with ``evidence_folds`` = 0; with ``label_evidence ==
      "classifier+features"``: r0 from CE_i alone, q from (u, r0), then the evidence is CE_i - log q_i[y~_i]
      (CE_i alone for a clip with fewer than MIN_CLASS_NEIGHBOURS other clips of its class);
    * r_i = mixture posterior over the evidence; q, y^ from (u, r);
    * heads: the cross-fitted p_v, p_a, p_av (out_of_fold_heads; empty with ``evidence_folds`` = 0), or the
      ``heads`` given: those of an earlier estimate on the same features file's vectors, which no network change
      alters (the training fits them once);
    * agreement: the share of clips whose given label is the fused head's argmax (the cross-fitted p^av, or the
      network's own p^av with ``evidence_folds`` = 0): how far the model has learnt the given labels (on a
      features file, how far a linear head on its vectors finds them: the same at every epoch end).
    Each mixture returns all-clean posteriors when its evidence shows no second population. The kNN of q runs
    on ``device`` (model/neighbours.py: exact on a GPU, approximate above KNN_EXACT_MAX clips on the CPU), once
    for both votes; everything else on the CPU."""
    group = labels.numpy() if cfg.class_normalise else None
    ell = per_clip_infonce(ev["z_v"], ev["z_a"], cfg.tau, cfg.seed, negative_classes(ev, labels))
    if heads is None:
        heads = out_of_fold_heads(ev, labels, has_audio, num_classes, cfg, device) if cfg.evidence_folds > 0 else {}
    sound = sound_evidence(ell, heads, labels, has_audio) if heads else ell
    mean_sound = earlier_sound.mean_with(sound) if earlier_sound is not None else sound
    mask = has_audio.numpy()
    w_fit = mixture_posterior(mean_sound.numpy(), mask=mask if mask.any() else None, seed=cfg.seed, labels=group,
                              min_clip_evidence=SOUND_MIN_CLIP_EVIDENCE)
    w = torch.where(has_audio, torch.from_numpy(w_fit.clean).float(), torch.zeros(len(labels)))
    if heads:
        ce, fused = label_evidence_out_of_fold(heads, labels, w), heads["p_av"]
    else:
        ce, fused = label_evidence_ce(ev, labels, w), ev["logits_av"]
    agreement = float((fused.argmax(1) == labels).float().mean()) if len(labels) else 0.0
    r_fit = mixture_posterior(ce.numpy(), seed=cfg.seed, labels=group)
    u = fused_features(ev["z_v"], ev["z_a"], w)
    neighbours = nearest_neighbours(u.to(device or u.device), cfg.knn_k)  # one search for both votes: u is fixed
    evidence = ce
    if cfg.label_evidence == "classifier+features":
        q, _ = _corrected(u, labels, torch.from_numpy(r_fit.clean).float(), num_classes, cfg, device, neighbours)
        others = torch.bincount(labels, minlength=num_classes)[labels] - 1  # other clips of the clip's class
        feature_evidence = -torch.log(q[torch.arange(len(labels)), labels].clamp_min(Q_FLOOR))
        evidence = ce + torch.where(others >= MIN_CLASS_NEIGHBOURS, feature_evidence, torch.zeros_like(ce))
        r_fit = mixture_posterior(evidence.numpy(), seed=cfg.seed, labels=group)
    r = torch.from_numpy(r_fit.clean).float()
    q, y_hat = _corrected(u, labels, r, num_classes, cfg, device, neighbours)
    return {"ell": ell, "sound_evidence": sound, "mean_sound_evidence": mean_sound, "w": w, "ce": ce,
            "label_evidence": evidence, "r": r, "u": u, "q": q, "y_hat": y_hat, "w_fit": w_fit, "r_fit": r_fit,
            "agreement": agreement, "heads": heads}


def _corrected(u: torch.Tensor, labels: torch.Tensor, r: torch.Tensor, num_classes: int, cfg: TrainConfig,
               device: torch.device | None, neighbours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """correction.corrected_labels computed on ``device`` (default: where ``u`` is) with the clips'
    ``neighbours`` (model/neighbours.py), returned on the CPU."""
    device = device or u.device
    q, y_hat = corrected_labels(u.to(device), labels.to(device), r.to(device), num_classes, cfg.tau_p, cfg.knn_k,
                                neighbours.to(device))
    return q.float().cpu(), y_hat.cpu()
