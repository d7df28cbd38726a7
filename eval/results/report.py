"""Build ``report.md`` and a self-contained ``report.html`` from an evaluation's results folder.

Input is ONLY ``summary.json`` (plus ``episodes.jsonl`` for the trajectory plots): never the
terminal output. The HTML has inline CSS and embeds its plots as base64 PNG, so it can be mailed
or archived alone; videos are linked (relative paths).

    python -m eval.results.report results/20250101-120000
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval.probes import probe_rows
from eval.results import records as rec
from eval.results.plots import make_plots
from mvla_sim.files import atomic_write_text

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#fafafa}
.rec{background:#e8f5e9;border-left:4px solid #2e7d32;padding:.6em 1em}.warn{background:#fff3e0;border-left:4px solid #ef6c00;padding:.4em 1em}
img{max-width:100%;border:1px solid #eee}pre{background:#f6f8fa;padding:.6em;overflow:auto;font-size:.8em}code{font-size:.9em}
"""


class ReportError(Exception):
    """The results folder cannot be reported (one-line message)."""


@dataclass
class Section:
    """A report section: an ordered list of blocks rendered to both Markdown and HTML."""

    title: str
    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def p(self, text: str, css: str = "") -> None:
        self.blocks.append(("p", text, css))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", headers, rows))

    def img(self, path: Path, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    def links(self, items: list[tuple[str, str]]) -> None:
        self.blocks.append(("links", items))

    def pre(self, summary: str, text: str) -> None:
        self.blocks.append(("pre", summary, text))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _rate_ci(a: dict[str, Any]) -> str:
    if not a or a.get("success_rate") is None:
        return "n/a"
    return f"{_pct(a['success_rate'])} [{_pct(a['ci95_low'])}, {_pct(a['ci95_high'])}] ({a['successes']}/{a['n']})"


def _rel(target: str | Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(Path(target).resolve(), start.resolve())).as_posix()
    except ValueError:  # other drive (Windows)
        return Path(target).as_posix()


def build_sections(summary: dict[str, Any], plots: dict[str, Any], results_dir: Path) -> list[Section]:
    """The report's content as sections (shared by the Markdown and HTML renderers)."""
    sections = [
        _recommendation_section(summary),
        _overall_section(summary, plots),
        _cells_section(summary),
        _profiles_section(summary),
        _probes_section(summary),
        _served_section(summary),
        _lighting_section(summary),
        _valloss_section(summary, plots),
        _pairs_section(summary),
        _trajectories_section(plots),
        _videos_section(summary, results_dir),
        _provenance_section(summary),
    ]
    return [s for s in sections if s is not None]


def _ok(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in summary["policies"] if p["status"] == "ok"]


def _recommendation_section(summary: dict[str, Any]) -> Section:
    s = Section("Recommendation")
    rec_ = summary.get("recommendation")
    if rec_:
        s.p(f"**Recommended checkpoint: `{rec_['policy_id']}`** ({rec_['checkpoint']}).", "rec")
        s.p(rec_["evidence"])
    else:
        s.p("No checkpoint was evaluated successfully, so there is no recommendation.", "warn")
    for p in summary["policies"]:
        if p["status"] != "ok":
            s.p(f"`{p['policy_id']}` was not evaluated ({p['status']}): {p['reason']}", "warn")
    if summary.get("stopped"):
        s.p(f"The run was stopped: {summary['stopped']}.", "warn")
    for err in summary.get("errors") or []:
        s.p(
            f"episode not recorded: {err.get('policy_id')} {err.get('cell')} seed {err.get('seed')}: {err.get('error')}",
            "warn",
        )
    return s


def _scene_sentence(scene: dict[str, Any] | None) -> str:
    """The run's scene settings in words (summaries written before they were recorded have none)."""
    if not scene:
        return ""
    return (
        f" Scene: randomization {scene['randomization']}, drive model {scene['drive_model']}, "
        f"renderer {scene['renderer']}, lens distortion {scene['lens_distortion']:g}, "
        f"images {'x'.join(str(v) for v in scene['image_size'])} px, actions per episode {scene['max_steps']}."
    )


def _overall_row(p: dict[str, Any]) -> list[Any]:
    if p["status"] != "ok":
        return [p["policy_id"], p["kind"], _num(p.get("val_loss")), p["status"], "", "", "", "", "", ""]
    o = p["overall"]
    lat = o["latency_ms"]
    return [
        p["policy_id"],
        p["kind"] + (f" ({p['role']})" if p.get("role") else ""),
        _num(p.get("val_loss")),
        _rate_ci(o),
        _num(o["spl_mean"], 2),
        _pct(o["collision_rate"]),
        _pct(o["wrong_side_rate"]),
        f"{o['timeouts']}",
        f"{_num(lat['p50'], 1)} / {_num(lat['p95'], 1)}",
        {True: "yes", False: "NO", None: "n/a"}[lat["within_budget"]],
    ]


def _overall_section(summary: dict[str, Any], plots: dict[str, Any]) -> Section:
    cfg = summary.get("config") or {}
    s = Section("Overall results")
    s.p(
        f"{summary.get('episodes_per_cell')} episodes per cell over {len(summary['cells'])} cells "
        f"({', '.join(summary['cells'])}); every policy ran the same seeded episodes. Success rates carry "
        f"95 % Wilson intervals. act() latency is per step against a budget of "
        f"{cfg.get('latency_budget_ms', 100):g} ms." + _scene_sentence(cfg.get("scene"))
    )
    s.table(
        ["policy", "kind", "val_loss", "success [95% CI]", "SPL", "collision", "wrong side", "time-outs",
         "act p50/p95 ms", "p95 within budget"],
        [_overall_row(p) for p in summary["policies"]],
    )  # fmt: skip
    if plots.get("success"):
        s.img(plots["success"], "success rate per condition")
    return s


def _cells_section(summary: dict[str, Any]) -> Section:
    ok = _ok(summary)
    s = Section("Per scene cell")
    s.table(
        ["policy", *summary["cells"]],
        [[p["policy_id"], *[_rate_ci(p["by_cell"].get(c, {})) for c in summary["cells"]]] for p in ok],
    )
    for key in ("side", "lighting", "distance"):
        values = sorted({v for p in ok for v in p["by_condition"].get(key, {})})
        if len(values) > 1:
            s.p(f"By {key}:")
            s.table(
                ["policy", *values],
                [
                    [p["policy_id"], *[_rate_ci(p["by_condition"][key].get(v, {})) for v in values]]
                    for p in ok
                ],
            )
    reasons = sorted({r for p in ok for r in p["overall"]["failure_reasons"]})
    if reasons:
        s.p("Failure reasons (episodes):")
        s.table(
            ["policy", *reasons],
            [
                [p["policy_id"], *[str(p["overall"]["failure_reasons"].get(r, 0)) for r in reasons]]
                for p in ok
            ],
        )
    return s


def _lighting_section(summary: dict[str, Any]) -> Section:
    s = Section("Evening vs day")
    s.p(
        "Evening scenes were scarce in the real training data (12 of 468 episodes), so a drop in the "
        "evening is the expected failure mode. Day and evening use different seeds: the p-value is "
        "Fisher's exact test (unpaired)."
    )
    light = summary.get("lighting") or []
    if light:
        s.table(
            ["policy", "day", "evening", "evening - day", "Fisher p"],
            [
                [r["policy_id"], _rate_ci(r["day"]), _rate_ci(r["evening"]),
                 "n/a" if r["difference"] is None else f"{100 * r['difference']:+.0f} pts", _num(r["fisher_pvalue"], 3)]
                for r in light
            ],
        )  # fmt: skip
    else:
        s.p("Only one lighting was evaluated.")
    return s


def _valloss_section(summary: dict[str, Any], plots: dict[str, Any]) -> Section:
    s = Section("Does val_loss predict closed-loop success?")
    ra = summary.get("rank_agreement") or {}
    if ra.get("spearman_rho") is not None:
        s.p(
            f"Over {ra['n']} checkpoints: Spearman rho = {ra['spearman_rho']:+.2f} (p = {_num(ra['spearman_pvalue'])}), "
            f"Kendall tau = {ra['kendall_tau']:+.2f} (p = {_num(ra['kendall_pvalue'])}). {ra.get('reading', '')}. "
            f"{ra.get('note', '')}"
        )
    else:
        s.p(f"Rank agreement not computed: {ra.get('note') or 'no checkpoints with val_loss'}.")
    if plots.get("valloss"):
        s.img(plots["valloss"], "val_loss vs success")
    return s


def _pairs_section(summary: dict[str, Any]) -> Section:
    s = Section("Paired comparisons (exact McNemar on shared episodes)")
    pairs = summary.get("paired_tests") or []
    extra = summary.get("recommended_vs_baselines") or []
    if not (pairs or extra):
        s.p("Fewer than two policies: nothing to compare.")
        return s
    s.p(
        "Each pair ran the same episodes. Only discordant episodes (one succeeds, the other fails) carry "
        "evidence; p-values are Holm-adjusted within each table."
    )
    for title, rows_ in (("checkpoints", pairs), ("recommended vs baselines", extra)):
        if rows_:
            s.p(f"{title.capitalize()}:")
            s.table(
                ["A", "B", "pairs", "A only", "B only", "p", "p (Holm)", "significant"],
                [[r["a"], r["b"], r["n_pairs"], r["a_only"], r["b_only"], _num(r["pvalue"]), _num(r["pvalue_holm"]),
                  "yes" if r["significant"] else "no"] for r in rows_],
            )  # fmt: skip
    return s


def _trajectories_section(plots: dict[str, Any]) -> Section:
    s = Section("Trajectories")
    s.p("Top-down paths of every episode (x forward, y left, metres), coloured by outcome.")
    for pid, path in (plots.get("trajectories") or {}).items():
        s.img(path, f"trajectories of {pid}")
    return s


def _videos_section(summary: dict[str, Any], results_dir: Path) -> Section:
    s = Section("Videos")
    videos = summary.get("videos") or []
    if videos:
        s.p("Camera view beside the top-down map; file names carry policy, scene, seed and outcome.")
        s.links([(Path(v).name, _rel(v, results_dir)) for v in videos])
    else:
        s.p("No videos were recorded (--videos 0).")
    return s


def _provenance_section(summary: dict[str, Any]) -> Section:
    policies = summary["policies"]
    env = summary.get("environment") or {}
    s = Section("Checkpoints, settings and provenance")
    sel = summary.get("selection")
    if sel:
        s.p(
            f"Run folder: `{sel.get('run_dir')}`"
            + (" (bundled reference run)" if sel.get("used_reference") else "")
        )
        for note in sel.get("notes") or []:
            s.p(f"note: {note}", "warn")
    s.table(
        ["policy", "checkpoint", "epoch", "val_loss", "val_loss from", "status"],
        [[p["policy_id"], p.get("checkpoint") or p.get("name") or "", "" if p.get("epoch") is None else p["epoch"],
          _num(p.get("val_loss")), p.get("val_loss_source") or "", p["status"]] for p in policies],
    )  # fmt: skip
    for p in policies:
        if p.get("settings"):
            s.pre(
                f"settings of {p['policy_id']} (preprocessing, post-processing, key report)",
                json.dumps(p["settings"], indent=2),
            )
    git = env.get("git") or {}
    s.p(
        f"git revision `{git.get('revision')}`" + (" (uncommitted changes)" if git.get("dirty") else "")
        + f"; Python {env.get('python')}; {env.get('platform')}; created {summary.get('created')}."
    )  # fmt: skip
    s.pre("package versions", json.dumps(env.get("packages") or {}, indent=2))
    s.pre("evaluation config", json.dumps(summary.get("config") or {}, indent=2))
    return s


def _ms3(block: dict[str, Any] | None) -> str:
    if not block:
        return "n/a"
    return " / ".join(_num(block.get(k), 1) for k in ("p50", "p95", "p99"))


def _profiles_section(summary: dict[str, Any]) -> Section | None:
    """Each checkpoint under its profiles side by side (difference and exact McNemar)."""
    rows = summary.get("profile_comparisons") or []
    if not rows:
        return None
    s = Section("Profiles side by side")
    s.p(
        "Each checkpoint ran the same episodes under each profile: `as_trained` feeds the model what it saw "
        "in training, `as_deployed` what the team's inference server and robot client do (JPEG transport, "
        "server preprocessing and decode, first call zeroed). The difference is the second profile's success "
        "rate minus the first's; only discordant episodes carry evidence (exact McNemar, Holm-adjusted)."
    )
    s.table(
        ["checkpoint", "profile A", "success A", "profile B", "success B", "B - A", "A only", "B only", "p",
         "p (Holm)", "significant"],
        [[Path(r["checkpoint"]).name, r["profile_a"], _pct(r["success_a"]), r["profile_b"], _pct(r["success_b"]),
          "n/a" if r["difference"] is None else f"{100 * r['difference']:+.0f} pts", r["a_only"], r["b_only"],
          _num(r["pvalue"]), _num(r["pvalue_holm"]), "yes" if r["significant"] else "no"] for r in rows],
    )  # fmt: skip
    return s


def _probes_section(summary: dict[str, Any]) -> Section | None:
    """Instruction probes (``eval.probes``): does each policy follow its instruction?"""
    header, rows = probe_rows(summary)
    if not rows:
        return None
    s = Section("Does each policy follow its instruction? (instruction probes)")
    s.p(
        "Every policy ran the same episodes again with its instruction replaced: swap (the other side's), "
        "neutral (a word naming no side, same token count), unrelated (unrelated text). Changed steps: the share "
        "of step-aligned actions that differ from the original episode (steps only one episode ran count as "
        "changed); success under the probe (original) with an exact McNemar p; for swap, how often the robot "
        "passes on the side the swapped instruction names (how often it did under its own instruction)."
    )
    s.table(header, rows)
    for p in summary["instruction_probes"]["policies"]:
        s.p(f"**{p['policy_id']}**: {p['verdict']}: {p['evidence']}.")
    s.p("Rule: " + summary["instruction_probes"]["policies"][0]["rule"] + ".")
    return s


def _served_section(summary: dict[str, Any]) -> Section | None:
    """Latency of the policies evaluated over HTTP: client round trip and the server's own time."""
    served = [p for p in summary["policies"] if p["status"] == "ok" and p["overall"].get("round_trip_ms")]
    if not served:
        return None
    budget = (summary.get("config") or {}).get("latency_budget_ms", 100)
    s = Section("Policies served over HTTP")
    s.p(
        "Driven as the robot's client drives them: per episode POST /reset, per step POST /predict with the "
        "frame resized to 224x224, JPEG quality 95, base64. Round trip = the client's request to the parsed "
        f"answer; server = the answer's own latency_ms; act() adds the client's encoding. Budget {budget:g} ms "
        "per step (p95)."
    )
    rows = []
    for p in served:
        o = p["overall"]
        health = p.get("health") or {}
        rt = o["round_trip_ms"]
        rows.append(
            [p["policy_id"], health.get("model_name") or "", health.get("device") or "",
             _ms3(o["latency_ms"]), _ms3(rt), _ms3(o.get("server_latency_ms")),
             {True: "yes", False: "NO", None: "n/a"}[rt.get("within_budget")], o.get("server_faults", 0)]
        )  # fmt: skip
    s.table(
        ["server", "model_name", "device", "act() p50/p95/p99 ms", "round trip p50/p95/p99 ms",
         "server latency_ms p50/p95/p99", "round trip p95 within budget", "server faults"],
        rows,
    )  # fmt: skip
    for p in served:
        if p.get("health"):
            s.pre(f"/health of {p['policy_id']}", json.dumps(p["health"], indent=2))
    return s


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, sections: list[Section], results_dir: Path) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for b in s.blocks:
            if b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "table":
                headers, rows = b[1], b[2]
                out.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
                out.append("|" + "|".join("---" for _ in headers) + "|")
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
            elif b[0] == "img":
                out += [f"![{b[2]}]({_rel(b[1], results_dir)})", ""]
            elif b[0] == "links":
                out += [f"- [{text}]({href})" for text, href in b[1]] + [""]
            elif b[0] == "pre":
                out += [
                    f"<details><summary>{b[1]}</summary>",
                    "",
                    "```json",
                    b[2],
                    "```",
                    "",
                    "</details>",
                    "",
                ]
    return "\n".join(out)


