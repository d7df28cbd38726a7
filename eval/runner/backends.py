"""Which runner executes an evaluation's episodes: worker processes, batched slots, or Ray.

Every backend runs the same :class:`eval.runner.episode.EpisodeTask` list with the same episode
runner and yields the same records (only timing fields differ); :func:`make_pool` picks one from
the config (``--workers``, ``--batch N``, ``--backend ray``).
"""

from __future__ import annotations

from typing import Any

from eval.config import RolloutConfig
from eval.runner.policy_factory import PolicySpec
from eval.runner.workers import WorkerPool


def make_pool(
    config: RolloutConfig, torch_needed: bool, max_tasks: int, warm_spec: PolicySpec | None = None
) -> Any:
    """The pool of ``config``: ``run(plan, progress)`` yields results, ``close()`` stops it."""
    if config.backend == "ray":
        from eval.runner.ray_backend import RayPool

        return RayPool(config, torch_needed, max_tasks, warm_spec)
    if config.batch > 0:
        from eval.runner.batched import BatchedPool

        return BatchedPool(config, torch_needed, max_tasks, warm_spec)
    return WorkerPool(config, torch_needed, max_tasks, warm_spec)


__all__ = ["make_pool"]
