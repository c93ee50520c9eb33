"""The mirror test: does a mirrored picture keep its class? It decides TrainConfig.flip_frames "auto".

Most video training mirrors frames left-right at random, which is right where a mirror image is just another
picture of its class (a dog running left or right). Where pictures have a handedness (digits, text, signs, gestures,
a direction of motion) a mirror image is another picture, or another class's (a mirrored 2 is close to a 5), and
mirroring makes the visual encoder learn every class twice and some as each other's mirror images.

At an epoch end of a training that has mirrored no frame yet, with N clips, K classes and given labels y~:
h_i = the visual encoder's features of clip i, h'_i those of its mirror image; linear heads cross-fitted on h
(cross_fit.out_of_fold_transfer) give each clip p_i, and its mirror image p'_i, from the head of its fold, which saw
neither. With

  a  = mean_i [argmax p_i  = y~_i]   the held-out accuracy on the clips,
  a' = mean_i [argmax p'_i = y~_i]   the same heads' accuracy on their mirror images,
  a0 = max_k pi_k                    the accuracy of a head that always answers the largest class,

mirroring **keeps the class** when the mirror images keep at least half of what the heads learnt above the trivial
head: D = (a' - a0) - (a - a0) / 2 >= 0, and the heads have **learnt** the pictures: a - a0 >= LEARNT_Z *
sqrt(a (1 - a) / N) (a one-sided z-test of a above a0). D is the mean of the paired per-clip terms
d_i = [argmax p'_i = y~_i] - [argmax p_i = y~_i] / 2, less a0 / 2, so its standard error is s.d.(d) / sqrt(N); the
test is **decisive** once |D| >= DECISIVE_Z standard errors. A training decides at the first epoch end whose test
is decisive, and at the warm-up's end at the latest (then as keeps_class says). Label noise lowers a and a' alike.

The test must run before any frame is mirrored: an encoder shown mirror images recognises them because it was shown
them, and the test would always pass (likewise for an encoder started from a run that mirrored, --init-from).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from auditor.model.cross_fit import FOLDS, L2_PENALTY, out_of_fold_transfer

# z of the one-sided test that the cross-fitted heads' accuracy is above the trivial head's (p < 1e-4).
LEARNT_Z = 4.0
# The share of the accuracy above the trivial head that the mirror images must keep for mirroring to keep the class.
KEPT_SHARE = 0.5
# Standard errors by which D must differ from 0 for an epoch end to decide (p < 0.0014 each side at one look): near
# the threshold either choice costs little, far from it the first epochs decide.
DECISIVE_Z = 3.0


@dataclass(frozen=True)
class MirrorTest:
    """The test's accuracies (a, a', a0 of the module docstring) over ``clips`` clips, and the standard error of D
    (``margin_se``)."""

    accuracy: float
    mirrored_accuracy: float
    trivial_accuracy: float
    clips: int
    margin_se: float

    @property
    def margin(self) -> float:
        """D = (a' - a0) - KEPT_SHARE (a - a0): what the mirror images keep beyond the share they must keep."""
        return self.mirrored_accuracy - self.trivial_accuracy - KEPT_SHARE * (self.accuracy - self.trivial_accuracy)

    @property
    def learnt(self) -> bool:
        """a - a0 >= LEARNT_Z * sqrt(a (1 - a) / N): the heads have learnt the pictures."""
        a = self.accuracy
        return a - self.trivial_accuracy >= LEARNT_Z * math.sqrt(max(a * (1 - a), 0.0) / max(self.clips, 1))

    @property
    def keeps_class(self) -> bool:
        """D >= 0 and the heads have learnt: mirroring keeps a picture's class."""
        return self.learnt and self.margin >= 0

    @property
    def decisive(self) -> bool:
        """|D| >= DECISIVE_Z standard errors of D: an epoch end may decide by this test."""
        return abs(self.margin) >= DECISIVE_Z * self.margin_se and self.clips > 0

    def summary(self) -> dict[str, float | int | bool]:
        """The figures and the answers, for progress.jsonl."""
        return {"accuracy": round(self.accuracy, 4), "mirrored_accuracy": round(self.mirrored_accuracy, 4),
                "trivial_accuracy": round(self.trivial_accuracy, 4), "clips": self.clips,
                "margin": round(self.margin, 4), "margin_se": round(self.margin_se, 4), "learnt": self.learnt,
                "decisive": self.decisive, "keeps_class": self.keeps_class}


def mirror_test(h: torch.Tensor, h_mirrored: torch.Tensor, labels: torch.Tensor, num_classes: int, *, seed: int = 0,
                device: torch.device | None = None) -> MirrorTest:
    """The test of the clips' visual features ``h`` (N, C) and their mirror images' ``h_mirrored`` (N, C), given
    labels ``labels`` (N,): heads cross-fitted in cross_fit.FOLDS folds with ridge weight cross_fit.L2_PENALTY."""
    n = len(labels)
    if n == 0:
        return MirrorTest(0.0, 0.0, 0.0, 0, 0.0)
    p, p_mirrored = out_of_fold_transfer(h, h_mirrored, labels, num_classes, folds=FOLDS, seed=seed, device=device,
                                         penalties=(L2_PENALTY,))
    right, right_mirrored = (p.argmax(1) == labels).double(), (p_mirrored.argmax(1) == labels).double()
    d = right_mirrored - KEPT_SHARE * right
    se = float(d.std(unbiased=False)) / math.sqrt(n)
    return MirrorTest(accuracy=float(right.mean()), mirrored_accuracy=float(right_mirrored.mean()),
                      trivial_accuracy=float(torch.bincount(labels, minlength=num_classes).max()) / n, clips=n,
                      margin_se=se)