def _inline_md(text: str) -> str:
    """Escape text, then render **bold** and `code` (the only inline Markdown the report uses)."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def render_html(title: str, sections: list[Section]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        out.append(f"<h2>{html.escape(s.title)}</h2>")
        for b in s.blocks:
            if b[0] == "p":
                cls = f' class="{b[2]}"' if b[2] else ""
                out.append(f"<p{cls}>{_inline_md(b[1])}</p>")
            elif b[0] == "table":
                out.append(
                    "<table><thead><tr>"
                    + "".join(f"<th>{html.escape(str(h))}</th>" for h in b[1])
                    + "</tr></thead><tbody>"
                )
                for row in b[2]:
                    out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
                out.append("</tbody></table>")
            elif b[0] == "img":
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                out.append(f'<p><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}"></p>')
            elif b[0] == "links":
                out.append(
                    "<ul>"
                    + "".join(
                        f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>'
                        for text, href in b[1]
                    )
                    + "</ul>"
                )
            elif b[0] == "pre":
                out.append(
                    f"<details><summary>{html.escape(b[1])}</summary><pre>{html.escape(b[2])}</pre></details>"
                )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def build_report(results_dir: Path) -> tuple[Path, Path]:
    """(Re)build plots, ``report.md`` and ``report.html`` in ``results_dir``; returns their paths.

    Raises:
        ReportError: when ``summary.json`` is missing or unreadable.
    """
    results_dir = Path(results_dir)
    summary_path = results_dir / "summary.json"
    if not summary_path.is_file():
        raise ReportError(f"{summary_path} not found; run python -m eval.rollout --out {results_dir} first")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(
            f"{summary_path} is not readable JSON ({exc}); rerun python -m eval.rollout --out {results_dir}"
        ) from exc
    records = rec.read_records(results_dir / "episodes.jsonl")
    plots = make_plots(summary, records, results_dir / "plots")
    sections = build_sections(summary, plots, results_dir)
    title = f"Closed-loop evaluation: {results_dir.resolve().name}"
    markdown, page = render_markdown(title, sections, results_dir), render_html(title, sections)
    md_path, html_path = results_dir / "report.md", results_dir / "report.html"
    atomic_write_text(md_path, markdown)
    atomic_write_text(html_path, page)
    return md_path, html_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.results.report",
        description="Rebuild report.md, report.html and plots of an evaluation from its summary.json "
        "(and episodes.jsonl).",
    )
    parser.add_argument("results_dir", type=Path, help="a results folder written by python -m eval.rollout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        md, page = build_report(args.results_dir)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {md} and {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
