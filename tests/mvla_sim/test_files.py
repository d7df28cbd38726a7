"""The one atomic writer: a crash mid-write leaves the old file intact and no temporary file behind."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mvla_sim.files
from mvla_sim.files import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parents[2]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_replace_the_file_with_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    atomic_write_json(target, {"a": [1, 2], "ü": "x"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": [1, 2], "ü": "x"}
    assert target.read_text(encoding="utf-8").endswith("\n")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert _leftovers(target.parent) == []


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_error_mid_write_keeps_the_old_file_and_no_temp(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "episode.h5"
    target.write_text("old")
    with pytest.raises(type(error)), atomic_path(target) as tmp:
        tmp.write_text("half of the new ")
        raise error
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_failed_rename_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError("rename failed")

    monkeypatch.setattr(mvla_sim.files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_nan_is_refused_when_asked_and_the_old_file_stays(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    target.write_text("old")
    with pytest.raises(ValueError):
        atomic_write_json(target, {"x": float("nan")}, allow_nan=False)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_a_body_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "ckpt.pt"
    with pytest.raises(FileNotFoundError, match="nothing was written"), atomic_path(target):
        pass
    assert not target.exists()


def test_a_killed_process_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """A process killed mid-write (no cleanup can run) still never leaves a half-written target."""
    target = tmp_path / "records.jsonl"
    target.write_text("old")
    code = (
        "import os, sys\n"
        "from mvla_sim.files import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('half')\n"
        "    os._exit(9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=REPO, check=False)
    assert proc.returncode == 9
    assert target.read_text() == "old"


def test_the_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(mvla_sim.files.__file__).read_text(encoding="utf-8"))
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules


MOVES = {"eval/runner/episode.py": "renames a finished video to its outcome's name (a move, not a write)"}


def test_no_other_module_writes_through_its_own_rename() -> None:
    """One writer: no module outside mvla_sim/files.py renames a temporary file into place itself."""
    offenders = []
    for folder in ("mvla_sim", "policies", "train", "eval", "scripts", "benchmarks"):
        for path in sorted((REPO / folder).rglob("*.py")):
            name = str(path.relative_to(REPO))
            if name == "mvla_sim/files.py" or name in MOVES:
                continue
            text = path.read_text(encoding="utf-8")
            if "os.replace(" in text or "os.rename(" in text or "tempfile.mkstemp(" in text:
                offenders.append(name)
    assert offenders == []
