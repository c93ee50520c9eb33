"""The loss terms of method.md, one function per equation. N = batch size, K classes, d embedding size.

All per-sample functions return (N,) tensors so callers can weight them (w_i, r_i) before averaging.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# SCE defaults (Wang et al., ICCV 2019): alpha weights CE, beta weights RCE, A = log of a clipped zero.
SCE_ALPHA = 0.1
SCE_BETA = 1.0
SCE_A = -4.0
# Wang et al.'s constants for 100 classes (CIFAR-100): the CE term must carry more weight as K grows, or the
# bounded reverse term dominates and the model under-fits.
SCE_ALPHA_100, SCE_BETA_100 = 6.0, 0.1


def class_prior(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """pi_k = max(n_k, 1) / max(N, 1): the class frequencies of N given labels, a class without any counted as one
    clip so that log pi and 1 / pi stay finite. (K,) float32."""
    return torch.bincount(labels, minlength=num_classes).float().clamp_min(1) / max(len(labels), 1)


def sce_constants(num_classes: int) -> tuple[float, float]:
    """(alpha, beta) for K classes: the paper's 10-class values up to K = 10, its 100-class values from K = 100,
    and log-linear in K between them (alpha = 0.1 * 60^t, beta = 0.1^t with t = log10(K / 10))."""
    t = min(1.0, max(0.0, math.log10(max(num_classes, 1) / 10)))
    return SCE_ALPHA * (SCE_ALPHA_100 / SCE_ALPHA) ** t, SCE_BETA * (SCE_BETA_100 / SCE_BETA) ** t


def sce(logits: torch.Tensor, target: torch.Tensor, alpha: float = SCE_ALPHA, beta: float = SCE_BETA,
        A: float = SCE_A) -> torch.Tensor:
    """Symmetric cross-entropy per sample: SCE(p, y) = alpha*CE(p, y) + beta*RCE(p, y).

    ``target`` is (N,) class indices or (N, K) distributions q. RCE(p, q) = -sum_k p_k * log q_k with log 0 := A,
    which for a one-hot y is RCE(p, y) = -A * (1 - p_y). Returns (N,)."""
    log_p = F.log_softmax(logits, dim=-1)
    q = F.one_hot(target, logits.shape[-1]).to(log_p.dtype) if target.dim() == 1 else target
    ce = -(q * log_p).sum(dim=-1)
    log_q = torch.where(q > 0, torch.log(q.clamp_min(1e-38)), torch.full_like(q, A)).clamp_min(A)
    rce = -(log_p.exp() * log_q).sum(dim=-1)
    return alpha * ce + beta * rce


def soft_cross_entropy(logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """CE(p, q) = -sum_k q_k log p_k per sample, for a (N, K) target distribution q. Returns (N,)."""
    return -(q * F.log_softmax(logits, dim=-1)).sum(dim=-1)


def cross_modal_infonce(z_v: torch.Tensor, z_a: torch.Tensor, tau: float = 0.1,
                        labels: torch.Tensor | None = None) -> torch.Tensor:
    """Per-pair symmetric cross-modal InfoNCE (method.md phase 1, step 2), (N,) with the batch as negatives:

    l_i = -1/2 * [log softmax_j(z_i^v . z_j^a / tau)_i + log softmax_j(z_i^a . z_j^v / tau)_i].
    With ``labels`` (N,), clips j != i of clip i's label are left out of its negatives, so that l_i measures
    whether the sound belongs to this picture rather than how many clips share its class; with (N, m) labels
    (classes a clip may belong to), clips j sharing any of them with clip i."""
    # (N, N): row i = visual i against every sound; scaled and masked in place (the product's and the scaling's
    # gradients do not read their outputs)
    sim = (z_v @ z_a.T).div_(tau)
    idx = torch.arange(sim.shape[0], device=sim.device)
    if labels is not None:
        sets = labels[:, None] if labels.dim() == 1 else labels  # (N, m)
        # (N, K) 0/1 class sets; j shares a class with i where their product is > 0 (one matmul, not (N, N, m, m))
        member = torch.zeros(len(sets), int(sets.max()) + 1, device=sim.device).scatter_(1, sets, 1.0)
        same = (member @ member.T > 0).fill_diagonal_(False)  # (N, N), j != i
        sim.masked_fill_(same, -float("inf"))
    v2a = F.cross_entropy(sim, idx, reduction="none")
    a2v = F.cross_entropy(sim.T, idx, reduction="none")
    return 0.5 * (v2a + a2v)


def category_contrastive(z_v: torch.Tensor, z_a: torch.Tensor, mu_v: torch.Tensor, mu_a: torch.Tensor,
                         target: torch.Tensor, r: torch.Tensor, w: torch.Tensor | None = None,
                         tau_c: float = 0.1) -> torch.Tensor:
    """Category-level contrastive loss (method.md phase 1, step 3), a scalar:

    L_cat = 1/2 * mean_i r_i * [CE(softmax_k(z_i^v . mu_k^a / tau_c), t_i) + w_i * CE(softmax_k(z_i^a . mu_k^v / tau_c), t_i)]

    Each modality is pulled toward the OTHER modality's class prototype (mu: (K, d) unit rows). ``w`` (optional,
    our addition, default all ones = method.md exactly) also weights the audio-side term by the correspondence
    probability, so a sound that does not belong to its picture is not pulled toward the picture's class."""
    v_term = F.cross_entropy(z_v @ mu_a.T / tau_c, target, reduction="none")
    a_term = F.cross_entropy(z_a @ mu_v.T / tau_c, target, reduction="none")
    if w is not None:
        a_term = w * a_term
    return 0.5 * (r * (v_term + a_term)).mean()


def hybrid_loss(logits: torch.Tensor, given: torch.Tensor, q: torch.Tensor, r: torch.Tensor,
                alpha: float = SCE_ALPHA, beta: float = SCE_BETA) -> torch.Tensor:
    """Hybrid supervision per sample (method.md phase 2, step 5): r_i * SCE(p_i, y~_i) + (1 - r_i) * CE(p_i, q_i).
    Returns (N,)."""
    return r * sce(logits, given, alpha, beta) + (1.0 - r) * soft_cross_entropy(logits, q)
