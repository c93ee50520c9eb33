"""The configuration of a run (TrainConfig) and the automatic training schedule. Light: no torch.

Read by the training loop, by scoring (which re-creates the model a run trained) and by the CLI and the app,
which list the vocabularies below (METHODS, LABEL_EVIDENCE, DEVICES) without importing the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from auditor.errors import UserError
from auditor.model.presets import FEATURES_PRESET, Preset, get_preset

# ntl = the two-phase noise-tolerant model; ce = plain cross-entropy; cosine = CE + unweighted InfoNCE.
METHODS = ("ntl", "ce", "cosine")
# Evidence the r_i mixture is fitted on (see TrainConfig.label_evidence).
LABEL_EVIDENCE = ("classifier", "classifier+features")
DEVICES = ("auto", "cpu", "cuda")
# Whether training mirrors a clip's frames left-right at random (TrainConfig.flip_frames): auto = decided from the
# data early in training (model/mirror_test.py), always, never.
FLIP_FRAMES = ("auto", "always", "never")


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run (stored in config.json and in the checkpoint)."""

    preset: str = "cpu"
    method: str = "ntl"  # one of METHODS
    epochs_phase1: int = 0  # 0 = auto (resolve_schedule): enough epochs for MIN_UPDATES gradient steps
    epochs_phase2: int = -1  # -1 = auto; 0 = no phase 2
    warmup_epochs: int = -1  # w and r stay 1 until this many epochs are done; -1 = auto (half of phase 1, >= 2)
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
    # The classifier part of the label evidence comes from linear heads cross-fitted in this many folds on the
    # encoders' frozen features (model/cross_fit.py), so a clip is judged by heads that did not fit its label;
    # 0 = from the network's own heads, which have fitted every clip (method.md phase 2 step 1).
    evidence_folds: int = 5
    # Robustness on real data (docs/method.md, "Departures"): logit adjustment tau for long-tailed classes (0 =
    # off), per-class normalisation of the mixtures' evidence, momentum of the per-clip estimates between epochs.
    logit_adjust: float = 1.0
    # SCE's CE weight alpha in phase 2's kept-label term r_i * SCE(p_i, y~_i) is max(hybrid_alpha, SCE's alpha for
    # K classes): the clips the mixture keeps are fitted with the full CE (docs/method.md, departure 12); a value at
    # or below losses.SCE_ALPHA gives the paper's hybrid loss.
    hybrid_alpha: float = 1.0
    # Phase 1 fits the heads with plain CE until r's warm-up gate opens (the label mixture has found noisy labels),
    # then with SCE; False = SCE from the first step, as the paper (docs/method.md, departure 19).
    ce_until_label_noise: bool = True
    class_normalise: bool = True
    estimate_momentum: float = 0.5
    pretrained: bool = False  # use cached ImageNet weights for the visual ResNet-18 when available
    # Mirror a clip's frames left-right at random in training (one of FLIP_FRAMES; docs/method.md, "Inputs"): most
    # video training always does, but where pictures have a handedness (text, digits, signs, gestures, a direction of
    # motion) a mirrored picture is another picture. "auto" trains unmirrored until the mirror test
    # (model/mirror_test.py) has decided whether mirroring keeps a picture's class, and mirrors from then on if so.
    flip_frames: str = "auto"
    # A features file (data/feature_file.py) of per-clip vectors to train on instead of the decoded clips (the
    # features preset); its vector sizes D_v, D_a are filled in from the file (model/sources.prepare_inputs).
    features: str = ""
    visual_dim: int = 0
    audio_dim: int = 0
    init_from: str = ""  # a run folder whose checkpoint's matching weights start the model (checkpoint.init_from_run)
    # Processes that make the training batches (model/loader.py): 0 = in the training process, -1 = auto (0 on the
    # CPU, where they would compete with the model for the cores; up to 8 per GPU).
    loader_workers: int = -1
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        """Raise UserError naming the bad value and the valid options."""
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        get_preset(self.preset)
        if bool(self.features) != (self.preset == FEATURES_PRESET):
            raise UserError(f"the {FEATURES_PRESET} preset goes with a features file (--features FILE), and a features "
                            f"file with the {FEATURES_PRESET} preset (got preset {self.preset!r}, features "
                            f"{self.features or 'none'})")
        if self.label_evidence not in LABEL_EVIDENCE:
            raise UserError(f"unknown label evidence {self.label_evidence!r}; choose one of: {', '.join(LABEL_EVIDENCE)}")
        if self.flip_frames not in FLIP_FRAMES:
            raise UserError(f"unknown --flip-frames {self.flip_frames!r}; choose one of: {', '.join(FLIP_FRAMES)}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise UserError(f"unknown device {self.device!r}; choose one of: {', '.join(DEVICES)}")
        if self.loader_workers < -1:
            raise UserError(f"--loader-workers must be >= 0 (0 = in the training process) or -1 (auto), got "
                            f"{self.loader_workers}")
        if self.evidence_folds < 0 or self.evidence_folds == 1:
            raise UserError(f"evidence_folds must be 0 (the network's own heads) or >= 2, got {self.evidence_folds}")
        if self.epochs_phase1 < 0 or self.epochs_phase2 < -1:
            raise UserError("--epochs-phase1 must be >= 1 (0 = auto) and --epochs-phase2 >= 0 (-1 = auto)")

    @property
    def epochs_total(self) -> int:
        return self.epochs_phase1 + (self.epochs_phase2 if self.method == "ntl" else 0)


# The automatic schedule: at least the preset's min_epochs epochs and at least MIN_UPDATES gradient steps (a small
# data set gets more epochs, so it is not under-fitted), at most MAX_AUTO_EPOCHS; phase 1 takes PHASE1_SHARE of them.
# A large data set (one that those epochs would show the model more than MAX_AUTO_PASSES clips) gets
# MAX_AUTO_PASSES // N epochs instead, at least MIN_LARGE_EPOCHS: what grows with N is the number of clips an epoch's
# gradient steps and epoch-end estimate see, not what the model needs to learn (docs/method.md, departure 13).
MIN_UPDATES = 216
MAX_AUTO_EPOCHS = 100
PHASE1_SHARE = 14 / 24
MAX_AUTO_PASSES = 1_200_000
MIN_LARGE_EPOCHS = 8
# The features preset's smallest automatic batch (auto_batch_size): the cpu preset's, in-batch negatives enough for
# the InfoNCE.
MIN_FEATURE_BATCH = 64


def auto_epochs(n_clips: int, batch_size: int, min_epochs: int) -> int:
    """E of the automatic schedule for ``n_clips`` clips in batches of ``batch_size``: min(MAX_AUTO_EPOCHS,
    max(min_epochs, ceil(MIN_UPDATES / steps per epoch))), or max(MIN_LARGE_EPOCHS, MAX_AUTO_PASSES // N) when
    that many epochs would show the model more than MAX_AUTO_PASSES clips."""
    steps_per_epoch = max(1, n_clips // batch_size)
    total = min(MAX_AUTO_EPOCHS, max(min_epochs, math.ceil(MIN_UPDATES / steps_per_epoch)))
    if total * n_clips > MAX_AUTO_PASSES:
        total = max(MIN_LARGE_EPOCHS, MAX_AUTO_PASSES // n_clips)
    return total


def auto_batch_size(n_clips: int, preset: Preset) -> int:
    """The automatic batch for ``n_clips`` clips: the preset's; for MLPs over a features file, which memorise a
    data set's wrong labels and swapped pairs with the passes over its fixed vectors rather than with the number of
    updates, clamp(floor(N * min_epochs / MIN_UPDATES), MIN_FEATURE_BATCH, the preset's), so that a small data set
    reaches MIN_UPDATES updates in fewer epochs (auto_epochs) instead of in up to MAX_AUTO_EPOCHS passes."""
    if preset.encoder != "vectors":
        return preset.batch_size
    return max(MIN_FEATURE_BATCH, min(preset.batch_size, n_clips * preset.min_epochs // MIN_UPDATES))


def training_batch(cfg: TrainConfig, n_clips: int) -> int:
    """The global batch of a training of ``cfg`` on ``n_clips`` clips: ``cfg.batch_size``, or auto_batch_size."""
    return cfg.batch_size or auto_batch_size(n_clips, get_preset(cfg.preset))


def resolve_schedule(cfg: TrainConfig, n_clips: int) -> TrainConfig:
    """A copy of ``cfg`` with the automatic epoch counts (0 / -1) replaced by numbers for ``n_clips`` clips."""
    preset = get_preset(cfg.preset)
    total = auto_epochs(n_clips, training_batch(cfg, n_clips), preset.min_epochs)
    e1, e2, warm = cfg.epochs_phase1, cfg.epochs_phase2, cfg.warmup_epochs
    if cfg.method != "ntl":
        e1, e2 = e1 or total, 0
    else:
        if e1 == 0:
            e1 = round(total * PHASE1_SHARE) if e2 < 0 else max(1, total - e2)
        if e2 < 0:
            e2 = max(0, total - e1) if cfg.epochs_phase1 == 0 else round(e1 * (1 - PHASE1_SHARE) / PHASE1_SHARE)
    if warm < 0:
        warm = max(2, round(e1 / 2))
    return dataclasses.replace(cfg, epochs_phase1=e1, epochs_phase2=e2, warmup_epochs=min(warm, e1))
