"""Choose which checkpoints of a training run to evaluate, and carry their val_loss along.

A run folder is what ``train.finetune`` (Lightning's ``ModelCheckpoint``) writes: the top-k
checkpoints named like ``epoch_epoch=06-val_loss=val_loss=0.067.ckpt``, a ``last.ckpt``, and
logger folders ``version_N/metrics.csv``. The val_loss of a checkpoint comes from, in order:

1. the checkpoint callback's saved state (``ckpt["callbacks"]["ModelCheckpoint{...}"]``:
   ``best_k_models`` {absolute path: score}, ``best_model_path``, ``last_model_path``). These
   paths are absolute on the training machine; they are re-based onto the folder the files
   live in now, by file name;
2. the file name (``val_loss=0.067`` or ``val_loss=val_loss=0.067``);
3. ``metrics.csv`` (``epoch,val_loss`` rows), matched to the epoch in the file name.

Only the callback state is read from a checkpoint (``policies.vla.checkpoint_io.read_checkpoint``,
memory-mapped): weights stay on disk.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.messages import one_line

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_RUN_DIR = REPO_ROOT / "assets" / "checkpoints" / "reference"
"""The tiny reference run bundled with the project: the fallback when no run is found."""

_EPOCH_RE = re.compile(r"(?:^|[^a-z])epoch(?:_epoch)?[=_]?(\d+)", re.IGNORECASE)
_VAL_LOSS_RE = re.compile(r"val_loss=(?:val_loss=)?([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_TOPK_RE = re.compile(r"^top(\d+)$", re.IGNORECASE)
_LAST_RE = re.compile(r"^last(?:-v\d+)?$", re.IGNORECASE)


class SelectionError(Exception):
    """Bad checkpoint input; the message is one line naming the path and the fix."""


@dataclass(frozen=True)
class CheckpointChoice:
    """One checkpoint to evaluate.

    Attributes:
        path: where the file is now.
        policy_id: short, file-name-safe id used in records and video names (``epoch06-val0.067``).
        role: why it was chosen: ``top1`` .. ``topK``, ``best``, ``last``, ``explicit``
            (several joined by ``+`` when one file was chosen for several reasons).
        val_loss: its validation loss, or None when no source knows it.
        val_loss_source: ``callback_state``, ``file_name``, ``metrics_csv`` or None.
        epoch: training epoch (from the file name, the checkpoint, or None).
    """

    path: Path
    policy_id: str
    role: str
    val_loss: float | None = None
    val_loss_source: str | None = None
    epoch: int | None = None

    def spec(self) -> dict[str, Any]:
        """The serialisable policy spec a worker process rebuilds the policy from."""
        return {
            "kind": "checkpoint",
            "id": self.policy_id,
            "path": str(self.path),
            "val_loss": self.val_loss,
            "val_loss_source": self.val_loss_source,
            "epoch": self.epoch,
            "role": self.role,
        }


@dataclass
class Selection:
    """The resolved checkpoints and how they were found (recorded in summary.json)."""

    choices: list[CheckpointChoice]
    run_dir: Path | None
    searched: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    used_reference: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "searched": list(self.searched),
            "notes": list(self.notes),
            "used_reference": self.used_reference,
            "checkpoints": [c.spec() for c in self.choices],
        }


@dataclass
class _FileInfo:
    path: Path
    epoch: int | None
    val_loss: float | None
    val_loss_source: str | None
    is_last: bool


@dataclass
class RunScan:
    """What is known about one run folder: its checkpoint files and their val_loss."""

    run_dir: Path
    files: list[_FileInfo]
    callback_state: dict[str, Any] | None
    state_source: Path | None
    metrics: dict[int, float]
    notes: list[str]

    def info(self, path: Path) -> _FileInfo | None:
        for f in self.files:
            if f.path.name == path.name:
                return f
        return None

    def ranked(self) -> list[_FileInfo]:
        """Non-``last`` checkpoints with a known val_loss, best (lowest) first."""
        known = [f for f in self.files if not f.is_last and f.val_loss is not None]
        if self.callback_state is not None:
            in_state = {Path(_basename(p)).name for p in (self.callback_state.get("best_k_models") or {})}
            kept = [f for f in known if f.path.name in in_state]
            if kept:
                known = kept
        return sorted(known, key=lambda f: (f.val_loss, -(f.epoch or 0), f.path.name))

    def last(self) -> _FileInfo | None:
        lasts = [f for f in self.files if f.is_last]
        if self.callback_state and self.callback_state.get("last_model_path"):
            name = _basename(self.callback_state["last_model_path"])
            for f in lasts:
                if f.path.name == name:
                    return f
        if lasts:
            return max(lasts, key=lambda f: (f.path.stat().st_mtime, f.path.name))
        return None


def parse_checkpoint_name(name: str) -> tuple[int | None, float | None]:
    """Return ``(epoch, val_loss)`` read from a checkpoint file name (None where absent).

    Both Lightning name forms work: ``epoch=6-val_loss=0.067.ckpt`` and the real
    ``epoch_epoch=06-val_loss=val_loss=0.067.ckpt``.
    """
    stem = name[:-5] if name.endswith(".ckpt") else name
    epoch_match = _EPOCH_RE.search(stem)
    loss_match = _VAL_LOSS_RE.search(stem)
    epoch = int(epoch_match.group(1)) if epoch_match else None
    val_loss = float(loss_match.group(1)) if loss_match else None
    return epoch, val_loss


def _basename(path: str) -> str:
    """File name of a path written on any OS (training machines may be Windows)."""
    return re.split(r"[\\/]", str(path))[-1]


def _to_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value.item() if hasattr(value, "item") else value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(out):
        return None
    if any(t in str(getattr(value, "dtype", "")) for t in ("float32", "float16")):
        out = float(f"{out:.7g}")  # a float32 tensor's 0.067 reads back as 0.06700000166893005
    return out


def read_checkpoint_meta(path: Path) -> dict[str, Any] | None:
    """Read the ModelCheckpoint callback state (and epoch) from a Lightning checkpoint.

    The file is memory-mapped, so the weights are not read. Returns None when the file cannot
    be read or holds no ModelCheckpoint state.
    """
    from policies.vla.checkpoint_io import CheckpointError, read_checkpoint  # torch: not for file names alone

    try:
        ckpt = read_checkpoint(path, mmap=True)
    except CheckpointError as exc:  # any unreadable file just has no metadata
        logger.warning("could not read checkpoint metadata: %s", exc)
        return None
    if not isinstance(ckpt, dict):
        return None
    meta: dict[str, Any] = {"epoch": ckpt.get("epoch"), "state": None}
    callbacks = ckpt.get("callbacks") or {}
    if isinstance(callbacks, dict):
        for key, state in callbacks.items():
            if "ModelCheckpoint" in str(key) and isinstance(state, dict) and "best_k_models" in state:
                meta["state"] = {
                    "monitor": state.get("monitor"),
                    "best_k_models": {
                        str(p): _to_float(v) for p, v in (state.get("best_k_models") or {}).items()
                    },
                    "best_model_path": state.get("best_model_path") or None,
                    "last_model_path": state.get("last_model_path") or None,
                    "current_score": _to_float(state.get("current_score")),
                    "dirpath": state.get("dirpath"),
                }
                break
    return meta


def read_metrics_csv(run_dir: Path) -> tuple[dict[int, float], list[Path]]:
    """Return ``{epoch: val_loss}`` from the run's ``version_N/metrics.csv`` files.

    Later versions (resumed training) override earlier ones. Also returns the files read.
    """
    candidates = set(run_dir.rglob("metrics.csv"))
    candidates.update(run_dir.parent.glob("version_*/metrics.csv"))

    def version_key(p: Path) -> tuple[int, str]:
        m = re.search(r"version_(\d+)", str(p.parent.name))
        return (int(m.group(1)) if m else -1, str(p))

    metrics: dict[int, float] = {}
    files = sorted(candidates, key=version_key)
    for csv_path in files:
        try:
            with csv_path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    epoch_text, loss_text = (
                        (row.get("epoch") or "").strip(),
                        (row.get("val_loss") or "").strip(),
                    )
                    if not epoch_text or not loss_text:
                        continue
                    loss = _to_float(loss_text)
                    if loss is not None:
                        metrics[int(float(epoch_text))] = loss
        except (OSError, ValueError, csv.Error) as exc:
            logger.warning("could not read %s: %s", csv_path, one_line(exc))
    return metrics, files


def scan_run(run_dir: Path) -> RunScan:
    """Collect the checkpoint files of ``run_dir`` and every val_loss source for them."""
    notes: list[str] = []
    paths = sorted(p for p in run_dir.glob("*.ckpt") if p.is_file())
    files = []
    for p in paths:
        epoch, loss = parse_checkpoint_name(p.name)
        files.append(
            _FileInfo(p, epoch, loss, "file_name" if loss is not None else None, bool(_LAST_RE.match(p.stem)))
        )

    # Callback state: the most recently written checkpoint holds the most complete state.
    state, state_source, last_epoch = None, None, None
    for p in sorted(paths, key=lambda q: (_LAST_RE.match(q.stem) is None, -q.stat().st_mtime)):
        meta = read_checkpoint_meta(p)
        if meta is None:
            continue
        if _LAST_RE.match(p.stem) and meta.get("epoch") is not None:
            last_epoch = int(meta["epoch"])
        if meta.get("state"):
            state, state_source = meta["state"], p
            break
    if state is not None:
        monitor = state.get("monitor")
        if monitor not in (None, "val_loss"):
            notes.append(f"checkpoint callback monitored {monitor!r}, not val_loss; ranking by its score")
        by_name = {_basename(p): v for p, v in state["best_k_models"].items()}
        missing = [n for n in by_name if not (run_dir / n).is_file()]
        if missing:
            notes.append(f"callback state lists files not in {run_dir}: {', '.join(sorted(missing))}")
        for f in files:
            if f.path.name in by_name and by_name[f.path.name] is not None:
                f.val_loss, f.val_loss_source = by_name[f.path.name], "callback_state"
        if (
            state.get("current_score") is not None
            and state_source is not None
            and _LAST_RE.match(state_source.stem)
        ):
            for f in files:
                if f.path == state_source and f.val_loss is None:
                    f.val_loss, f.val_loss_source = state["current_score"], "callback_state"
    for f in files:
        if (
            f.is_last
            and f.epoch is None
            and last_epoch is not None
            and (state_source is None or f.path == state_source)
        ):
            f.epoch = last_epoch

    metrics, metric_files = read_metrics_csv(run_dir)
    if metrics:
        for f in files:
            if f.val_loss is None and f.epoch is not None and f.epoch in metrics:
                f.val_loss, f.val_loss_source = metrics[f.epoch], "metrics_csv"
    return RunScan(run_dir, files, state, state_source, metrics, notes)


def find_run_dir(runs: Path) -> tuple[Path | None, list[str]]:
    """The newest folder at or under ``runs`` holding ``*.ckpt`` files (newest by mtime).

    Returns ``(run_dir or None, [places searched])``.
    """
    searched = [f"{runs}/**/*.ckpt"]
    if not runs.is_dir():
        return None, searched
    newest: tuple[float, str] | None = None
    best: Path | None = None
    for ckpt in runs.rglob("*.ckpt"):
        if not ckpt.is_file():
            continue
        key = (ckpt.stat().st_mtime, str(ckpt.parent))
        if newest is None or key > newest:
            newest, best = key, ckpt.parent
    return best, searched


def _policy_id_for(info: _FileInfo) -> str:
    if info.is_last:
        return "last"
    if info.epoch is not None:
        base = f"epoch{info.epoch:02d}"
        return f"{base}-val{info.val_loss:.3f}" if info.val_loss is not None else base
    return re.sub(r"[^A-Za-z0-9._-]+", "", info.path.stem) or "ckpt"


def _choice(info: _FileInfo, role: str) -> CheckpointChoice:
    return CheckpointChoice(
        path=info.path.resolve(),
        policy_id=_policy_id_for(info),
        role=role,
        val_loss=info.val_loss,
        val_loss_source=info.val_loss_source,
        epoch=info.epoch,
    )


def _merge(choices: Iterable[CheckpointChoice]) -> list[CheckpointChoice]:
    """Drop repeated files (joining their roles) and make policy ids unique."""
    merged: dict[Path, CheckpointChoice] = {}
    for c in choices:
        if c.path in merged:
            old = merged[c.path]
            roles = old.role.split("+")
            if c.role not in roles:
                merged[c.path] = CheckpointChoice(**{**old.__dict__, "role": "+".join([*roles, c.role])})
        else:
            merged[c.path] = c
    out: list[CheckpointChoice] = []
    used: set[str] = set()
    for c in merged.values():
        pid = c.policy_id
        if pid in used:
            pid = f"{re.sub(r'[^A-Za-z0-9._-]+', '', c.path.parent.name)}-{pid}"
        n = 2
        while pid in used:
            pid, n = f"{c.policy_id}-{n}", n + 1
        used.add(pid)
        out.append(CheckpointChoice(**{**c.__dict__, "policy_id": pid}))
    return out


def _pick_from_run(scan: RunScan, tokens: Sequence[str], notes: list[str]) -> list[CheckpointChoice]:
    ranked = scan.ranked()
    picked: list[CheckpointChoice] = []
    for token in tokens:
        m = _TOPK_RE.match(token)
        if m:
            k = int(m.group(1))
            if k < 1:
                raise SelectionError(f"--ckpt {token}: K must be at least 1 (e.g. top3)")
            if not ranked:
                # No val_loss anywhere: fall back to the newest non-last checkpoints.
                others = sorted(
                    (f for f in scan.files if not f.is_last), key=lambda f: -f.path.stat().st_mtime
                )
                pool = others or scan.files
                notes.append(
                    f"no val_loss known for the checkpoints in {scan.run_dir} (no callback state, none in file "
                    f"names, no metrics.csv); taking the {min(k, len(pool))} newest instead"
                )
                picked += [_choice(f, f"top{i + 1}") for i, f in enumerate(pool[:k])]
                continue
            if len(ranked) < k:
                notes.append(f"{token}: only {len(ranked)} checkpoint(s) with a val_loss in {scan.run_dir}")
            picked += [_choice(f, f"top{i + 1}") for i, f in enumerate(ranked[:k])]
        elif token.lower() == "best":
            best = None
            if scan.callback_state and scan.callback_state.get("best_model_path"):
                best = scan.info(Path(_basename(scan.callback_state["best_model_path"])))
            best = best or (ranked[0] if ranked else None)
            if best is None:
                raise SelectionError(
                    f"--ckpt best: no checkpoint with a val_loss in {scan.run_dir}; pass a checkpoint path instead"
                )
            picked.append(_choice(best, "best"))
        elif token.lower() == "last":
            last = scan.last()
            if last is None:
                raise SelectionError(
                    f"--ckpt last: no last.ckpt in {scan.run_dir}; use --ckpt top3 or pass a checkpoint path"
                )
            picked.append(_choice(last, "last"))
    return picked


def _explicit(path_text: str) -> CheckpointChoice:
    path = Path(path_text).expanduser()
    if not path.exists():
        raise SelectionError(
            f"checkpoint {path} does not exist; pass an existing .ckpt file, or --ckpt top3 --runs RUN_DIR"
        )
    if path.is_dir():
        raise SelectionError(
            f"{path} is a folder; to evaluate its best checkpoints use --runs {path} --ckpt top3"
        )
    scan = scan_run(path.parent)
    info = scan.info(path) or _FileInfo(path, *parse_checkpoint_name(path.name), None, False)
    if info.val_loss is not None and info.val_loss_source is None:
        info.val_loss_source = "file_name"
    return _choice(info, "explicit")


def is_selector(token: str) -> bool:
    """True for ``topK``, ``best`` and ``last`` (anything else is a path)."""
    return bool(_TOPK_RE.match(token)) or token.lower() in ("best", "last")


def resolve_checkpoints(
    ckpt: Sequence[str],
    runs: Path,
    *,
    runs_explicit: bool = False,
    reference_dir: Path = REFERENCE_RUN_DIR,
) -> Selection:
    """Resolve ``--ckpt`` tokens (``top3``, ``best``, ``last``, paths; commas allowed) to checkpoints.

    ``runs`` is searched recursively for the newest folder holding ``*.ckpt``. When none is found
    and ``runs`` is the default (``runs_explicit`` False), the bundled reference run is used
    instead, with a note. A ``runs`` the user named that is missing or empty is an error.

    Raises:
        SelectionError: with a one-line message naming the path and the fix.
    """
    tokens = [t.strip() for item in ckpt for t in str(item).split(",") if t.strip()]
    if not tokens:
        raise SelectionError("--ckpt is empty; use e.g. --ckpt top3, --ckpt best,last or --ckpt PATH.ckpt")
    selectors = [t for t in tokens if is_selector(t)]
    paths = [t for t in tokens if not is_selector(t)]
    notes: list[str] = []
    searched: list[str] = []
    choices = [_explicit(p) for p in paths]
    run_dir: Path | None = None
    used_reference = False

    if selectors:
        if runs_explicit and not runs.exists():
            raise SelectionError(
                f"run folder {runs} does not exist; point --runs at a training output folder (e.g. runs/)"
            )
        run_dir, searched = find_run_dir(runs)
        if run_dir is None:
            if runs_explicit:
                raise SelectionError(
                    f"no *.ckpt files under {runs}; train first (python -m train.finetune) or point --runs at "
                    f"a folder with checkpoints"
                )
            searched.append(f"{reference_dir}/*.ckpt")
            if not any(reference_dir.glob("*.ckpt")):
                raise SelectionError(
                    f"no checkpoints under {runs} and no bundled reference run in {reference_dir}; train first "
                    f"(python -m train.finetune) or pass --runs DIR / --ckpt PATH.ckpt"
                )
            msg = f"no checkpoints found under {runs}; using the bundled reference run {reference_dir}"
            logger.warning(msg)
            notes.append(msg)
            run_dir, used_reference = reference_dir, True
        logger.info("run folder: %s", run_dir)
        scan = scan_run(run_dir)
        notes += scan.notes
        choices = _pick_from_run(scan, selectors, notes) + choices
    for note in notes:
        if not note.startswith("no checkpoints found"):
            logger.warning(note)
    return Selection(_merge(choices), run_dir, searched, notes, used_reference)
