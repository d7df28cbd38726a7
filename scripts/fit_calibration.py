"""Fit the simulator's drive and scene to the real teleoperators' key sequences, and print the margins.

System identification from FACTS.md's table of accepted key sequences: every one of them ended
in front of the bottle on the real robot, so in the simulator every one must

- stay clear of the box, the bottle and the walls (clearance > 0),
- cross the box's centre line on its own side (and so fail the side rule in the mirrored scene),
- end in the goal zone: within ``goal_radius_m`` of the bottle, 0.15 m or more from it, in front
  of it, with the bottle inside the camera's field of view (3 deg from its edges);

while what must fail still fails:

- driving straight ahead (17 W presses) runs into the box,
- the start is outside the goal zone,
- no pose still level with the box (centre before the box's far face) is in the goal zone.

Each of these is a *margin* in metres (positive = holds): clearances; the distance left inside the
goal disc; for the field of view, how far the bottle could move sideways (or up/down) before it
leaves the view. The fit chooses the numbers below, within bounds plausible for a small indoor
robot and corridor, in two stages:

1. ``scipy.optimize.differential_evolution`` (seeded, deterministic) maximizes the smallest
   margin over all constraints: the best room the table allows every sequence at once;
2. ``scipy.optimize.minimize`` (SLSQP), from there, stays as close as possible to the prior
   values (the pre-calibration numbers, each scaled by how uncertain it is) while every margin
   stays at least ``REQUIRED_MARGIN_M``, so that a number that no constraint needs keeps its
   prior value.

Then, for each fitted number, it finds how far that number alone could move (others fixed) before
a constraint fails, and which one: the constraint that set it and the margin left.

The model is the simulator's own kinematics with randomization off (straight moves per key press
at the key direction's speed, footprint rectangles, the camera's projection); ``--verify`` replays
every sequence in ``mvla_sim`` itself and compares.

    python scripts/fit_calibration.py                  # margins of the current scene spec
    python scripts/fit_calibration.py --fit            # fit; print the numbers and their margins
    python scripts/fit_calibration.py --fit --write    # ... and write them into the scene spec
    python scripts/fit_calibration.py --verify         # also replay every sequence in the env
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, differential_evolution, minimize

from mvla_sim.facts import EPISODE_ACTIONS, KEY_ACTIONS, KEY_PRESS_DURATION_S, REAL_KEY_SEQUENCES
from mvla_sim.files import atomic_write_text
from mvla_sim.scene import DEFAULT_SCENE

REQUIRED_MARGIN_M = 0.10
"""Every margin the fit leaves (m). The default randomization (the real set-up's repeatability:
start and box placed within +-3 cm, start yaw +-1 deg, speed +-3 %) moves the end of a 2.4 m
path by up to about 3 + 4 + 7 cm in the worst case, rarely all at once: 10 cm absorbs nearly all
of it. Stage 1 shows how much more the table allows."""

SAMPLES_PER_PRESS = 16
"""Points per key press at which the path's clearances are evaluated (about 1 cm apart)."""

CLOSE_OFFSET_M, FAR_OFFSET_M = -0.25, 0.15
"""The close and far obstacle distances, relative to the fitted medium one (no real episode is
close or far, so they are not fitted)."""


@dataclass(frozen=True)
class Param:
    """One fitted number of the scene spec."""

    path: tuple[str | int, ...]
    unit: str
    prior: float
    scale: float
    low: float
    high: float
    meaning: str

    @property
    def name(self) -> str:
        return ".".join(str(p) for p in self.path)


