"""What a bench is: the methods, the noise settings of the generated data, and the run's configuration.

Light (no torch): the CLI builds its parser and help from these vocabularies and defaults. Bad user input raises
UserError naming the value and the valid options.

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

from auditor.data.inject import NOISE_TYPES
from auditor.errors import UserError
from auditor.model.config import TrainConfig

# TrainConfig fields per bench method (auditor.model.config.METHODS is the training's own vocabulary); the
# epochs are filled in by auditor.bench.training.train_config so that every method gets E1 + E2.
METHOD_TRAIN: dict[str, dict] = {
    "ntl": {"method": "ntl"},
    "ce": {"method": "ce"},
    "cleanlab": {"method": "ce"},
    "cosine": {"method": "cosine"},
    "ntl_no_cat": {"method": "ntl", "use_cat": False},
    "ntl_no_w": {"method": "ntl", "use_w": False},
    "ntl_no_phase2": {"method": "ntl"},
    "ce_clean": {"method": "ce"},
}
METHODS: tuple[str, ...] = tuple(METHOD_TRAIN)
# The short names of auditor.data.inject.NOISE_TYPES in setting names and the settings syntax.
NOISE_SHORT: dict[str, str] = dict(zip(NOISE_TYPES, ("sym", "asym"), strict=True))
DATA_NOISE_TYPE = "data"  # the noise type of a given --data set's one setting (its rates measured from truth.csv)


@dataclass(frozen=True)
class Setting:
    """One noise setting of the data: noise_type in NOISE_TYPES (or DATA_NOISE_TYPE), rates in [0, 1]."""

    noise_type: str = NOISE_TYPES[0]
    label_noise: float = 0.0
    mismatch: float = 0.0

    @property
    def name(self) -> str:
        """e.g. ``sym0.4+mm0.2``; :func:`parse_settings` reads it back to the same setting."""
        return f"{NOISE_SHORT.get(self.noise_type, self.noise_type)}{self.label_noise:g}+mm{self.mismatch:g}"


# The full grid: every label-noise rate of each noise type, each with every mismatch rate.
GRID_LABEL_NOISE: dict[str, tuple[float, ...]] = {"symmetric": (0.2, 0.4, 0.6), "asymmetric": (0.2, 0.4)}
GRID_MISMATCH: tuple[float, ...] = (0.0, 0.2)
GRID: tuple[Setting, ...] = tuple(Setting(nt, r, m) for nt, rates in GRID_LABEL_NOISE.items() for r in rates
                                  for m in GRID_MISMATCH)
QUICK_SETTING = Setting("symmetric", 0.4, 0.2)
# Both spellings of a noise type in the syntax, the long ones first so that the alternation tries them first.
_NOISE_NAMES = {name: t for t, short in NOISE_SHORT.items() for name in (t, short)}
_ITEM = re.compile(rf"^(?:(?P<type>{'|'.join(sorted(_NOISE_NAMES, key=len, reverse=True))})(?P<r>\d*\.?\d+))?"
                   r"(?:\+?mm(?P<m>\d*\.?\d+))?$")


def describe_grid() -> str:
    """``"sym 0.2/0.4/0.6, asym 0.2/0.4, each with mm 0 and 0.2"``: :data:`GRID` in words."""
    rates = ", ".join(f"{NOISE_SHORT[t]} {'/'.join(f'{r:g}' for r in rs)}" for t, rs in GRID_LABEL_NOISE.items())
    return f"{rates}, each with mm {' and '.join(f'{m:g}' for m in GRID_MISMATCH)}"


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
            found = [_parse_item(raw.strip(), item)]
        out += [s for s in found if s not in out]
    if not out:
        raise UserError("--settings: no setting given")
    return out


def _parse_item(raw: str, item: str) -> Setting:
    m = _ITEM.match(item)
    if m is None or not (m["type"] or m["m"]) or item.startswith("+"):
        raise UserError(f"--settings: cannot parse {raw!r}; expected items like sym0.4+mm0.2, asym0.2, mm0.2, "
                        "grid or quick")
    rate, mism = float(m["r"] or 0.0), float(m["m"] or 0.0)
    if not 0.0 <= rate < 1.0:
        raise UserError(f"--settings: {raw!r}: label-noise rate must be in [0, 1), got {rate:g}")
    if not 0.0 <= mism <= 1.0:
        raise UserError(f"--settings: {raw!r}: mismatch rate must be in [0, 1], got {mism:g}")
    return Setting(_NOISE_NAMES[m["type"]] if m["type"] else NOISE_TYPES[0], rate, mism)


def parse_methods(text: str) -> tuple[str, ...]:
    """``"ntl,ce"`` -> ("ntl", "ce") in :data:`METHODS` order; raises UserError listing the valid names."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    _check_methods(names, "--methods: ")
    return tuple(m for m in METHODS if m in names)


def _check_methods(names, where: str) -> None:
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise UserError(f"{where}unknown method(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from: {', '.join(METHODS)}")


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
    # The training's defaults: 0 / -1 = its automatic schedule for the data size (resolve_schedule), batch size
    # 0 = the preset's; warm-up = ntl's epochs with w and r kept at 1. Every method gets ntl's total epochs.
    epochs_phase1: int = TrainConfig.epochs_phase1
    epochs_phase2: int = TrainConfig.epochs_phase2
    batch_size: int = TrainConfig.batch_size
    warmup_epochs: int = TrainConfig.warmup_epochs
    preset: str = TrainConfig.preset  # a key of auditor.model.presets.PRESETS
    folds: int = 3  # K of cleanlab's out-of-sample probabilities
    speed: bool = True
    umap_points: tuple[int, ...] = (10_000, 50_000)
    workers: int | None = None  # decode / render processes (default: all cores)
    device: str = TrainConfig.device  # auditor.model.config.DEVICES or cuda:N

    def validate(self) -> None:
        """Raises UserError naming the first bad field (and the valid values); run_benchmark calls it first."""
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
        _check_methods(self.methods, "")
        TrainConfig(preset=self.preset, device=self.device).validate()  # the training's rules for both

    def key(self) -> dict:
        """What a finished run folder must match to be reused."""
        return {"preset": self.preset, "epochs_phase1": self.epochs_phase1, "epochs_phase2": self.epochs_phase2,
                "batch_size": self.batch_size, "warmup_epochs": self.warmup_epochs, "folds": self.folds}

    def data_name(self, setting: Setting, seed: int) -> str:
        """The folder name of one (setting, seed)'s data under OUT/data and of its runs under OUT/runs."""
        if self.data is not None:
            return f"data-{Path(self.data).resolve().name}-s{seed}"
        return f"{setting.name}-n{self.clips}-t{self.test_clips}-s{seed}"

    def run_dir(self, setting: Setting, seed: int, method: str) -> Path:
        """OUT/runs/<data name>/<method>: the run folder of one method on one (setting, seed)."""
        return Path(self.out) / "runs" / self.data_name(setting, seed) / method


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
