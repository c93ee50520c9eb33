"""The reports in OUT: results.csv, speed.csv, targets.csv, results.md (markdown tables) and the plots
label_ap.html / mismatch_ap.html (+ .png when kaleido can render them). Reads the three tables only: no torch.

In results.md a number is shown with METRICS' digits, ``–`` where it is NaN (the metric does not apply)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import plotly.express as px

from auditor.atomic import atomic_write_text
from auditor.bench.results import METRICS, SPEED_COLUMNS, TARGET_COLUMNS, summarise
from auditor.bench.settings import DATA_NOISE_TYPE, METHODS


def write_reports(out: Path, results: pd.DataFrame, speed: pd.DataFrame, targets: pd.DataFrame, *,
                  seeds: int = 1) -> list[Path]:
    """results.csv, speed.csv, targets.csv, results.md and the plots; returns the paths written."""
    out = Path(out)
    files = [out / "results.csv", out / "speed.csv", out / "targets.csv"]
    atomic_write_text(files[0], results.to_csv(index=False))
    atomic_write_text(files[1], speed.to_csv(index=False))
    atomic_write_text(files[2], targets.to_csv(index=False))
    plots, png_note = write_plots(out, results)
    files += plots
    atomic_write_text(out / "results.md", render_markdown(results, speed, targets, seeds=seeds, plots=plots,
                                                          png_note=png_note))
    return [out / "results.md", *files]


def render_markdown(results: pd.DataFrame, speed: pd.DataFrame, targets: pd.DataFrame, *, seeds: int = 1,
                    plots: list[Path] = (), png_note: str = "") -> str:
    """results.md: an introduction, then the sections Targets, Quality per setting (mean ± std over seeds when
    ``seeds`` > 1), Speed and, when ``plots`` are given, Plots."""
    lines = ["# AV Auditor benchmark", ""]
    lines += [f"Methods on the same encoders, preset and data; {'mean ± std over ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}. "
              "Label scores: AP / AUROC against truth's label_is_noisy; mismatch: against is_mismatched; "
              "F1 at the flag threshold (cleanlab: its find_label_issues); suggestion accuracy on truly-noisy "
              "clips; clean-test accuracy on the clean held-out split. `–` = not applicable. Seconds are wall clock "
              "on whatever else the machine was running: compare timings of one run only.", ""]
    lines += ["## Targets", "", _md_table(TARGET_COLUMNS,
                                          [[r.target, r.status, _num(r.ntl, 3), _num(r.reference, 3), r.detail]
                                           for r in targets.itertuples(index=False)]), ""]
    lines += ["## Quality per setting", ""] + _quality_sections(results, seeds)
    lines += ["## Speed", ""]
    if speed.empty:
        lines += ["Not measured (`--no-speed`).", ""]
    else:
        lines += [_md_table(SPEED_COLUMNS,
                            [[r.measure, _num(r.value, 3 if "ratio" in r.measure else 1), r.detail]
                             for r in speed.itertuples(index=False)]), ""]
    if plots:
        lines += ["## Plots", ""] + [f"- [{p.name}]({p.name})" for p in plots]
        lines += (["", png_note] if png_note else []) + [""]
    return "\n".join(lines)


def _quality_sections(results: pd.DataFrame, seeds: int) -> list[str]:
    """One heading and table (a row per method, a column per metric but wall seconds) per setting."""
    lines: list[str] = []
    shown = [k for k in METRICS if k != "wall_seconds"]
    for name, sub in summarise(results).groupby("setting", sort=False):
        first = sub.iloc[0]
        clips = results.loc[results["setting"] == name, "clips"].max()
        kind = "given data set, measured" if first["noise_type"] == DATA_NOISE_TYPE else first["noise_type"]
        lines += [f"### {name} ({kind} label noise {first['label_noise']:g}, mismatch "
                  f"{first['mismatch']:g}, {_num(clips, 0)} clips)", ""]
        body = [[r["method"]] + [_pm(r[k], r[f"{k}_std"], METRICS[k][1], seeds > 1) for k in shown]
                for _, r in sub.iterrows()]
        lines += [_md_table(["method"] + [METRICS[k][0] for k in shown], body), ""]
    return lines


def _num(value, digits: int) -> str:
    """``value`` with ``digits`` decimals; ``–`` for NaN; a non-number as it is."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "–" if math.isnan(v) else f"{v:.{digits}f}"


def _pm(mean: float, std: float, digits: int, with_std: bool) -> str:
    """``mean ± std`` (``with_std`` and both numbers), else the mean alone."""
    text = _num(mean, digits)
    if with_std and text != "–" and not math.isnan(std):
        text += f" ± {std:.{digits}f}"
    return text


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(x) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows])


def write_plots(out: Path, results: pd.DataFrame) -> tuple[list[Path], str]:
    """label_ap.html (label AP vs label-noise rate per method) and mismatch_ap.html (mismatch AP vs label-noise
    rate per method, settings with mismatch), plus PNGs when kaleido is installed. Returns (paths, note)."""
    summary = summarise(results)
    summary["mismatch rate"] = summary["mismatch"].map(lambda m: f"mismatch {m:g}")
    written: list[Path] = []
    png = importlib.util.find_spec("kaleido") is not None
    note = "" if png else "PNG files skipped: kaleido is not installed."
    for metric, title, rows in (
            ("label_ap", "Label-noise AP vs label-noise rate", summary),
            ("mismatch_ap", "Mismatch AP vs label-noise rate (settings with mismatch)",
             summary[summary["mismatch"] > 0])):
        data = rows[rows[metric].notna()].sort_values(["method", "label_noise"])
        if data.empty:
            data = rows.head(0)
        fig = px.line(data, x="label_noise", y=metric, color="method", facet_col="noise_type",
                      facet_row="mismatch rate" if metric == "label_ap" else None, error_y=f"{metric}_std",
                      markers=True, title=title, category_orders={"method": list(METHODS)},
                      labels={"label_noise": "label-noise rate", metric: METRICS[metric][0]})
        fig.update_yaxes(range=[0, 1.02])
        fig.update_xaxes(range=[-0.02, max(0.7, float(rows["label_noise"].max() if len(rows) else 0) + 0.05)])
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))  # "noise_type=symmetric" -> value
        path = out / f"{metric}.html"
        fig.write_html(path, include_plotlyjs="directory")
        written.append(path)
        if png:
            try:
                fig.write_image(out / f"{metric}.png")
                written.append(out / f"{metric}.png")
            except Exception as err:  # kaleido present but no browser to render with
                note = f"PNG files skipped: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
    return written, note