# fmt: off
PARAMS: tuple[Param, ...] = (
    #     spec path                             unit   prior scale  low   high
    Param(("drive", "forward_speed_mps"),       "m/s", 0.33, 0.04, 0.25, 0.42,
          "W speed at 50 % throttle: FACTS' 'about 10 cm' per 0.3 s press, +-25 %"),
    Param(("drive", "strafe_speed_mps"),        "m/s", 0.33, 0.08, 0.15, 0.50,
          "A/D speed at 50 % throttle (an omni base often strafes slower than it drives)"),
    Param(("drive", "diagonal_speed_mps"),      "m/s", 0.33, 0.08, 0.15, 0.50,
          "Q/E speed at 50 % throttle"),
    Param(("start", "lateral_offset_m"),        "m",   0.0,  0.05, -0.15, 0.15,
          "start left of the centre line of box and bottle ('roughly' on it, FACTS)"),
    Param(("corridor", "half_width_m"),         "m",   1.1,  0.2,  0.8,  1.5,
          "half the corridor width (office corridors: 1.6-3.0 m)"),
    Param(("obstacle_distance_m", "medium"),    "m",   1.15, 0.2,  0.8,  1.8,
          "start centre to box centre, 'medium' (all real episodes)"),
    Param(("box", "half_extents_m", 0),         "m",   0.14, 0.04, 0.10, 0.20,
          "half the box's depth along the corridor (a parcel box, 20-40 cm)"),
    Param(("box", "half_extents_m", 1),         "m",   0.22, 0.04, 0.15, 0.30,
          "half the box's length across the corridor (30-60 cm)"),
    Param(("bottle", "gap_behind_box_m"),       "m",   1.45, 0.2,  1.0,  2.2,
          "box centre to bottle, along the corridor"),
    Param(("success", "goal_radius_m"),         "m",   1.2,  0.2,  0.6,  1.6,
          "goal zone: robot centre within this of the bottle"),
    Param(("robot", "camera_hfov_deg"),         "deg", 110.0, 10.0, 90.0, 130.0,
          "horizontal field of view ('wide and slightly fisheye', FACTS)"),
    Param(("robot", "camera_pitch_deg"),        "deg", -8.0, 4.0, -15.0, 0.0,
          "camera pitch, negative looks down (varied on the real robot, FACTS)"),
)
# fmt: on


# --------------------------------------------------------------------------------------------
# The model: margins of a batch of parameter vectors
# --------------------------------------------------------------------------------------------


def _get(data: dict, path: tuple) -> float:
    for p in path:
        data = data[p]
    return float(data)  # type: ignore[arg-type]


def _set(data: dict, path: tuple, value: float) -> None:
    for p in path[:-1]:
        data = data[p]
    data[path[-1]] = float(value)


DECIMALS = {"m": 3, "m/s": 3, "deg": 1}
"""Precision written for each unit: millimetres, millimetres per second, tenths of a degree."""


def rounded(theta: np.ndarray) -> np.ndarray:
    return np.array([round(float(v), DECIMALS[p.unit]) + 0.0 for p, v in zip(PARAMS, theta, strict=True)])


