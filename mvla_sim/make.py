"""One env factory: a scene description (which scene, how randomized, how driven and drawn) to
the Gymnasium env. ``eval.rollout``, ``eval.replay`` and ``train.generate`` all build their envs
here, so a scene option reaches every one of them the same way."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

from mvla_sim.env import DEFAULT_IMAGE_SIZE, check_env_options
from mvla_sim.facts import EPISODE_ACTIONS
from mvla_sim.registration import ENV_IDS, env_id

RANDOMIZATION_CHOICES: tuple[str, ...] = ("none", "default", "hard")
"""``none``: the nominal layout; ``default``: the real set-up's repeatability; ``hard``: wider."""


@dataclass(frozen=True)
class SceneDescription:
    """Everything that decides which env is built, checked when made (``ValueError`` on a bad value).

    Attributes:
        side: ``"left"``/``"right"``, the side on which to pass the box.
        lighting: ``"day"``/``"evening"``.
        obstacle_distance: ``"close"``/``"medium"``/``"far"``.
        randomization: one of :data:`RANDOMIZATION_CHOICES`.
        drive_model: ``"throttle"`` (the real driver) or ``"velocity"``.
        renderer: ``"tiny"`` (CPU) or ``"egl"``.
        lens_distortion: barrel distortion, 0 (none) to 1.
        image_size: observation (width, height) in pixels.
        max_steps: actions before truncation (also the registered step limit of the made env).
        scene_spec: a scene spec JSON, ``None`` for the bundled one.
    """

    side: str = "left"
    lighting: str = "day"
    obstacle_distance: str = "medium"
    randomization: str = "default"
    drive_model: str = "throttle"
    renderer: str = "tiny"
    lens_distortion: float = 0.0
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE
    max_steps: int = EPISODE_ACTIONS
    scene_spec: str | None = None

    def __post_init__(self) -> None:
        if self.randomization not in RANDOMIZATION_CHOICES:
            raise ValueError(
                f"randomization={self.randomization!r} is not valid; choose one of {list(RANDOMIZATION_CHOICES)}"
            )
        size = check_env_options(
            side=self.side,
            lighting=self.lighting,
            obstacle_distance=self.obstacle_distance,
            drive_model=self.drive_model,
            renderer=self.renderer,
            image_size=self.image_size,
            throttle_percent=50.0,
            max_steps=self.max_steps,
            lens_distortion=self.lens_distortion,
        )
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "lens_distortion", float(self.lens_distortion))
        object.__setattr__(self, "max_steps", int(self.max_steps))
        if self.scene_spec is not None:
            object.__setattr__(self, "scene_spec", str(self.scene_spec))

    @classmethod
    def from_id(cls, id: str, **changes: Any) -> SceneDescription:
        """The description of a registered id (``MobileVLA-1BoxLeft-Evening-v0``) with ``changes``."""
        for (side, lighting), known in ENV_IDS.items():
            if known == id:
                return cls(side=side, lighting=lighting, **changes)
        raise ValueError(f"unknown env id {id!r}; the ids are {sorted(ENV_IDS.values())}")

    @property
    def env_id(self) -> str:
        return env_id(self.side, self.lighting)

    def replace(self, **changes: Any) -> SceneDescription:
        return dataclasses.replace(self, **changes)

    def env_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``MobileVLAEnv`` (beside side and lighting, which the id holds)."""
        kwargs: dict[str, Any] = {
            "obstacle_distance": self.obstacle_distance,
            "randomize": self.randomization != "none",
            "randomization": self.randomization,
            "drive_model": self.drive_model,
            "renderer": self.renderer,
            "lens_distortion": self.lens_distortion,
            "image_size": self.image_size,
            "max_steps": self.max_steps,
        }
        if self.scene_spec is not None:
            kwargs["scene_spec"] = Path(self.scene_spec)
        return kwargs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for run configs and summaries."""
        return {**dataclasses.asdict(self), "image_size": list(self.image_size)}


def make_env(scene: SceneDescription | str, *, render_mode: str | None = None, **changes: Any) -> gym.Env:
    """Build the env of ``scene`` (a :class:`SceneDescription`, or a registered id), with
    ``changes`` to the description (``make_env("MobileVLA-1BoxLeft-v0", randomization="none")``).

    The env's step limit (``max_episode_steps``) follows the description's ``max_steps``; the
    passive env checker is off (the ids pass ``check_env``, see the tests).
    """
    if isinstance(scene, str):
        scene = SceneDescription.from_id(scene, **changes)
    elif changes:
        scene = scene.replace(**changes)
    return gym.make(
        scene.env_id,
        max_episode_steps=scene.max_steps,
        render_mode=render_mode,
        disable_env_checker=True,
        **scene.env_kwargs(),
    )


__all__ = ["RANDOMIZATION_CHOICES", "SceneDescription", "make_env"]
