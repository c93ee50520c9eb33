"""What a bench is: the methods, the noise settings of the generated data, and the run's configuration.

Light (no torch): the CLI builds its parser from these vocabularies.

Methods (:data:`METHODS`), all trained for the same total number of epochs E = E1 + E2:

  ntl            the two-phase noise-tolerant model (E1 phase-1 + E2 phase-2 epochs)
  ce             plain cross-entropy; label score = 1 - p^av(given label), suggestion = argmax p^av
  cleanlab       cleanlab's label-quality score (1 - score) and ``find_label_issues`` (the F1 flag) on K-fold
                 out-of-sample probabilities of ``ce``; suggestion = argmax of those probabilities; no mismatch
  cosine         mismatch score = (1 - cos(z^v, z^a)) / 2 of an unweighted contrastive model (CE + InfoNCE)
  ntl_no_cat     ntl without the category-level loss
  ntl_no_w       ntl without w re-weighting
  ntl_no_phase2  ntl with E2 = 0 and E1 = E (same budget)
  ce_clean       ce trained on the TRUE labels: the clean reference for ntl's clean-test accuracy; it has no
                 label or mismatch scores (NaN), only the clean-test accuracy and its timings

Settings syntax (:func:`parse_settings`): comma-separated items ``[sym|asym]R[+mmM]`` or ``mmM``, e.g.
``sym0.4+mm0.2,asym0.2,mm0.2``; R = label-noise rate in [0, 1), M = mismatch rate in [0, 1] (default 0);
``grid`` = the full grid, ``quick`` = sym0.4+mm0.2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from auditor.errors import UserError

METHODS = ("ntl", "ce", "cleanlab", "cosine", "ntl_no_cat", "ntl_no_w", "ntl_no_phase2", "ce_clean")
# TrainConfig fields per method (epochs are filled in by _train_config so that every method gets E1 + E2).
_METHOD_TRAIN: dict[str, dict] = {
    "ntl": {"method": "ntl"},
    "ce": {"method": "ce"},
    "cleanlab": {"method": "ce"},
    "cosine": {"method": "cosine"},
    "ntl_no_cat": {"method": "ntl", "use_cat": False},
    "ntl_no_w": {"method": "ntl", "use_w": False},
    "ntl_no_phase2": {"method": "ntl"},
    "ce_clean": {"method": "ce"},
}
NOISE_SHORT = {"symmetric": "sym", "asymmetric": "asym"}


@dataclass(frozen=True)
class Setting:
    """One noise setting of the generated data: noise_type in {symmetric, asymmetric}, rates in [0, 1]."""

    noise_type: str = "symmetric"
    label_noise: float = 0.0
    mismatch: float = 0.0

    @property
    def name(self) -> str:
        return f"{NOISE_SHORT.get(self.noise_type, self.noise_type)}{self.label_noise:g}+mm{self.mismatch:g}"


GRID: tuple[Setting, ...] = tuple(Setting(nt, r, m) for nt, r in (("symmetric", 0.2), ("symmetric", 0.4),
                                                                   ("symmetric", 0.6), ("asymmetric", 0.2),
                                                                   ("asymmetric", 0.4)) for m in (0.0, 0.2))
QUICK_SETTING = Setting("symmetric", 0.4, 0.2)
_ITEM = re.compile(r"^(?:(?P<type>sym|asym|symmetric|asymmetric)(?P<r>\d*\.?\d+))?"
                   r"(?:\+?mm(?P<m>\d*\.?\d+))?$")


def parse_settings(text: str) -> list[Setting]:
    """``"sym0.4+mm0.2,asym0.2,mm0.2,grid"`` -> settings in order, duplicates dropped (see the module docstring).

    Raises UserError naming the item that does not parse or whose rate is out of range."""
    out: list[Setting] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if not item:
            continue
        if item == "grid":
            found = list(GRID)
        elif item == "quick":
            found = [QUICK_SETTING]
        else:
            m = _ITEM.match(item)
            if m is None or not (m["type"] or m["m"]) or (item.startswith("+")):
                raise UserError(f"--settings: cannot parse {raw.strip()!r}; expected items like sym0.4+mm0.2, "
                                "asym0.2, mm0.2, grid or quick")
            noise_type = {"sym": "symmetric", "asym": "asymmetric"}.get(m["type"] or "sym", m["type"])
            rate, mism = float(m["r"] or 0.0), float(m["m"] or 0.0)
            if not 0.0 <= rate < 1.0:
                raise UserError(f"--settings: {raw.strip()!r}: label-noise rate must be in [0, 1), got {rate:g}")
            if not 0.0 <= mism <= 1.0:
                raise UserError(f"--settings: {raw.strip()!r}: mismatch rate must be in [0, 1], got {mism:g}")
            found = [Setting(noise_type, rate, mism)]
        out += [s for s in found if s not in out]
    if not out:
        raise UserError("--settings: no setting given")
    return out


def parse_methods(text: str) -> tuple[str, ...]:
    """``"ntl,ce"`` -> ("ntl", "ce") in :data:`METHODS` order; raises UserError listing the valid names."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise UserError(f"--methods: unknown method(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from: {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in names)


@dataclass
class BenchConfig:
    """Everything a bench run depends on. ``data`` set = benchmark that data set instead of generating."""

    out: Path
    settings: list[Setting] = field(default_factory=lambda: list(GRID))
    data: Path | None = None
    methods: tuple[str, ...] = METHODS
    seeds: int = 1
    clips: int = 480
    test_clips: int = 160
    # 0 / -1 = the training's automatic schedule for the data size (auditor.train.resolve_schedule); every method
    # gets the same total number of epochs as ntl.
    epochs_phase1: int = 0
    epochs_phase2: int = -1
    batch_size: int = 0  # 0 = the preset's
    warmup_epochs: int = -1  # ntl: w and r stay 1 for this many epochs; -1 = auto
    preset: str = "cpu"
    folds: int = 3  # K of cleanlab's out-of-sample probabilities
    speed: bool = True
    umap_points: tuple[int, ...] = (10_000, 50_000)
    workers: int | None = None  # decode / render processes (default: all cores)
    device: str = "auto"

    def validate(self) -> None:
        if self.seeds < 1:
            raise UserError(f"--seeds must be >= 1, got {self.seeds}")
        if self.epochs_phase1 < 0 or self.epochs_phase2 < -1 or self.warmup_epochs < -1:
            raise UserError("--epochs-phase1 must be >= 0 (0 = auto), --epochs-phase2 and --warmup-epochs >= -1 "
                            "(-1 = auto)")
        if self.folds < 2:
            raise UserError(f"--folds must be >= 2, got {self.folds}")
        if self.data is None and (self.clips < 2 * self.folds or self.test_clips < 0):
            raise UserError(f"--clips must be >= {2 * self.folds} and --test-clips >= 0")
        if self.data is not None:
            for name in ("labels.csv", "truth.csv"):
                if not (Path(self.data) / name).is_file():
                    raise UserError(f"{Path(self.data) / name}: --data needs a data set with labels.csv and "
                                    "truth.csv (the injected truth)")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UserError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}")

    def key(self) -> dict:
        """What a finished run folder must match to be reused."""
        return {"preset": self.preset, "epochs_phase1": self.epochs_phase1, "epochs_phase2": self.epochs_phase2,
                "batch_size": self.batch_size, "warmup_epochs": self.warmup_epochs, "folds": self.folds}


# --quick: small enough for a few minutes on 2 CPU cores (10 trainings: 7 methods + cleanlab's 3 folds); the
# numbers are a smoke check of the pipeline, not evidence. UMAP timing is skipped (its compile alone is minutes).
QUICK = {"settings": [QUICK_SETTING], "clips": 64, "test_clips": 32, "epochs_phase1": 1, "epochs_phase2": 1,
         "warmup_epochs": 1, "batch_size": 16, "umap_points": ()}


def quick_config(out: str | Path, **overrides) -> BenchConfig:
    """The ``--quick`` bench (one setting, small data, few epochs), with ``overrides`` applied."""
    return BenchConfig(out=Path(out), **(QUICK | overrides))


def with_overrides(cfg: BenchConfig, **values) -> BenchConfig:
    """``cfg`` with the given fields replaced where the value is not None."""
    return replace(cfg, **{k: v for k, v in values.items() if v is not None})


def _data_name(cfg: BenchConfig, setting: Setting, seed: int) -> str:
    if cfg.data is not None:
        return f"data-{Path(cfg.data).resolve().name}-s{seed}"
    return f"{setting.name}-n{cfg.clips}-t{cfg.test_clips}-s{seed}"