def dumps(data: dict) -> str:
    """JSON with two-space indents and short lists of numbers kept on one line."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return re.sub(
        r"\[\s+([-0-9.eE,\s]*?)\s+\]",
        lambda m: "[" + ", ".join(v.strip(",") for v in m.group(1).split()) + "]",
        text,
    )


def _key_counts(keys: str) -> np.ndarray:
    """(presses + 1, 6) cumulative displacement coefficients of (f, a, d) in x and y per press."""
    rows = [np.zeros(6)]
    for key in keys:
        lx, ly, _ = KEY_ACTIONS[key]
        sx, sy = np.sign(lx), np.sign(ly)
        row = np.zeros(6)  # x: f, a, d ; y: f, a, d
        if sx and sy:
            row[2], row[5] = sx, sy
        elif sx:
            row[0] = sx
        elif sy:
            row[4] = sy
        rows.append(rows[-1] + row)
    return np.array(rows)


def _dense(coeffs: np.ndarray) -> np.ndarray:
    t = np.linspace(0.0, 1.0, SAMPLES_PER_PRESS, endpoint=False)[:, None]
    pts = [coeffs[i] + (coeffs[i + 1] - coeffs[i]) * t for i in range(len(coeffs) - 1)]
    return np.concatenate([*pts, coeffs[-1:]])


class Model:
    """Margins (m) of every constraint for a batch of parameter vectors, from a base scene spec."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.rhx, self.rhy = spec["robot"]["half_extents_m"][:2]
        self.cam_h = spec["robot"]["camera_height_m"]
        self.cam_off = spec["robot"]["camera_forward_offset_m"]
        self.min_goal = spec["success"]["min_goal_distance_m"]
        self.view_margin = math.radians(spec["success"]["view_margin_deg"])
        self.bottle_r = spec["bottle"]["radius_m"]
        self.target_h = spec["bottle"]["height_m"] * 0.6
        self.sequences = REAL_KEY_SEQUENCES
        self.ends = np.stack([_key_counts(s.keys)[-1] for s in self.sequences])  # (S, 6)
        self.dense = [_dense(_key_counts(s.keys)) for s in self.sequences]
        self.labels = self._labels()

    def _labels(self) -> list[str]:
        labels = []
        for s in self.sequences:
            for what in (
                "box clearance",
                "wall clearance",
                "bottle clearance",
                "crosses the box line",
                "inside goal radius",
                "not too close to the bottle",
                "in front of the bottle",
                "bottle in view (horizontal)",
                "bottle in view (vertical)",
            ):
                labels.append(f"{s.name}: {what}")
        labels += [
            "driving straight collides with the box",
            "the start is outside the goal zone",
            "poses level with the box are outside the goal zone",
        ]
        return labels

    @staticmethod
    def unpack(theta: np.ndarray) -> dict[str, np.ndarray]:
        return {p.name: theta[:, i] for i, p in enumerate(PARAMS)}

    def margins(self, theta: np.ndarray) -> np.ndarray:
        """(N, constraints) margins in metres for (N, params) parameter vectors."""
        theta = np.atleast_2d(theta)
        v = self.unpack(theta)
        f = v["drive.forward_speed_mps"] * KEY_PRESS_DURATION_S
        a = v["drive.strafe_speed_mps"] * KEY_PRESS_DURATION_S
        d = v["drive.diagonal_speed_mps"] * KEY_PRESS_DURATION_S / math.sqrt(2.0)
        y0 = v["start.lateral_offset_m"]
        half_w = v["corridor.half_width_m"]
        box_x = v["obstacle_distance_m.medium"]
        hx, hy = v["box.half_extents_m.0"], v["box.half_extents_m.1"]
        bottle_x = box_x + v["bottle.gap_behind_box_m"]
        radius = v["success.goal_radius_m"]
        hfov = np.radians(v["robot.camera_hfov_deg"])
        vfov = 2 * np.arctan(np.tan(hfov / 2) * 9 / 16)
        pitch = np.radians(v["robot.camera_pitch_deg"])
        fad = np.stack([f, a, d], axis=1)  # (N, 3)

        out = []
        for k in range(len(self.sequences)):
            pts = self.dense[k]  # (M, 6)
            x = fad @ pts[:, :3].T  # (N, M)
            y = fad @ pts[:, 3:].T + y0[:, None]
            ex, ey = hx[:, None] + self.rhx, hy[:, None] + self.rhy
            dx, dy = np.abs(x - box_x[:, None]) - ex, np.abs(y) - ey
            box_gap = np.where(
                (dx > 0) | (dy > 0), np.hypot(np.maximum(dx, 0), np.maximum(dy, 0)), np.maximum(dx, dy)
            ).min(axis=1)
            wall_gap = half_w - self.rhy - np.abs(y).max(axis=1)
            bx_, by_ = np.abs(bottle_x[:, None] - x) - self.rhx, np.abs(y) - self.rhy
            bottle_gap = (np.hypot(np.maximum(bx_, 0), np.maximum(by_, 0)) - self.bottle_r).min(axis=1)
            xe, ye = x[:, -1], y[:, -1]
            dist = np.hypot(bottle_x - xe, ye)
            # camera: eye ahead of the centre, pitched; target on the bottle (as Camera.point_in_view)
            rel = np.stack([bottle_x - xe - self.cam_off, -ye, np.full_like(xe, self.target_h - self.cam_h)])
            fwd = np.stack([np.cos(pitch), np.zeros_like(pitch), np.sin(pitch)])
            up = np.stack([-np.sin(pitch), np.zeros_like(pitch), np.cos(pitch)])
            depth = np.sum(rel * fwd, axis=0)
            lateral = rel[1]
            vertical = np.sum(rel * up, axis=0)
            view_h = depth * np.tan(hfov / 2 - self.view_margin) - np.abs(lateral)
            view_v = depth * np.tan(vfov / 2 - self.view_margin) - np.abs(vertical)
            out += [
                box_gap,
                wall_gap,
                bottle_gap,
                xe - box_x,
                radius - dist,
                dist - self.min_goal,
                bottle_x - xe - self.bottle_r,
                view_h,
                view_v,
            ]
        straight_reach = EPISODE_ACTIONS * f - (box_x - hx - self.rhx)
        straight_blocked = hy + self.rhy - np.abs(y0)
        out.append(np.minimum(straight_reach, straight_blocked))
        out.append(np.hypot(bottle_x, y0) - radius)
        out.append(bottle_x - (box_x + hx) - radius)
        return np.stack(out, axis=1)

    def end_poses(self, theta: np.ndarray) -> np.ndarray:
        """(S, 2) end positions (m) of the real sequences for one parameter vector."""
        v = {k: float(x[0]) for k, x in self.unpack(np.atleast_2d(theta)).items()}
        f = v["drive.forward_speed_mps"] * KEY_PRESS_DURATION_S
        a = v["drive.strafe_speed_mps"] * KEY_PRESS_DURATION_S
        d = v["drive.diagonal_speed_mps"] * KEY_PRESS_DURATION_S / math.sqrt(2.0)
        fad = np.array([f, a, d])
        return np.stack(
            [self.ends[:, :3] @ fad, self.ends[:, 3:] @ fad + v["start.lateral_offset_m"]], axis=1
        )


