"""What a results folder was made with: software versions, git revision, and the episode settings.

``environment_info()`` goes into ``summary.json``; ``check_resume()`` writes
``run_config.json`` and refuses to resume a folder made with other episode settings (its
finished episodes would not be comparable with new ones).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from eval.config import SECRET_OPTIONS, RolloutConfig, UsageError
from eval.results import records as rec
from eval.select import REPO_ROOT

PACKAGES = (
    "mvla-sim", "numpy", "scipy", "gymnasium", "pybullet", "torch", "transformers", "peft",
    "lightning", "matplotlib", "imageio", "imageio-ffmpeg", "pillow", "requests", "fastapi", "uvicorn",
)  # fmt: skip


def environment_info() -> dict[str, Any]:
    """Python, package versions and git revision (recorded in summary.json)."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    git: dict[str, Any] = {"revision": None, "dirty": None}
    try:
        git["revision"] = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
        git["dirty"] = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "packages": packages,
        "git": git,
    }


def episode_settings(config: RolloutConfig) -> dict[str, Any]:
    """The settings that change episode results: a resumed folder must match them."""
    return rec.to_jsonable(
        {
            "seed": config.seed,
            "scene": config.scene.to_dict(),
            "env_factory": config.env_factory,
            "policy_options": {k: v for k, v in config.policy_options.items() if k not in SECRET_OPTIONS},
        }
    )


def open_results(config: RolloutConfig) -> None:
    """Make the results folder ``config.out``; refuse one made with other episode settings."""
    config.out.mkdir(parents=True, exist_ok=True)
    check_resume(config.out, config)


def check_resume(out: Path, config: RolloutConfig) -> None:
    """Refuse a results folder made with other episode settings; then record this run's settings.

    Raises:
        UsageError: ``out/run_config.json`` holds other episode settings (one line, with the diff).
    """
    path = out / "run_config.json"
    settings = episode_settings(config)
    if path.exists():
        try:
            previous = json.loads(path.read_text()).get("episode_settings")
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous is not None and previous != settings:
            diff = {k: (previous.get(k), v) for k, v in settings.items() if previous.get(k) != v}
            raise UsageError(
                f"{out} holds results made with other episode settings {diff} (old, new); "
                f"use a new --out folder or the old settings"
            )
    rec.write_json_atomic(path, {"episode_settings": settings, "config": config.to_dict()})


__all__ = ["check_resume", "environment_info", "episode_settings", "open_results"]
