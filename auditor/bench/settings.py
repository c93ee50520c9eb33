"""What a bench is: the methods, the data settings, the seed splits and the run's configuration.

Light (no torch): the CLI builds its parser and help from these vocabularies and defaults. Bad user input raises
UserError naming the value and the valid options.

Methods (:data:`METHODS`); "E" = ntl's total epochs E1 + E2 for the data size (resolve_schedule), "e*" = the
epoch a held-out fifth of the clips picks for early stopping (bench.early_stopping: best accuracy, resp. lowest
InfoNCE loss, against its given labels and sounds; a second run on all clips is read at e*):

  ntl            the two-phase noise-tolerant model (E1 phase-1 + E2 phase-2 epochs)
  ce             plain cross-entropy for E epochs; label score = 1 - p^av(given label), suggestion = argmax p^av
  cleanlab       cleanlab's label-quality score (1 - score) and ``find_label_issues`` (its flag) on K-fold
                 out-of-sample probabilities of ``ce`` (K = 5); each fold trains at least as many gradient updates
                 as ntl does on all clips; suggestion = argmax of those probabilities; no mismatch score
  small_loss     ``ce`` early-stopped at e* (the small-loss criterion of Co-teaching / DivideMix): label score =
                 per-clip CE of p^av against the given label, min-max scaled to [0, 1]; suggestion = argmax p^av
                 at e*; no mismatch score
  knn            label score = share of a clip's k nearest neighbours (cosine on z^v of the ``cosine`` model, its
                 run folder shared) whose given label differs; suggestion = their most common label
  cosine         mismatch score = (1 - cos(z^v, z^a)) / 2 of an unweighted contrastive model (CE + InfoNCE, E epochs)
  infonce_loss   mismatch score = per-clip cross-modal InfoNCE l_i of the ``cosine`` model early-stopped at e*,
                 min-max scaled; no label score
  ntl_no_cat     ntl without the category-level loss
  ntl_no_w       ntl without w re-weighting
  ntl_no_phase2  ntl with E2 = 0 and E1 = E (same budget)
  ntl_classifier_evidence  ntl with label_evidence = "classifier" (r from CE(p~, y~) alone)
  ntl_in_sample_evidence  ntl with evidence_folds = 0 (the classifier evidence from the network's own heads, which
                 have fitted every label, instead of heads cross-fitted on its features; method.md departure 17)
  ntl_sce_hybrid ntl with the paper's hybrid loss: SCE's alpha, not 1, for the kept labels in phase 2
                 (hybrid_alpha = 0; method.md departure 12)
  ce_clean       ce trained on the TRUE labels: the clean reference for ntl's clean-test accuracy; it has no
                 label or mismatch scores (NaN), only the clean-test accuracy and its timings

Settings syntax (:func:`parse_settings`): comma-separated items, each ``clean`` or parts in this order, joined by
``+``: ``real`` (real content: a real handwritten digit moving on screen and a real recording of that digit spoken
somewhere in the sound, classes "zero".."nine", a quarter of the mismatched sounds non-speech; ``real`` alone = clean
real content; needs the spoken-digit recordings, see auditor.data.digits), ``symR`` | ``asymR`` (label-noise rate R
in [0, 1)), ``mmM`` (mismatch rate M in [0, 1]), ``ltX`` (class
sizes long-tailed, largest : smallest = X), ``muteF`` (share F of clips with a present but silent sound track),
``durA-B`` (clips of A-B seconds with a short sound event at a random place), ``evtA-B`` (with dur: that event
lasts A-B seconds instead of 2-3; not with real, whose event is the recording), ``clsK`` (K classes; with real
K <= 10), ``mixed`` (each clip in its own container, codecs, frame size, frame rate, sample rate and channel
layout); e.g. ``sym0.4+mm0.2``, ``asym0.2``, ``mm0.2``, ``sym0.2+mm0.1+lt8+mute0.04``,
``sym0.1+mm0.1+dur10-30+evt1-1``, ``sym0.1+mm0.05+mixed``, ``real``, ``real+sym0.1+mm0.08+lt8+mute0.04+mixed``.
Suites: ``table`` (the issue's table, :data:`TABLE`), ``grid`` (:data:`GRID`), ``quick``. Each data-shape part is a
generate_dataset option (:data:`GENERATOR_OPTIONS`: real -> content="digits", lt -> imbalance, mute -> muted, dur
-> clip_seconds, evt -> event_seconds, cls -> num_classes, mixed -> media="mixed"); a bench refuses a setting whose
option the generator lacks.

Seed splits (:data:`SPLITS`): ``dev`` seeds 0.. for choosing defaults, ``report`` seeds 1000.. for the numbers
reported; the two never overlap (at most MAX_SEEDS seeds each).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from auditor.data.noise import NOISE_TYPES
from auditor.errors import UserError
from auditor.model.config import TrainConfig


@dataclass(frozen=True)
class MethodSpec:
    """How the bench trains one method and what it reports."""

    train: dict  # TrainConfig fields of its training (the epochs come from ``schedule``)
    schedule: str = "total"  # key of training.SCHEDULES: "two_phase" | "total" | "folds"
    scores: tuple[str, ...] = ("label", "mismatch")  # the scores it is measured on (the others: NaN)
    run_as: str | None = None  # share this method's run folder (its training) instead of training its own
    classifier: bool = True  # its own classifier gives the clean-test accuracy


_LABEL, _MISMATCH = ("label",), ("mismatch",)
METHOD_SPECS: dict[str, MethodSpec] = {
    "ntl": MethodSpec({"method": "ntl"}, "two_phase"),
    "ce": MethodSpec({"method": "ce"}, scores=_LABEL),
    "cleanlab": MethodSpec({"method": "ce"}, "folds", _LABEL, classifier=False),
    "small_loss": MethodSpec({"method": "ce"}, scores=_LABEL, classifier=False),  # its classifier is ce's
    "knn": MethodSpec({"method": "cosine"}, scores=_LABEL, run_as="cosine", classifier=False),
    "cosine": MethodSpec({"method": "cosine"}),
    "infonce_loss": MethodSpec({"method": "cosine"}, scores=_MISMATCH, classifier=False),
    "ntl_no_cat": MethodSpec({"method": "ntl", "use_cat": False}, "two_phase"),
    "ntl_no_w": MethodSpec({"method": "ntl", "use_w": False}, "two_phase"),
    "ntl_no_phase2": MethodSpec({"method": "ntl"}),
    "ntl_classifier_evidence": MethodSpec({"method": "ntl", "label_evidence": "classifier"}, "two_phase"),
    "ntl_in_sample_evidence": MethodSpec({"method": "ntl", "evidence_folds": 0}, "two_phase"),
    "ntl_sce_hybrid": MethodSpec({"method": "ntl", "hybrid_alpha": 0.0}, "two_phase"),
    "ce_clean": MethodSpec({"method": "ce"}, scores=()),  # its scores would judge the true labels
}
METHODS: tuple[str, ...] = tuple(METHOD_SPECS)
LABEL_BASELINES = ("ce", "cleanlab", "small_loss", "knn")  # ntl's label score is compared with the best of these
# The short names of auditor.data.inject.NOISE_TYPES in setting names and the settings syntax.
NOISE_SHORT: dict[str, str] = dict(zip(NOISE_TYPES, ("sym", "asym"), strict=True))
DATA_NOISE_TYPE = "data"  # the noise type of a given --data set's one setting (its rates measured from truth.csv)
CLEAN_NAME = "clean"


@dataclass(frozen=True)
class Setting:
    """One setting of the generated data: noise_type in NOISE_TYPES (or DATA_NOISE_TYPE), rates in [0, 1], and
    the generator's data shape (imbalance 1 = balanced; seconds / classes None = the generator's own; media
    "uniform" or "mixed", synth.MEDIA; content "procedural" or "digits", generate.CONTENTS)."""

    noise_type: str = NOISE_TYPES[0]
    label_noise: float = 0.0
    mismatch: float = 0.0
    imbalance: float = 1.0
    muted: float = 0.0
    seconds: tuple[float, float] | None = None
    event: tuple[float, float] | None = None  # the long clips' sound event (None: the generator's 2-3 s)
    classes: int | None = None
    media: str = "uniform"
    content: str = "procedural"

    @property
    def name(self) -> str:
        """e.g. ``sym0.4+mm0.2``, ``sym0.2+mm0.1+lt8+mute0.04``, ``sym0.1+mm0.05+mixed``, ``clean``, ``real``,
        ``real+sym0.1+mm0.08``; :func:`parse_settings` reads it back."""
        if self.content != "procedural":
            rest = replace(self, content="procedural").name
            return REAL_PART if rest == CLEAN_NAME else f"{REAL_PART}+{rest}"
        if self == Setting():
            return CLEAN_NAME
        parts = [f"{NOISE_SHORT.get(self.noise_type, self.noise_type)}{self.label_noise:g}", f"mm{self.mismatch:g}"]
        parts += [f"lt{self.imbalance:g}"] if self.imbalance != 1.0 else []
        parts += [f"mute{self.muted:g}"] if self.muted else []
        parts += [f"dur{self.seconds[0]:g}-{self.seconds[1]:g}"] if self.seconds else []
        parts += [f"evt{self.event[0]:g}-{self.event[1]:g}"] if self.event else []
        parts += [f"cls{self.classes}"] if self.classes else []
        parts += [self.media] if self.media != "uniform" else []
        return "+".join(parts)

    def generator_args(self) -> dict:
        """The keyword arguments of auditor.data.generate.generate_dataset for this setting (the data shape only
        where it differs from the default, so data generated before these options existed is still reused)."""
        args = {"label_noise": self.label_noise, "noise_type": self.noise_type, "mismatch": self.mismatch}
        return args | {GENERATOR_OPTIONS[f][0]: getattr(self, f) for f in GENERATOR_OPTIONS
                       if getattr(self, f) != _DEFAULT_SETTING[f]}


_DEFAULT_SETTING = {f.name: f.default for f in fields(Setting)}
# Setting field -> (generate_dataset keyword, what it makes). A setting that needs a keyword generate_dataset does
# not have is refused (BenchConfig.validate) with this description.
GENERATOR_OPTIONS: dict[str, tuple[str, str]] = {
    "imbalance": ("imbalance", "long-tailed class sizes"),
    "muted": ("muted", "clips with a present but silent sound track"),
    "seconds": ("clip_seconds", "long clips with a short sound event at a random place"),
    "event": ("event_seconds", "a chosen length of the long clips' sound event"),
    "classes": ("num_classes", "a chosen number of classes (up to synth.MAX_CLASSES)"),
    "media": ("media", "clips in mixed containers, codecs, frame sizes, frame rates and sample rates"),
    "content": ("content", "real content (handwritten digits and spoken-digit recordings)"),
}
REAL_PART = "real"  # the settings part of content="digits"

# The table: no noise at all (false alarms), low noise, long-tailed ~8:1 with 4% muted sound tracks,
# asymmetric 40%, symmetric 40% + 20% mismatch (the headline), symmetric 60% + 20% mismatch.
TABLE: tuple[Setting, ...] = (
    Setting(), Setting("symmetric", 0.1, 0.05), Setting("symmetric", 0.2, 0.1, imbalance=8.0, muted=0.04),
    Setting("asymmetric", 0.4, 0.0), Setting("symmetric", 0.4, 0.2), Setting("symmetric", 0.6, 0.2))
# The earlier grid: every label-noise rate of each noise type, each with every mismatch rate.
GRID_LABEL_NOISE: dict[str, tuple[float, ...]] = {"symmetric": (0.2, 0.4, 0.6), "asymmetric": (0.2, 0.4)}
GRID_MISMATCH: tuple[float, ...] = (0.0, 0.2)
GRID: tuple[Setting, ...] = tuple(Setting(nt, r, m) for nt, rates in GRID_LABEL_NOISE.items() for r in rates
                                  for m in GRID_MISMATCH)
QUICK_SETTING = Setting("symmetric", 0.4, 0.2)
SUITES: dict[str, tuple[Setting, ...]] = {"table": TABLE, "grid": GRID, "quick": (QUICK_SETTING,),
                                          CLEAN_NAME: (Setting(),)}
# Both spellings of a noise type in the syntax, the long ones first so that the alternation tries them first.
_NOISE_NAMES = {name: t for t, short in NOISE_SHORT.items() for name in (t, short)}
_NUM = r"\d*\.?\d+"
_ITEM = re.compile(rf"^(?:(?P<real>{REAL_PART})(?:\+(?=.)|$))?"
                   rf"(?:(?P<type>{'|'.join(sorted(_NOISE_NAMES, key=len, reverse=True))})(?P<r>{_NUM}))?"
                   rf"(?:\+?mm(?P<m>{_NUM}))?(?:\+?lt(?P<lt>{_NUM}))?(?:\+?mute(?P<mute>{_NUM}))?"
                   rf"(?:\+?dur(?P<d0>{_NUM})-(?P<d1>{_NUM}))?(?:\+?evt(?P<e0>{_NUM})-(?P<e1>{_NUM}))?"
                   rf"(?:\+?cls(?P<cls>\d+))?(?:\+?(?P<media>mixed))?$")
_EXAMPLES = ("sym0.4+mm0.2, asym0.2, mm0.2, sym0.2+lt8+mute0.04, sym0.1+mm0.05+mixed, real+sym0.1+mm0.08, clean, "
             "table, grid or quick")

# Seed splits: the first seed of each; a split has at most MAX_SEEDS seeds so that they never overlap.
SPLITS: dict[str, int] = {"dev": 0, "report": 1000}
MAX_SEEDS = 1000


def describe_settings(settings) -> str:
    """``"clean, sym0.1+mm0.05, ..."``: the names of ``settings``."""
    return ", ".join(s.name for s in settings)


def describe_grid() -> str:
    """``"sym 0.2/0.4/0.6, asym 0.2/0.4, each with mm 0 and 0.2"``: :data:`GRID` in words."""
    rates = ", ".join(f"{NOISE_SHORT[t]} {'/'.join(f'{r:g}' for r in rs)}" for t, rs in GRID_LABEL_NOISE.items())
    return f"{rates}, each with mm {' and '.join(f'{m:g}' for m in GRID_MISMATCH)}"


def parse_settings(text: str) -> list[Setting]:
    """``"sym0.4+mm0.2,asym0.2,mm0.2,grid"`` -> settings in order, duplicates dropped (see the module docstring).

    Raises UserError naming the item that does not parse or whose value is out of range."""
    out: list[Setting] = []
    for raw in text.split(","):
        item = raw.strip().lower()
        if item:
            out += [s for s in SUITES.get(item) or [_parse_item(raw.strip(), item)] if s not in out]
    if not out:
        raise UserError("--settings: no setting given")
    return out


def _parse_item(raw: str, item: str) -> Setting:
    m = _ITEM.match(item)
    if m is None or not any(m.groupdict().values()) or item.startswith("+") or "++" in item:
        raise UserError(f"--settings: cannot parse {raw!r}; expected items like {_EXAMPLES}")
    rate, mism, lt, mute = (float(m[g] or d) for g, d in (("r", 0.0), ("m", 0.0), ("lt", 1.0), ("mute", 0.0)))
    for ok, what in ((0.0 <= rate < 1.0, f"label-noise rate must be in [0, 1), got {rate:g}"),
                     (0.0 <= mism <= 1.0, f"mismatch rate must be in [0, 1], got {mism:g}"),
                     (1.0 <= lt <= 1000.0, f"lt (largest : smallest class) must be in [1, 1000], got {lt:g}"),
                     (0.0 <= mute < 1.0, f"mute share must be in [0, 1), got {mute:g}"),
                     (not m["d0"] or 0 < float(m["d0"]) <= float(m["d1"]), "dur needs 0 < A <= B seconds"),
                     (not m["e0"] or (m["d0"] and 0 < float(m["e0"]) <= float(m["e1"])),
                      "evt needs dur (long clips) and 0 < A <= B seconds"),
                     (not m["cls"] or int(m["cls"]) >= 2, "cls needs at least 2 classes"),
                     (not m["real"] or not m["e0"], "evt is not for real content: its event is the recording"),
                     (not m["real"] or not m["cls"] or int(m["cls"]) <= 10, "real content has at most 10 classes")):
        if not ok:
            raise UserError(f"--settings: {raw!r}: {what}")
    return Setting(_NOISE_NAMES[m["type"]] if m["type"] else NOISE_TYPES[0], rate, mism, lt, mute,
                   (float(m["d0"]), float(m["d1"])) if m["d0"] else None,
                   (float(m["e0"]), float(m["e1"])) if m["e0"] else None, int(m["cls"]) if m["cls"] else None,
                   m["media"] or "uniform", "digits" if m["real"] else "procedural")


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


def check_generator(settings) -> None:
    """Raises UserError for the first setting that needs a generate_dataset option it does not have, naming it,
    or, for real content, when the spoken-digit recordings are missing (naming their folder)."""
    from auditor.data.generate import generate_dataset  # no torch, but av: only when a bench is about to run

    have = inspect.signature(generate_dataset).parameters
    for s in settings:
        for f, (keyword, what) in GENERATOR_OPTIONS.items():
            if getattr(s, f) != _DEFAULT_SETTING[f] and keyword not in have:
                raise UserError(f"--settings: {s.name} needs {what}, but the generator "
                                f"(auditor.data.generate.generate_dataset) has no {keyword}= option yet; "
                                "leave this setting out or add the option to the generator first")
    if any(s.content == "digits" for s in settings):
        from auditor.data.digits import fsdd_recordings

        fsdd_recordings()  # before any setting runs, not when the first real one is generated


@dataclass
class BenchConfig:
    """Everything a bench run depends on. ``data`` set = benchmark that data set instead of generating."""

    out: Path
    settings: list[Setting] = field(default_factory=lambda: list(TABLE))
    data: Path | None = None
    methods: tuple[str, ...] = METHODS
    seeds: int = 3
    split: str = "dev"  # a key of SPLITS: which seed range
    clips: int = 600
    test_clips: int = 200
    # The training's defaults: 0 / -1 = its automatic schedule for the data size (resolve_schedule), batch size
    # 0 = the preset's; warm-up = ntl's epochs with w and r kept at 1. Every method gets ntl's total epochs.
    epochs_phase1: int = TrainConfig.epochs_phase1
    epochs_phase2: int = TrainConfig.epochs_phase2
    batch_size: int = TrainConfig.batch_size
    warmup_epochs: int = TrainConfig.warmup_epochs
    preset: str = TrainConfig.preset  # a key of auditor.model.presets.PRESETS
    folds: int = 5  # K of cleanlab's out-of-sample probabilities (cleanlab's own default)
    knn_k: int = TrainConfig.knn_k  # neighbours of the knn baseline: ntl's q^knn neighbours, not tuned here
    speed: bool = True
    umap_points: tuple[int, ...] = (10_000, 50_000)
    workers: int | None = None  # decode / render processes (default: all cores)
    device: str = TrainConfig.device  # auditor.model.config.DEVICES or cuda:N

    def validate(self) -> None:
        """Raises UserError naming the first bad field (and the valid values); run_benchmark calls it first."""
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise UserError(f"--seeds must be in [1, {MAX_SEEDS}], got {self.seeds}")
        if self.split not in SPLITS:
            raise UserError(f"unknown --split {self.split!r}; choose one of: {', '.join(SPLITS)}")
        if self.epochs_phase1 < 0 or self.epochs_phase2 < -1 or self.warmup_epochs < -1:
            raise UserError("--epochs-phase1 must be >= 0 (0 = auto), --epochs-phase2 and --warmup-epochs >= -1 "
                            "(-1 = auto)")
        if self.folds < 2 or self.knn_k < 1:
            raise UserError(f"--folds must be >= 2 and --knn-k >= 1, got {self.folds} and {self.knn_k}")
        if self.data is None and (self.clips < 2 * self.folds or self.test_clips < 0):
            raise UserError(f"--clips must be >= {2 * self.folds} and --test-clips >= 0")
        if self.data is not None:
            for name in ("labels.csv", "truth.csv"):
                if not (Path(self.data) / name).is_file():
                    raise UserError(f"{Path(self.data) / name}: --data needs a data set with labels.csv and "
                                    "truth.csv (the injected truth)")
        else:
            check_generator(self.settings)
        _check_methods(self.methods, "")
        TrainConfig(preset=self.preset, device=self.device).validate()  # the training's rules for both

    def seed_list(self) -> list[int]:
        """The seeds of this split: SPLITS[split] .. + seeds - 1 (data and training seeds alike)."""
        return list(range(SPLITS[self.split], SPLITS[self.split] + self.seeds))

    def key(self) -> dict:
        """What a finished run folder must match to be reused."""
        return {"preset": self.preset, "epochs_phase1": self.epochs_phase1, "epochs_phase2": self.epochs_phase2,
                "batch_size": self.batch_size, "warmup_epochs": self.warmup_epochs, "folds": self.folds,
                "knn_k": self.knn_k}

    def data_name(self, setting: Setting, seed: int) -> str:
        """The folder name of one (setting, seed)'s data under OUT/data and of its runs under OUT/runs."""
        if self.data is not None:
            return f"data-{Path(self.data).resolve().name}-s{seed}"
        return f"{setting.name}-n{self.clips}-t{self.test_clips}-s{seed}"

    def run_dir(self, setting: Setting, seed: int, method: str) -> Path:
        """OUT/runs/<data name>/<method>: the run folder of one method on one (setting, seed)."""
        return Path(self.out) / "runs" / self.data_name(setting, seed) / method


# --quick: small enough for a few minutes on 2 CPU cores; the numbers are a smoke check of the pipeline, not
# evidence. UMAP timing is skipped (its compile alone is minutes).
QUICK = {"settings": [QUICK_SETTING], "seeds": 1, "clips": 64, "test_clips": 32, "epochs_phase1": 1,
         "epochs_phase2": 1, "warmup_epochs": 1, "batch_size": 16, "umap_points": ()}


def quick_config(out: str | Path, **overrides) -> BenchConfig:
    """The ``--quick`` bench (one setting, small data, few epochs), with ``overrides`` applied."""
    return BenchConfig(out=Path(out), **(QUICK | overrides))


def with_overrides(cfg: BenchConfig, **values) -> BenchConfig:
    """``cfg`` with the given fields replaced where the value is not None."""
    return replace(cfg, **{k: v for k, v in values.items() if v is not None})