# --------------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------------


def theta_of(spec: dict) -> np.ndarray:
    return np.array([_get(spec, p.path) for p in PARAMS])


def spec_with(spec: dict, theta: np.ndarray) -> dict:
    out = copy.deepcopy(spec)
    for p, value in zip(PARAMS, theta, strict=True):
        _set(out, p.path, value)
    medium = out["obstacle_distance_m"]["medium"]
    out["obstacle_distance_m"]["close"] = round(medium + CLOSE_OFFSET_M, 3)
    out["obstacle_distance_m"]["far"] = round(medium + FAR_OFFSET_M, 3)
    return out


def fit(model: Model, seed: int = 0) -> tuple[np.ndarray, float]:
    """Two-stage fit; returns the parameter vector (rounded as written) and stage 1's smallest margin.

    Raises:
        RuntimeError: if no numbers within the bounds give ``REQUIRED_MARGIN_M`` everywhere.
    """
    bounds = [(p.low, p.high) for p in PARAMS]
    prior = np.array([p.prior for p in PARAMS])
    scale = np.array([p.scale for p in PARAMS])

    stage1 = differential_evolution(
        lambda thetas: -model.margins(thetas.T).min(axis=1),  # vectorized: thetas is (params, N)
        bounds,
        seed=seed,
        popsize=30,
        maxiter=300,
        tol=1e-10,
        polish=False,
        vectorized=True,
        updating="deferred",
    )
    best = -float(stage1.fun)
    if best < REQUIRED_MARGIN_M:
        raise RuntimeError(
            f"the best smallest margin within the bounds is {best:.3f} m < {REQUIRED_MARGIN_M} m required"
        )
    stage2 = minimize(
        lambda theta: float(np.sum(((theta - prior) / scale) ** 2)),
        stage1.x,
        method="SLSQP",
        bounds=bounds,
        constraints=[
            {"type": "ineq", "fun": lambda theta: model.margins(theta[None])[0] - REQUIRED_MARGIN_M}
        ],
        options={"maxiter": 500, "ftol": 1e-12},
    )
    # SLSQP may end on a kink of a clearance (a non-smooth minimum) with a line-search message;
    # what counts is that the point is feasible, checked here after rounding.
    theta = rounded(stage2.x)
    if model.margins(theta[None]).min() < REQUIRED_MARGIN_M - 2e-3:
        raise RuntimeError(f"stage 2 did not keep the required margin: {stage2.message}")
    return theta, best


def set_by(model: Model, theta: np.ndarray, i: int) -> str:
    """The constraint that holds number ``i`` away from its prior: the one whose margin falls
    below ``REQUIRED_MARGIN_M`` first when the number alone moves toward its prior."""
    p = PARAMS[i]
    if abs(theta[i] - p.prior) <= 1e-3 * p.scale:
        return "its prior (no constraint needs another value)"
    step = math.copysign(min(abs(p.prior - theta[i]), 0.02 * p.scale), p.prior - theta[i])
    moved = theta.copy()
    moved[i] += step
    margins = model.margins(moved[None])[0]
    j = int(np.argmin(margins))
    if margins[j] < REQUIRED_MARGIN_M - 1e-6:
        return model.labels[j]
    return "a trade-off with other numbers (no single constraint binds it)"


