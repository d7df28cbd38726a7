"""Plots of an evaluation (matplotlib, Agg backend, PNG), drawn from summary.json and episodes.jsonl.

- ``success_by_condition.png``: success rate with Wilson 95 % bars, per policy and condition;
- ``valloss_vs_success.png``: val_loss against closed-loop success per checkpoint;
- ``trajectories_<policy>.png``: top-down paths of every episode, one panel per scene cell,
  coloured by outcome, over the corridor walls, box, bottle and goal zone of the records' layout.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, Rectangle, Wedge  # noqa: E402

from policies.vla.profiles import DEFAULT_PROFILE  # noqa: E402

logger = logging.getLogger(__name__)

OUTCOME_COLOURS = {
    "success": "#2e7d32",
    "collision": "#c62828",
    "wrong_side": "#ef6c00",
    "policy_error": "#6a1b9a",
    "other": "#607d8b",
}
OUTCOME_LABELS = {
    "success": "success",
    "collision": "collision",
    "wrong_side": "wrong side",
    "policy_error": "policy error / bad action",
    "other": "other failure (goal not reached, ...)",
}


def outcome_class(record: dict[str, Any]) -> str:
    if record.get("success"):
        return "success"
    code = str(record.get("failure_reason") or "").split(":")[0]
    if code == "collision":
        return "collision"
    if code == "wrong_side":
        return "wrong_side"
    if code in ("policy_error", "non_finite_action", "invalid_action"):
        return "policy_error"
    return "other"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def plot_success(summary: dict[str, Any], path: Path) -> Path | None:
    """Grouped bars: success rate per condition (all, then each cell), one bar per policy."""
    policies = [p for p in summary["policies"] if p["status"] == "ok"]
    if not policies:
        return None
    conditions = ["all", *summary["cells"]]
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(conditions) + 1.5), 4.0))
    x = np.arange(len(conditions))
    for i, p in enumerate(policies):
        aggs = [p["overall"], *[p["by_cell"].get(c, {}) for c in summary["cells"]]]
        rates = np.array(
            [a.get("success_rate") if a.get("success_rate") is not None else np.nan for a in aggs]
        )
        low = np.array([a.get("ci95_low") if a.get("ci95_low") is not None else np.nan for a in aggs])
        high = np.array([a.get("ci95_high") if a.get("ci95_high") is not None else np.nan for a in aggs])
        yerr = np.vstack([np.nan_to_num(rates - low), np.nan_to_num(high - rates)])
        label = p["policy_id"] + (f" (val {p['val_loss']:.3f})" if p.get("val_loss") is not None else "")
        ax.bar(
            x + (i - (len(policies) - 1) / 2) * width,
            np.nan_to_num(rates),
            width,
            yerr=yerr,
            capsize=3,
            label=label,
        )
    ax.set_xticks(x, conditions, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95 % Wilson CI)")
    ax.set_title("Closed-loop success per condition")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _save(fig, path)


def plot_valloss_vs_success(summary: dict[str, Any], path: Path) -> Path | None:
    """Scatter of val_loss vs success rate (with CI bars) for checkpoints whose val_loss is known."""
    pts = [
        p
        for p in summary["policies"]
        if p["kind"] == "checkpoint"
        and p["status"] == "ok"
        and p.get("val_loss") is not None
        and p["overall"]["n"]
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    profiles = list(dict.fromkeys(p.get("profile") or DEFAULT_PROFILE for p in pts))
    styles = [("o", "#1565c0"), ("s", "#e65100"), ("^", "#2e7d32")]
    for k, profile in enumerate(profiles):
        marker, color = styles[k % len(styles)]
        group = sorted(
            (p for p in pts if (p.get("profile") or DEFAULT_PROFILE) == profile), key=lambda q: q["val_loss"]
        )
        for i, p in enumerate(group):
            o = p["overall"]
            r = o["success_rate"]
            ax.errorbar(
                p["val_loss"],
                r,
                yerr=[[r - o["ci95_low"]], [o["ci95_high"] - r]],
                fmt=marker,
                capsize=4,
                color=color,
                label=profile if i == 0 and len(profiles) > 1 else None,
            )
            if k == 0:  # checkpoint names once (the other profiles share the x positions)
                ax.annotate(  # staggered so that neighbouring labels do not overlap
                    p["policy_id"].split("@", 1)[0],
                    (p["val_loss"], r),
                    textcoords="offset points",
                    xytext=(6, 6 + 12 * (i % 3)),
                    fontsize=8,
                )
    if len(profiles) > 1:
        ax.legend(fontsize=8, loc="best", title="profile", title_fontsize=8)
    ra = summary.get("rank_agreement") or {}
    title = "val_loss vs closed-loop success"
    if ra.get("spearman_rho") is not None:
        title += (
            f"\nSpearman rho {ra['spearman_rho']:+.2f}, Kendall tau {ra['kendall_tau']:+.2f} (n={ra['n']})"
        )
    elif ra.get("note"):
        title += "\n(rank agreement undefined: see report)"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("val_loss (lower is better)")
    ax.set_ylabel("success rate (95 % Wilson CI)")
    ax.set_ylim(-0.02, 1.05)
    ax.margins(x=0.2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def draw_layout(ax: Any, layout: dict[str, Any], alpha: float = 1.0, outline_only: bool = False) -> None:
    """Draw corridor walls, the box, the bottle and the goal zone (top-down: x forward, y left; m).

    The goal zone is drawn as the env defines it: within ``goal_radius`` of the bottle, on the
    near side of the bottle (a half disc facing the start, turned with the box).
    """
    hw = layout.get("corridor_half_width")
    length = layout.get("corridor_length")
    start = layout.get("start_xy") or [0.0, 0.0]
    if hw is not None and length is not None and not outline_only:
        x0 = float(layout.get("corridor_x_min", min(0.0, float(start[0]) - 0.5)))
        for y in (-hw, hw):
            ax.plot(
                [x0, x0 + float(length)], [y, y], color="black", lw=2.0, alpha=alpha, solid_capstyle="butt"
            )
    yaw_deg = float(np.degrees(layout.get("box_yaw", 0.0) or 0.0))
    goal, radius = layout.get("bottle_xy"), layout.get("goal_radius")
    if goal is not None and radius is not None and not outline_only:
        ax.add_patch(
            Wedge(tuple(goal), float(radius), 90 + yaw_deg, 270 + yaw_deg, facecolor="#c8e6c9", edgecolor="#2e7d32",
                  ls=":", alpha=0.5)
        )  # fmt: skip
    box_c, box_h = layout.get("box_center"), layout.get("box_half_extents")
    if box_c is not None and box_h is not None:
        ax.add_patch(
            Rectangle(
                (box_c[0] - box_h[0], box_c[1] - box_h[1]),
                2 * box_h[0],
                2 * box_h[1],
                angle=yaw_deg,
                rotation_point="center",
                facecolor="none" if outline_only else "#a1887f",
                edgecolor="#5d4037",
                lw=0.6 if outline_only else 1.2,
                ls="--" if outline_only else "-",
                alpha=alpha,
            )
        )
    bottle = layout.get("bottle_xy")
    if bottle is not None:
        r = float(layout.get("bottle_radius", 0.04))
        if outline_only:
            ax.add_patch(Circle(tuple(bottle), r, facecolor="none", edgecolor="#1b5e20", lw=0.5, alpha=alpha))
        else:
            ax.add_patch(Circle(tuple(bottle), r, color="#1b5e20", alpha=alpha))
    if not outline_only:
        ax.plot(*start, marker="s", color="black", ms=4)


def plot_trajectories(
    records: list[dict[str, Any]], cells: list[str], policy_id: str, path: Path
) -> Path | None:
    """One panel per cell with every episode's path of ``policy_id``, coloured by outcome."""
    mine = [r for r in records if r["policy_id"] == policy_id and r.get("trajectory")]
    if not mine:
        return None
    by_cell: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in mine:
        by_cell[r["cell"]].append(r)
    shown = [c for c in cells if by_cell.get(c)]
    cols = min(2, len(shown))
    rows = int(np.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    used: set[str] = set()
    for ax, cell in zip(axes.ravel(), shown, strict=False):
        eps = sorted(by_cell[cell], key=lambda r: r["episode_index"])
        layouts = [r["layout"] for r in eps if r.get("layout")]
        if layouts:
            draw_layout(ax, layouts[0])
            for lay in layouts[1:40]:
                draw_layout(ax, lay, alpha=0.25, outline_only=True)
        for r in eps:
            xy = np.array([p for p in r["trajectory"] if p is not None], dtype=float)
            if xy.size == 0:
                continue
            cls = outcome_class(r)
            used.add(cls)
            ax.plot(xy[:, 0], xy[:, 1], color=OUTCOME_COLOURS[cls], lw=1.0, alpha=0.7)
            ax.plot(xy[-1, 0], xy[-1, 1], marker="o", ms=2.5, color=OUTCOME_COLOURS[cls])
        k = sum(bool(r["success"]) for r in eps)
        ax.set_title(f"{cell}: {k}/{len(eps)} success", fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel("x forward (m)", fontsize=8)
        ax.set_ylabel("y left (m)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.2)
    for ax in axes.ravel()[len(shown) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], color=OUTCOME_COLOURS[c], lw=2, label=OUTCOME_LABELS[c])
        for c in OUTCOME_COLOURS
        if c in used
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"Trajectories of {policy_id} (top-down)", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(summary: dict[str, Any], records: list[dict[str, Any]], plot_dir: Path) -> dict[str, Any]:
    """Draw every plot into ``plot_dir``; returns {"success": path, "valloss": path, "trajectories": {id: path}}."""
    out: dict[str, Any] = {"success": None, "valloss": None, "trajectories": {}}
    out["success"] = plot_success(summary, plot_dir / "success_by_condition.png")
    out["valloss"] = plot_valloss_vs_success(summary, plot_dir / "valloss_vs_success.png")
    for p in summary["policies"]:
        if p["status"] != "ok":
            continue
        path = plot_trajectories(
            records, summary["cells"], p["policy_id"], plot_dir / f"trajectories_{_safe(p['policy_id'])}.png"
        )
        if path is not None:
            out["trajectories"][p["policy_id"]] = path
    return out
