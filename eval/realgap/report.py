"""Contact sheets (real | simulated | difference, PNG), the self-contained HTML report and the text table."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from eval.realgap.analysis import SimSet
from eval.realgap.sources import RealEpisode

SHEET_FRAMES = 6
DIFF_GAIN = 2.0
"""The difference row shows |real - sim| x 2 per channel (clipped), so small gaps stay visible."""


def contact_sheet(real: np.ndarray, sim: np.ndarray, paired: bool, frames: int = SHEET_FRAMES) -> np.ndarray:
    """uint8 image: a row of real frames, a row of simulated ones, and (paired) their difference."""
    n = min(len(real), len(sim))
    pick = np.unique(np.linspace(0, n - 1, min(frames, n)).round().astype(int))
    if not paired:  # distributions: spread over each set on its own
        rp = np.linspace(0, len(real) - 1, len(pick)).round().astype(int)
        sp = np.linspace(0, len(sim) - 1, len(pick)).round().astype(int)
        return np.concatenate([np.concatenate(list(real[rp]), 1), np.concatenate(list(sim[sp]), 1)], 0)
    diff = np.clip(np.abs(real[pick].astype(np.int16) - sim[pick]) * DIFF_GAIN, 0, 255).astype(np.uint8)
    rows = [np.concatenate(list(x), axis=1) for x in (real[pick], sim[pick], diff)]
    return np.concatenate(rows, axis=0)


def write_sheets(
    episodes: list[RealEpisode], sims_by: dict[str, SimSet], out: Path
) -> dict[str, dict[str, Path]]:
    """One PNG per appearance and scene (the first episode of each scene; unpaired: all frames)."""
    sheets: dict[str, dict[str, Path]] = {}
    for look, sims in sims_by.items():
        sheets[look] = {}
        done: set[str] = set()
        for episode in episodes:
            if episode.paired and episode.scene not in done:
                image = contact_sheet(episode.frames, sims.paired[episode.name], True)
            elif not episode.paired and "unpaired" not in done and sims.reference is not None:
                real = np.concatenate([e.frames for e in episodes if not e.paired])
                image = contact_sheet(real, sims.reference, False)
            else:
                continue
            done.add(episode.scene)
            path = out / f"sheet_{look}_{episode.scene}.png"
            Image.fromarray(image).save(path)
            sheets[look][episode.scene] = path
    return sheets


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per appearance x group: the headline numbers of (a), (b) and (c)."""
    rows = []
    for look, block in result["appearances"].items():
        for group, gap in block["appearance_gap"].items():
            row = [look, group, "paired" if gap["paired"] else "unpaired", str(gap["frames_real"])]
            row += [_fmt(gap.get("pixel_delta_e")), _fmt(gap["delta_e_means"]), _fmt(gap["hist_hellinger"])]
            row += [_fmt(gap.get("ssim")), _fmt(gap["gradient_ratio"])]
            for policy_id, entry in block["checkpoints"].items():
                fd = entry["feature_gap"].get(group)
                scenes = entry.get("behaviour_gap", {}).get("scenes", {})
                beh = scenes.get(group, {})
                row += [
                    f"{policy_id}: FD {_fmt(fd, 4)}, agree {_fmt(beh.get('direction_agreement'), 2)}, "
                    f"|Δa| {_fmt(beh.get('mean_abs_diff'), 3)}, real/rec {_fmt(beh.get('real_vs_recorded'), 2)}, "
                    f"sim/rec {_fmt(beh.get('sim_vs_recorded'), 2)}"
                ]
            rows.append(row)
    return rows


HEAD = [
    "appearance",
    "scene",
    "kind",
    "real frames",
    "pixel ΔE",
    "ΔE of means",
    "hist. Hellinger",
    "SSIM",
    "gradient sim/real",
]


def format_table(result: dict[str, Any]) -> str:
    """The headline numbers as a Markdown table (checkpoint columns appended per checkpoint)."""
    rows = summary_rows(result)
    extra = max((len(r) for r in rows), default=len(HEAD)) - len(HEAD)
    head = HEAD + [f"checkpoint {i + 1}" for i in range(extra)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r + [""] * (len(head) - len(r))) + " |" for r in rows]
    return "\n".join(lines)


def _img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def render_html(result: dict[str, Any], sheets: dict[str, dict[str, Path]]) -> str:
    """The report as one HTML file: notes, the table, and every contact sheet embedded (base64)."""
    rows = summary_rows(result)
    table = (
        "<table border=1 cellpadding=4><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in HEAD)
        + "<th>checkpoints</th></tr>"
    )
    for r in rows:
        table += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r[: len(HEAD)])
        table += "<td>" + "<br>".join(html.escape(c) for c in r[len(HEAD) :]) + "</td></tr>"
    table += "</table>"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.get("notes", []))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Sim-vs-real gap</title></head><body>",
        "<h1>Sim-vs-real gap</h1>",
        f"<p>Real frames: {html.escape(str(result['real']))} ({result['episodes']['paired']} paired, "
        f"{result['episodes']['unpaired']} unpaired; channel order {html.escape(result['channel_order'])}).</p>",
        f"<ul>{notes}</ul>",
        table,
        "<h2>Contact sheets</h2><p>Paired: real (top), simulated (middle), |difference| x 2 (bottom). "
        "Unpaired: real frames (top), the simulator's reference frames (bottom).</p>",
    ]
    for look, by_scene in sheets.items():
        for scene, path in by_scene.items():
            parts.append(f"<h3>{html.escape(look)}: {html.escape(scene)}</h3>{_img_tag(path)}")
    parts.append("</body></html>")
    return "\n".join(parts)