def feasible_range(model: Model, theta: np.ndarray, i: int) -> tuple[tuple[float, str], tuple[float, str]]:
    """How far parameter ``i`` alone can move (within its bounds) with every margin still >= 0,
    and the constraint that fails first at each end ("bound" when none does)."""
    p = PARAMS[i]

    def at(value: float) -> np.ndarray:
        t = theta.copy()
        t[i] = value
        return model.margins(t[None])[0]

    def smallest(value: float) -> float:
        return float(at(value).min())

    ends = []
    for edge in (p.low, p.high):
        grid = np.linspace(theta[i], edge, 201)
        values = [smallest(g) for g in grid]
        bad = next((j for j, m in enumerate(values) if m < 0), None)
        if bad is None:
            ends.append((edge, "bound"))
            continue
        root = brentq(smallest, grid[bad - 1], grid[bad], xtol=1e-6) if bad > 0 else theta[i]
        beyond = grid[bad]
        ends.append((root, model.labels[int(np.argmin(at(beyond)))]))
    return ends[0], ends[1]


# --------------------------------------------------------------------------------------------
# Printing, writing, verifying
# --------------------------------------------------------------------------------------------


def sequence_table(model: Model, theta: np.ndarray) -> list[dict]:
    m = model.margins(theta[None])[0]
    ends = model.end_poses(theta)
    rows = []
    per = 9
    for k, s in enumerate(model.sequences):
        mk = m[k * per : (k + 1) * per]
        rows.append(
            {
                "side": s.side,
                "keys": s.keys,
                "episodes": s.episodes,
                "end_xy_m": [round(float(ends[k, 0]), 3), round(float(ends[k, 1]), 3)],
                "box_clearance_m": round(float(mk[0]), 3),
                "wall_clearance_m": round(float(mk[1]), 3),
                "goal_margin_m": round(float(mk[4]), 3),
                "view_margin_m": round(float(min(mk[7], mk[8])), 3),
                "smallest_margin_m": round(float(mk.min()), 3),
                "smallest_is": model.labels[k * per + int(np.argmin(mk))].split(": ", 1)[1],
            }
        )
    return rows


def parameter_table(model: Model, theta: np.ndarray) -> list[dict]:
    rows = []
    for i, p in enumerate(PARAMS):
        (lo, lo_by), (hi, hi_by) = feasible_range(model, theta, i)
        below = theta[i] - lo if lo_by != "bound" else math.inf
        above = hi - theta[i] if hi_by != "bound" else math.inf
        rows.append(
            {
                "value": float(theta[i]),
                "unit": p.unit,
                "prior": p.prior,
                "bounds": [p.low, p.high],
                "set_by": set_by(model, theta, i),
                "feasible_range": [round(float(lo), 4), round(float(hi), 4)],
                "limited_below_by": lo_by,
                "limited_above_by": hi_by,
                "margin": None if math.isinf(min(below, above)) else round(float(min(below, above)), 4),
                "meaning": p.meaning,
            }
        )
    return rows


def print_report(model: Model, theta: np.ndarray, best: float | None) -> dict:
    margins = model.margins(theta[None])[0]
    smallest = float(margins.min())
    seqs = sequence_table(model, theta)
    params = parameter_table(model, theta)
    print("Real key sequences in their own scene (model, randomization off); margins in m:")
    head = f"{'sequence':<26}{'real':>5}{'end x,y':>14}{'box':>7}{'wall':>7}{'goal':>7}{'view':>7}  smallest"
    print(head)
    for r in seqs:
        name = next(s.name for s in model.sequences if s.keys == r["keys"] and s.side == r["side"])
        print(
            f"{name:<26}{r['episodes']:>5}{r['end_xy_m'][0]:>7.2f},{r['end_xy_m'][1]:>5.2f} "
            f"{r['box_clearance_m']:>6.3f}{r['wall_clearance_m']:>7.3f}{r['goal_margin_m']:>7.3f}"
            f"{r['view_margin_m']:>7.3f}  {r['smallest_margin_m']:.3f} ({r['smallest_is']})"
        )
    print("\nWhat must fail (margin m):")
    for label, value in zip(model.labels[-3:], margins[-3:], strict=True):
        print(f"  {label:<52}{value:>7.3f}")
    print(
        f"\nsmallest margin {smallest:.3f} m" + (f" (stage 1 best {best:.3f} m)" if best is not None else "")
    )
    print(
        f"\nFitted numbers: what held each away from its prior (at the required {REQUIRED_MARGIN_M} m), "
        "and the range it could take alone with every constraint still holding (margin >= 0):"
    )
    print(f"{'number':<30}{'value':>8}{'prior':>7}  {'set by':<52}{'feasible range':<16}{'margin':>7}")
    for p, r in zip(PARAMS, params, strict=True):
        lo, hi = r["feasible_range"]
        margin = "-" if r["margin"] is None else f"{r['margin']:.3g}"
        print(
            f"{p.name:<30}{r['value']:>8.4g}{r['prior']:>7.4g}  {r['set_by'][:51]:<52}"
            f"[{lo:.3g}, {hi:.3g}]".ljust(16)
            + f"{margin:>7}"
        )
    print("\nWhat ends each feasible range (below | above):")
    for p, r in zip(PARAMS, params, strict=True):
        print(f"  {p.name:<30}{r['limited_below_by']} | {r['limited_above_by']}")
    return {"smallest_margin_m": round(smallest, 4), "sequences": seqs, "parameters": params}


