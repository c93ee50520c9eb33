"""Per-clip estimates of a model over a whole data set: the evaluation pass, l_i, and w_i, r_i, u_i, q_i, y^_i.

Called at every epoch end by the training loop and once by scoring, so both read the same numbers from the same
code (method.md phase 1 step 2, phase 2 steps 1-4). N clips, K classes, d embedding size.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from auditor.data.cache import ClipArrays
from auditor.model.config import TrainConfig
from auditor.model.correction import corrected_labels, fused_features
from auditor.model.inputs import batch_inputs
from auditor.model.losses import cross_modal_infonce
from auditor.model.network import AudioVisualNet
from auditor.model.noise_estimation import clean_posterior
from auditor.model.presets import get_preset

# q_i is clipped here before its log, so a zero vote costs a finite, bounded amount of evidence.
Q_FLOOR = 1e-6
# Clips per chunk when l_i is computed in evaluation mode: every clip of a chunk sees the same negatives.
EVAL_NEGATIVES_CHUNK = 4096
EVAL_BATCH = 128


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only (bfloat16 needs no loss scaling); a no-op context on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


def evaluate(model: AudioVisualNet, arrays: ClipArrays, indices: np.ndarray, cfg: TrainConfig,
             device: torch.device, batch_size: int = EVAL_BATCH) -> dict[str, torch.Tensor]:
    """Evaluation-mode forward pass over ``indices``: z_v, z_a (n, d), logits_av/_a/_v (n, K) on the CPU."""
    preset = get_preset(cfg.preset)
    was_training = model.training
    model.eval()
    outs: dict[str, list[torch.Tensor]] = {k: [] for k in ("z_v", "z_a", "logits_av", "logits_a", "logits_v")}
    with torch.no_grad(), autocast(device):
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            frames, mel = batch_inputs(arrays, idx, preset.num_frames, preset.audio_frames, None)
            out = model(frames.to(device), mel.to(device))
            for k in outs:
                outs[k].append(getattr(out, k).float().cpu())
    model.train(was_training)
    return {k: torch.cat(v) if v else torch.zeros(0) for k, v in outs.items()}


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
