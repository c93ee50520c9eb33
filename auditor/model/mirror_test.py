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

the heads have **learnt** the pictures when a - a0 >= LEARNT_Z * sqrt(a (1 - a) / N) (a one-sided z-test of a
above a0), and then mirroring **keeps the class** when a' - a0 >= KEPT_SHARE * (a - a0): the mirror images keep at
least half of what the heads learnt above the trivial head. Label noise lowers a and a' alike.

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


@dataclass(frozen=True)
class MirrorTest:
    """The test's accuracies (a, a', a0 of the module docstring) over ``clips`` clips."""

    accuracy: float
    mirrored_accuracy: float
    trivial_accuracy: float
    clips: int

    @property
    def learnt(self) -> bool:
        """a - a0 >= LEARNT_Z * sqrt(a (1 - a) / N): the heads have learnt the pictures, so the test can decide."""
        a = self.accuracy
        return a - self.trivial_accuracy >= LEARNT_Z * math.sqrt(max(a * (1 - a), 0.0) / max(self.clips, 1))

    @property
    def keeps_class(self) -> bool:
        """a' - a0 >= KEPT_SHARE (a - a0), and the heads have learnt: mirroring keeps a picture's class."""
        gain = self.accuracy - self.trivial_accuracy
        return self.learnt and self.mirrored_accuracy - self.trivial_accuracy >= KEPT_SHARE * gain

    def summary(self) -> dict[str, float | int | bool]:
        """The figures and both answers, for progress.jsonl."""
        return {"accuracy": round(self.accuracy, 4), "mirrored_accuracy": round(self.mirrored_accuracy, 4),
                "trivial_accuracy": round(self.trivial_accuracy, 4), "clips": self.clips, "learnt": self.learnt,
                "keeps_class": self.keeps_class}


def mirror_test(h: torch.Tensor, h_mirrored: torch.Tensor, labels: torch.Tensor, num_classes: int, *, seed: int = 0,
                device: torch.device | None = None) -> MirrorTest:
    """The test of the clips' visual features ``h`` (N, C) and their mirror images' ``h_mirrored`` (N, C), given
    labels ``labels`` (N,): heads cross-fitted in cross_fit.FOLDS folds with ridge weight cross_fit.L2_PENALTY."""
    p, p_mirrored = out_of_fold_transfer(h, h_mirrored, labels, num_classes, folds=FOLDS, seed=seed, device=device,
                                         penalties=(L2_PENALTY,))
    n = len(labels)
    if n == 0:
        return MirrorTest(0.0, 0.0, 0.0, 0)
    counts = torch.bincount(labels, minlength=num_classes)
    return MirrorTest(accuracy=float((p.argmax(1) == labels).float().mean()),
                      mirrored_accuracy=float((p_mirrored.argmax(1) == labels).float().mean()),
                      trivial_accuracy=float(counts.max()) / n, clips=n)