def write_spec(path: Path, spec: dict, theta: np.ndarray, report: dict, best: float) -> None:
    out = spec_with(spec, theta)
    out["calibration"] = {
        "why": (
            "Written by scripts/fit_calibration.py --fit --write (read its docstring): every real key "
            "sequence of FACTS.md must succeed in its scene with margin, straight driving must collide, "
            "the start and poses level with the box must be outside the goal zone. Stage 1 maximized "
            f"the smallest margin ({best:.3f} m possible); stage 2 stayed closest to the priors with "
            f"every margin >= {REQUIRED_MARGIN_M} m. Per number: the range it could take alone (others fixed) before a constraint "
            "fails, the constraint at each end, and the margin left (distance to the nearer end)."
        ),
        "smallest_margin_m": report["smallest_margin_m"],
        "best_possible_smallest_margin_m": round(best, 4),
        "required_margin_m": REQUIRED_MARGIN_M,
        "fitted": {p.name: r for p, r in zip(PARAMS, report["parameters"], strict=True)},
        "sequences": report["sequences"],
    }
    atomic_write_text(path, dumps(out) + "\n")


def verify(spec: dict, model: Model, theta: np.ndarray) -> bool:
    """Replay every real sequence in the env built from ``spec`` with ``theta``; compare with the model."""
    import gymnasium as gym

    import mvla_sim
    from mvla_sim.facts import key_sequence_actions

    ok = True
    ends = model.end_poses(theta)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.json"
        path.write_text(json.dumps(spec_with(spec, theta)), encoding="utf-8")
        print("\nReplayed in mvla_sim (randomization off): own scene / mirrored scene")
        for k, s in enumerate(model.sequences):
            results = []
            for scene in (s.side, "right" if s.side == "left" else "left"):
                env = gym.make(
                    mvla_sim.env_id(scene, "day"), randomize=False, image_size=(64, 36), scene_spec=path
                )
                env.reset(seed=0)
                for action in key_sequence_actions(s.keys):
                    *_, term, trunc, info = env.step(np.asarray(action[:2], dtype=np.float32))
                    if term or trunc:
                        break
                env.close()
                results.append(info)
            own, mirrored = results
            gap = float(np.hypot(*(np.asarray(own["robot_xy"]) - ends[k])))
            side_rule = not mirrored["is_success"] and mirrored["side_passed"] == s.side
            ok &= own["is_success"] and side_rule and gap < 1e-6
            print(
                f"  {s.name:<26} own {'success' if own['is_success'] else 'FAIL':<8} mirrored "
                f"{'fails side rule' if side_rule else 'WRONG':<16} clearance {own['min_clearance_m']:.3f} m, "
                f"end pose vs model {gap * 1000:.2f} mm"
            )
    print("verified" if ok else "VERIFY FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--spec", type=Path, default=DEFAULT_SCENE, help="scene spec JSON (default: the bundled one)"
    )
    parser.add_argument("--fit", action="store_true", help="fit the numbers (about a minute)")
    parser.add_argument("--write", action="store_true", help="with --fit: write them into --spec")
    parser.add_argument("--verify", action="store_true", help="replay every sequence in mvla_sim too")
    parser.add_argument("--seed", type=int, default=0, help="seed of the optimizer (default 0)")
    args = parser.parse_args(argv)
    if args.write and not args.fit:
        parser.error("--write needs --fit")
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    model = Model(spec)
    best = None
    theta = theta_of(spec)
    if args.fit:
        theta, best = fit(model, args.seed)
    report = print_report(model, theta, best)
    if args.write:
        write_spec(args.spec, spec, theta, report, best)  # type: ignore[arg-type]
        print(f"\nwrote {args.spec}")
    ok = report["smallest_margin_m"] > 0
    if args.verify:
        ok &= verify(spec, model, theta)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
