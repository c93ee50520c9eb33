"""The reports in OUT: results.csv, speed.csv, targets.csv, results.md (markdown tables) and the plots
(:data:`PLOTS`: <metric>.html, + .png when kaleido can render them with a Chromium). Reads the three tables only:
no torch.

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
from auditor.flags import FLAG_THRESHOLD


def write_reports(out: Path, results: pd.DataFrame, speed: pd.DataFrame, targets: pd.DataFrame, *,
                  seeds: int = 1, split: str = "") -> list[Path]:
    """results.csv, speed.csv, targets.csv, results.md and the plots; returns the paths written."""
    out = Path(out)
    files = [out / "results.csv", out / "speed.csv", out / "targets.csv"]
    atomic_write_text(files[0], results.to_csv(index=False))
    atomic_write_text(files[1], speed.to_csv(index=False))
    atomic_write_text(files[2], targets.to_csv(index=False))
    plots, png_note = write_plots(out, results)
    files += plots
    atomic_write_text(out / "results.md", render_markdown(results, speed, targets, seeds=seeds, split=split,
                                                          plots=plots, png_note=png_note))
    return [out / "results.md", *files]


def render_markdown(results: pd.DataFrame, speed: pd.DataFrame, targets: pd.DataFrame, *, seeds: int = 1,
                    split: str = "", plots: list[Path] = (), png_note: str = "") -> str:
    """results.md: an introduction (with the ``split`` line), then the sections Targets, Quality per setting
    (mean ± std over seeds when ``seeds`` > 1), Speed and, when ``plots`` are given, Plots."""
    over = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    lines = ["# AV Auditor benchmark", ""]
    lines += ([split, ""] if split else [])
    lines += [f"Methods on the same encoders, preset and data; {over}. Label scores against truth's "
              "label_is_noisy, mismatch scores against is_mismatched: AP, AUROC, and F1 / precision / recall of the "
              f"flag (score ≥ {FLAG_THRESHOLD:g}; cleanlab's flag: its find_label_issues); false alarms = share of the "
              "clips without that problem that are flagged, flagged = share of all clips flagged, max class false "
              "alarms = the worst true class's false alarms; suggestion accuracy on truly-noisy clips; muted = clips "
              "with a present but silent sound track; clean-test accuracy and the smallest per-class recall on the "
              "clean held-out split. `–` = not applicable or undefined (e.g. AP without noisy clips). Seconds are "
              "wall clock on whatever else the machine was running: compare timings of one run only.", ""]
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
    """Per setting a heading and one table per METRICS group (a row per method with any of its metrics, a column
    per metric but wall seconds)."""
    lines: list[str] = []
    groups = {g: [k for k, (_, _, grp) in METRICS.items() if grp == g and k != "wall_seconds"]
              for g in dict.fromkeys(grp for _, _, grp in METRICS.values())}
    for name, sub in summarise(results).groupby("setting", sort=False):
        first = sub.iloc[0]
        clips = results.loc[results["setting"] == name, "clips"].max()
        kind = "given data set, measured" if first["noise_type"] == DATA_NOISE_TYPE else first["noise_type"]
        shape = (f", classes {first['imbalance']:g}:1" if first["imbalance"] != 1 else "") + (
            f", muted {first['muted']:g}" if first["muted"] else "")
        lines += [f"### {name} ({kind} label noise {first['label_noise']:g}, mismatch {first['mismatch']:g}"
                  f"{shape}, {_num(clips, 0)} clips)", ""]
        for group, shown in groups.items():
            rows = sub[sub[shown].notna().any(axis=1)]
            body = [[r["method"]] + [_pm(r[k], r[f"{k}_std"], METRICS[k][1], seeds > 1) for k in shown]
                    for _, r in rows.iterrows()]
            if body:
                lines += [f"{group.capitalize()}:", "", _md_table(["method"] + [METRICS[k][0] for k in shown], body),
                          ""]
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


PLOTS = (("label_ap", "Label-noise AP per setting"), ("mismatch_ap", "Mismatch AP per setting"),
         ("label_flagged", "Share of clips flagged by the label score"),
         ("mismatch_flagged", "Share of clips flagged by the mismatch score"))


# One colour per method, the same in every plot (plotly's default cycle of 10 repeats with 13 methods).
METHOD_COLOURS = dict(zip(METHODS, px.colors.qualitative.Dark24, strict=False))


def write_plots(out: Path, results: pd.DataFrame) -> tuple[list[Path], str]:
    """Per PLOTS metric a grouped bar chart (x = setting, a bar per method, error bars = std over seeds) as
    <metric>.html and, when kaleido can render it, <metric>.png. Returns (paths, a note on skipped PNGs or "")."""
    summary = summarise(results)
    written: list[Path] = []
    png = importlib.util.find_spec("kaleido") is not None
    note = "" if png else "PNG files skipped: kaleido is not installed (pip install -e '.[dev]')."
    for metric, title in PLOTS:
        data = summary[summary[metric].notna()]
        fig = px.bar(data, x="setting", y=metric, color="method", barmode="group", error_y=f"{metric}_std",
                     title=title, category_orders={"method": list(METHODS),
                                                   "setting": list(dict.fromkeys(results["setting"]))},
                     labels={metric: METRICS[metric][0]}, color_discrete_map=METHOD_COLOURS)
        fig.update_yaxes(range=[0, 1.02])
        path = out / f"{metric}.html"
        fig.write_html(path, include_plotlyjs="directory")
        written.append(path)
        if png and not note:
            try:
                fig.write_image(out / f"{metric}.png", width=1100, height=500)
                written.append(out / f"{metric}.png")
            except Exception as err:  # kaleido present but no browser to render with
                note = f"PNG files skipped: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
    return written, note
