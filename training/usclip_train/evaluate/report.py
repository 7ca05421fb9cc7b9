"""report.md and its plots from a results dict (runner.evaluate's output).

Plots (matplotlib, Agg backend, so it runs headless): one row-normalised confusion matrix
per zero-shot dimension (``confusion_<Field>.png``; counts written in the cells when the
dimension is small) and the recall@k curves of both retrieval directions (``recall_at_k.png``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from usclip_sdk import taxonomy

__all__ = ["write_report", "plot_confusion", "plot_recall_curves", "plot_reliability"]


def _fmt(v: Any, pct: bool = True) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{100 * v:.2f}" if pct else f"{v}"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: list[list[int]], field: str, path: Path) -> Path:
    """Row-normalised confusion matrix (rows: reference tag, columns: prediction)."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    names = list(taxonomy.dimension(field).values)
    n = len(names)
    size = max(3.0, (0.3 if n <= 12 else 0.2) * n + 1.5)  # the matrix itself; labels get room from bbox_inches="tight"
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(norm, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fs = 8 if n <= 12 else 6
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=fs)
    ax.set_yticklabels(names, fontsize=fs)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference tag")
    ax.set_title(f"{field} (rows normalised)", fontsize=9)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_recall_curves(retrieval: Mapping[str, Any], path: Path) -> Path:
    """Recall@k against k (log axis) for image->text and text->image."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(retrieval["curve_k"], retrieval["curve_i2t"], marker=".", label="image -> text")
    ax.plot(retrieval["curve_k"], retrieval["curve_t2i"], marker=".", label="text -> image")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_title(f"retrieval, {retrieval['n_texts']} pairs / {retrieval['n_images']} images", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(per_dimension: Mapping[str, Any], path: Path) -> Path:
    """Reliability diagram: accuracy against mean top-1 probability per confidence bin, one
    line per dimension (points sized by bin count); the diagonal is perfect calibration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    for field, m in per_dimension.items():
        bins = m.get("reliability") or []
        if bins:
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                    ms=3, lw=1, label=f"{field} (ECE {100 * m['ece']:.1f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean top-1 probability (15 bins)")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _reliability_lines(zs: Mapping[str, Any], plots: bool, out: Path) -> list[str]:
    dims = {f: m for f, m in zs["per_dimension"].items() if m.get("ece") is not None}
    if not dims:
        return []
    lines = ["## Calibration", "", "Expected calibration error of the top-1 probability (15 bins, "
             "points; docs/triage.md). Lower is better.", "",
             "| dimension | ECE |", "|---|---:|"] + [f"| {f} | {100 * m['ece']:.2f} |" for f, m in dims.items()]
    if plots:
        plot_reliability(dims, out / "reliability.png")
        lines += ["", "![reliability](reliability.png)"]
    return lines + [""]


def _classification_table(title: str, task: Mapping[str, Any]) -> list[str]:
    lines = [f"## {title}", "",
             f"AvgAcc **{_fmt(task['AvgAcc'])}**, AvgRecall **{_fmt(task['AvgRecall'])}** (%), over "
             f"{len(task['dimensions_averaged'])} dimension(s) with labelled samples.", "",
             "| dimension | n | multi-tag | classes present | acc1 | acc5 | mean per-class recall | AUC |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for field, m in task["per_dimension"].items():
        if "skipped" in m:
            lines.append(f"| {field} | - | - | - | skipped: {m['skipped']} | | | |")
            continue
        lines.append(f"| {field} | {m['n_samples']} | {m['n_multi_tag']} | {m['n_classes_present']}/"
                     f"{m['n_classes']} | {_fmt(m['acc1'])} | {_fmt(m.get('acc5'))} | "
                     f"{_fmt(m['mean_per_class_recall'])} | {_fmt(m.get('auc'))} |")
    return lines + [""]


def _retrieval_table(r: Mapping[str, Any], plots: bool) -> list[str]:
    ks = [int(k.split("@")[1]) for k in r if k.startswith("i2t_R@")]
    lines = ["## Retrieval", "",
             f"{r['n_texts']} captions, {r['n_images']} images; a caption's match is its own image "
             f"({r.get('n_duplicate_texts', 0)} captions also caption another image and count as "
             "negatives there). Recall in %.", "",
             "| direction | " + " | ".join(f"R@{k}" for k in ks) + " | median rank |",
             "|---|" + "---:|" * (len(ks) + 1)]
    for tag, name in (("i2t", "image -> text"), ("t2i", "text -> image")):
        lines.append(f"| {name} | " + " | ".join(_fmt(r[f"{tag}_R@{k}"]) for k in ks)
                     + f" | {_fmt(r[f'{tag}_median_rank'], pct=False)} |")
    # the picture is linked only when it is written (plots=False writes none)
    return lines + (["", "![recall@k](recall_at_k.png)", ""] if plots else [""])


def write_report(result: Mapping[str, Any], out_dir: Path, plots: bool = True) -> Path:
    """Write ``report.md`` (and the PNGs when ``plots``) into ``out_dir``; returns its path."""
    out = Path(out_dir)
    tasks = result["tasks"]
    lines = [f"# Evaluation: {result['model']} on {result['dataset']} ({result['split']})", "",
             f"{result['n_pairs']} pairs, {result['n_images']} images, taxonomy "
             f"{result['taxonomy_version']}, {result['created']}. Definitions: docs/evaluation.md.", ""]
    zs = tasks.get("zeroshot_classification")
    if zs:
        lines += _classification_table("Zero-shot classification", zs)
    if "zeroshot_retrieval" in tasks:
        lines += _retrieval_table(tasks["zeroshot_retrieval"], plots)
        if plots:
            plot_recall_curves(tasks["zeroshot_retrieval"], out / "recall_at_k.png")
    if "linear_probe" in tasks:
        lines += _classification_table("Linear probe (frozen image features)", tasks["linear_probe"])
    if zs:
        lines += _reliability_lines(zs, plots, out)
    if zs and plots:
        lines += ["## Zero-shot confusion matrices", ""]
        for field, m in zs["per_dimension"].items():
            if m["n_samples"]:
                plot_confusion(m["confusion"], field, out / f"confusion_{field}.png")
                lines += [f"![{field}](confusion_{field}.png)", ""]
    timing = ", ".join(f"{k} {v:.2f}" for k, v in result.get("timing_s", {}).items())
    lines += ["## Timing", "", timing + " (seconds; images_per_s is a rate)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
