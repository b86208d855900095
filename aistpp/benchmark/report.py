"""Writing a benchmark result: ``report.json`` (every number), ``summary.md`` (tables) and PNG plots (error per
joint, per view, over time; matplotlib Agg, imported only here)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from aistpp.corpus.manifest import plain
from aistpp.errors import AistppError
from aistpp.io.atomic import atomic_write_text
from aistpp.viz.qa import pyplot, save_figure

log = logging.getLogger(__name__)

REPORT_JSON = "report.json"
SUMMARY_MD = "summary.md"


def json_ready(obj):
    """Report dict -> JSON-safe: NaN -> null (nothing counted), +inf -> "inf" (misses), numpy scalars -> Python."""
    return plain(obj, inf="inf")


def _num(v, digits=1, pct=False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and math.isinf(v):
        return "miss"
    return f"{100 * v:.{digits}f}" if pct else f"{v:.{digits}f}"


def _table(header, rows) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(r) + " |" for r in rows]


def _row_2d(name, d, with_ap=True) -> list[str]:
    r = [name, str(d["keypoints"])]
    if "detection_rate" in d:
        r.append(_num(d["detection_rate"], pct=True))
    r += [_num(d["pck_px"][k], pct=True) for k in d["pck_px"]] + [_num(d["pck_box"][k], pct=True) for k in d["pck_box"]]
    r += [_num(d["median_px"]), _num(d["p90_px"])]
    if with_ap:
        r += [_num(d.get("ap"), pct=True), _num(d.get("ap50"), pct=True), _num(d.get("ap75"), pct=True)]
    return r


def _header_2d(d, first, with_det=True, with_ap=True) -> list[str]:
    h = [first, "keypoints"] + (["det %"] if with_det else [])
    h += [f"PCK@{k}px %" for k in d["pck_px"]] + [f"PCK@{k}box %" for k in d["pck_box"]] + ["median px", "p90 px"]
    return h + (["AP %", "AP50 %", "AP75 %"] if with_ap else [])


def _row_3d(name, d) -> list[str]:
    r = [name, str(d["joints"]), _num(d["coverage"], pct=True), _num(d["mpjpe_mm"]), _num(d["pa_mpjpe_mm"]),
         _num(d["median_error_mm"])] + [_num(d["pck3d"][k], pct=True) for k in d["pck3d"]]
    r.append(_num(d["accel_error_mm_per_frame2"], 2))
    if "bone_length_cv" in d:
        r += [_num(d["bone_length_cv"], 2, pct=True), _num(d["reference_bone_length_cv"], 2, pct=True)]
    return r


def _header_3d(d, first, bones=True) -> list[str]:
    h = [first, "joints", "covered %", "MPJPE mm", "PA-MPJPE mm", "median mm"] + [f"PCK3D@{k}cm %" for k in d["pck3d"]]
    h.append("accel err mm/f²")
    return h + (["bone CV %", "ref bone CV %"] if bones else [])


def markdown_summary(report: dict, images=()) -> str:
    """The report as Markdown tables (overall, per view / genre / situation / dancer / sequence / joint)."""
    task = report["task"]
    p = report["protocol"]
    lines = [f"# Keypoint benchmark ({task.upper()})", "",
             f"- protocol: `{p['version']}`" + ("" if p["standard_thresholds"] else " (NON-STANDARD thresholds: "
                                               "not comparable with published numbers)"),
             f"- predictions: `{report['predictions']['path']}` ({report['predictions']['format']}"
             + (f", key `{report['predictions']['key']}`" if "key" in report["predictions"] else "") + ")",
             f"- reference: `{report['reference']['path']}` ({report['reference']['format']}, "
             f"`{report['reference']['key']}`)",
             f"- sequences: {len(report['sequences'])}" + (f"; views {', '.join(report['views'])}"
                                                           if task == "2d" else ""),
             f"- tool: aistpp {report['tool_version']}"]
    if report.get("missing_predictions"):
        lines.append(f"- **{len(report['missing_predictions'])} sequence(s) without a prediction, scored as "
                     f"misses**: {', '.join(report['missing_predictions'][:10])}"
                     + (" ..." if len(report["missing_predictions"]) > 10 else ""))
    if report.get("no_reference"):
        lines.append(f"- {len(report['no_reference'])} selected sequence(s) have no reference and are not scored")
    if task == "2d":
        lines.append(f"- 2D reference keypoints scored: confidence >= {p['reference_conf_threshold']}; misses "
                     "(no person, NaN keypoint, missing view/frame/sequence) fail every PCK and count as +inf "
                     "error")
    else:
        lines.append("- 3D distances in mm; MPJPE over the predicted joints (coverage next to it), misses fail PCK3D")
    lines.append("")
    ov = report["overall"]
    with_ap = "ap" in ov
    sections = [("overall", {"all": ov})] + [(f"per {g}", report[f"by_{g}"]) for g in
                                             (("view",) if task == "2d" else ()) + ("genre", "situation", "dancer",
                                                                                    "sequence")]
    for title, groups in sections:
        lines += [f"## {title}", ""]
        if task == "2d":
            lines += _table(_header_2d(ov, title.replace("per ", ""), with_ap=with_ap),
                            [_row_2d(k, v, with_ap) for k, v in groups.items()])
        else:
            lines += _table(_header_3d(ov, title.replace("per ", "")), [_row_3d(k, v) for k, v in groups.items()])
        lines.append("")
    lines += ["## per joint", ""]
    joints = report["by_joint"]
    if task == "2d":
        lines += _table(_header_2d(ov, "joint", with_det=False, with_ap=False),
                        [_row_2d(k, v, False) for k, v in joints.items()])
    else:
        lines += _table(_header_3d(ov, "joint", bones=False), [_row_3d(k, v) for k, v in joints.items()])
    lines.append("")
    for img in images:
        lines += [f"![{Path(img).stem}]({Path(img).name})", ""]
    return "\n".join(lines)


def _pyplot():
    return pyplot("benchmark plots", " (or --no-plots)")


def plot_per_joint(path, report: dict) -> Path:
    """Bar chart of the per-joint error (2D: median px and PCK@box; 3D: MPJPE and PA-MPJPE mm)."""
    plt = _pyplot()
    joints = report["by_joint"]
    names = list(joints)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(names))
    if report["task"] == "2d":
        med = [joints[n]["median_px"] for n in names]
        ax.bar(x, np.nan_to_num(np.asarray(med, float), posinf=np.nan), color="tab:blue", label="median error (px)")
        ax.set_ylabel("median error (px)")
        ax2 = ax.twinx()
        key = list(joints[names[0]]["pck_box"])[-1]
        ax2.plot(x, [100 * joints[n]["pck_box"][key] for n in names], "o-", color="tab:orange",
                 label=f"PCK@{key} box (%)")
        ax2.set_ylabel(f"PCK@{key} box (%)")
        ax2.set_ylim(0, 100)
    else:
        w = 0.4
        ax.bar(x - w / 2, [joints[n]["mpjpe_mm"] for n in names], w, label="MPJPE")
        ax.bar(x + w / 2, [joints[n]["pa_mpjpe_mm"] for n in names], w, label="PA-MPJPE")
        ax.set_ylabel("error (mm)")
        ax.legend()
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
    ax.set_title(f"error per joint ({report['protocol']['version']})")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_per_view(path, report: dict) -> Path:
    """2D: PCK at every threshold per view."""
    plt = _pyplot()
    views = report["by_view"]
    names = list(views)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    x = np.arange(len(names))
    keys = [("pck_px", k, f"PCK@{k}px") for k in views[names[0]]["pck_px"]] + \
           [("pck_box", k, f"PCK@{k}box") for k in views[names[0]]["pck_box"]]
    w = 0.8 / len(keys)
    for i, (grp, k, label) in enumerate(keys):
        ax.bar(x - 0.4 + (i + 0.5) * w, [100 * views[n][grp][k] for n in names], w, label=label)
    ax.set_xticks(x, names)
    ax.set(ylabel="%", ylim=(0, 118), title="PCK per view")
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=7, ncol=len(keys), loc="upper center")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_over_time(path, report: dict, series: dict, fps: float = 60.0, max_sequences: int = 8) -> Path:
    """Per-frame error over time, one line per sequence (the first ``max_sequences``): 2D median px error of the
    predicted keypoints over views and joints; 3D MPJPE (mm) of the predicted joints."""
    plt = _pyplot()
    key, label = ("median_px", "median error (px)") if report["task"] == "2d" else ("mpjpe_mm", "MPJPE (mm)")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for seq in list(series)[:max_sequences]:
        y = series[seq][key]
        ax.plot(np.arange(len(y)) / fps, y, lw=0.8, label=seq)
    ax.set(xlabel="time (s)", ylabel=label, title="error over time")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def write_report(out_dir, result, plots: bool = True) -> dict:
    """Write ``report.json``, ``summary.md`` and (``plots``) the PNGs into ``out_dir``; returns {name: path}."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AistppError("--out must be a folder", out)
    out.mkdir(parents=True, exist_ok=True)
    report = result.report
    written = {}
    images = []
    if plots:
        images.append(plot_per_joint(out / "per_joint.png", report))
        if report["task"] == "2d":
            images.append(plot_per_view(out / "per_view.png", report))
        images.append(plot_over_time(out / "over_time.png", report, result.series))
        written.update({p.stem: p for p in images})
    atomic_write_text(out / REPORT_JSON, json.dumps(json_ready(report), indent=1))
    atomic_write_text(out / SUMMARY_MD, markdown_summary(report, images))
    written.update({"report": out / REPORT_JSON, "summary": out / SUMMARY_MD})
    log.info("wrote %s", ", ".join(str(p) for p in written.values()))
    return written
