"""The GitHub Actions workflow (.github/workflows/ci.yml), checked offline.

``check-jsonschema`` validates it against the GitHub workflow schema it ships (no network), and a
broken workflow is shown to be rejected. Then what the workflow must do, read from its YAML: the
README's install (torch's CPU build first, at the Makefile's version), the README's test command
(``make test``), and the CI rollout's videos and report uploaded by commit, also when tests fail,
from the folders tests/eval/test_ci_rollout.py writes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
SCHEMA = "vendor.github-workflows"


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema")
    if exe is None:
        pytest.fail(
            "check-jsonschema is not installed: pip install check-jsonschema (the 'dev' extra has it)"
        )
    return subprocess.run(
        [exe, "--builtin-schema", SCHEMA, str(path)], capture_output=True, text=True, timeout=120
    )


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def _steps() -> list[dict[str, Any]]:
    jobs = _load(WORKFLOW)["jobs"]
    assert len(jobs) == 1, list(jobs)
    return next(iter(jobs.values()))["steps"]


def _step_using(action: str) -> dict[str, Any]:
    found = [s for s in _steps() if str(s.get("uses", "")).startswith(action + "@")]
    assert len(found) == 1, f"expected one step using {action}, found {len(found)}"
    return found[0]


def test_workflow_passes_the_github_workflow_schema():
    result = _check_jsonschema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace("runs-on:", "runs_on:"),  # a misspelt required key
        lambda text: text.replace("contents: read", "contents: all"),  # a value outside its enum
        lambda text: text.replace("steps:", "stepz:"),
    ],
)
def test_a_broken_workflow_is_rejected(tmp_path, edit):
    broken = edit(WORKFLOW.read_text())
    assert broken != WORKFLOW.read_text()
    path = tmp_path / "ci.yml"
    path.write_text(broken)
    assert _check_jsonschema(path).returncode != 0


def test_workflow_installs_as_the_readme_with_torch_cpu_first():
    setup = _step_using("actions/setup-python")["with"]
    assert str(setup["python-version"]) == "3.11"
    assert setup["cache"] == "pip"
    runs = [str(s.get("run", "")) for s in _steps()]
    makefile_torch = re.search(r"install --quiet (torch==[\d.]+)", (REPO_ROOT / "Makefile").read_text())
    assert makefile_torch is not None, "the Makefile no longer pins torch in `make install`"
    torch_step = next(i for i, run in enumerate(runs) if "torch==" in run)
    assert makefile_torch.group(1) + " " in runs[torch_step] + " "
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_step]
    test_step = next(i for i, run in enumerate(runs) if re.search(r"\bmake test\b", run))
    assert torch_step < test_step
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()  # the same command as .ci/run


def test_workflow_uploads_the_ci_rollout_by_commit_even_on_failure():
    upload = _step_using("actions/upload-artifact")
    assert upload["uses"] == "actions/upload-artifact@v4"
    assert upload["if"] == "always()"
    options = upload["with"]
    assert "${{ github.sha }}" in options["name"]
    assert int(options["retention-days"]) > 0
    paths = {p.strip().rstrip("/") for p in options["path"].splitlines() if p.strip()}
    rollout_test = (REPO_ROOT / "tests" / "eval" / "test_ci_rollout.py").read_text()
    for folder in ("videos/ci", "results/ci"):
        assert folder in paths, paths
        parts = folder.split("/")
        assert f'"{parts[0]}" / "{parts[1]}"' in rollout_test, (
            f"the CI rollout test no longer writes {folder}"
        )


def test_check_jsonschema_is_a_dev_dependency():
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    dev = re.search(r"^dev = \[(.*)\]$", pyproject, flags=re.MULTILINE)
    assert dev is not None and "check-jsonschema" in dev.group(1)
