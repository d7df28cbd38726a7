"""Training eras and the two reproduction profiles of a Mobile VLA checkpoint.

This module owns *what the model is shown* at inference, as one record,
:class:`InferenceSettings`, resolved from a profile, the checkpoint's training era (or the recipe
its run recorded) and the user's overrides:

* ``as_trained``: exactly what the model saw in training (FACTS.md, "Training eras"): PIL
  bilinear resize of the frame, ``/255`` (CLIP mean/std from 2026-02-03), the instruction its
  era used (one constant string up to 2025-12-05, the episode's own after), the prompt
  ``<grounding>An image of a robot {instruction}`` tokenized as the fork's collater does (no
  padding), the causal window, whose history starts, as every recorded episode does, with the
  ``episode_start`` frame (the first observation, counted twice); the action decoded from the
  first chunk element of the newest step (x 1.15, or the class map);
* ``as_deployed``: exactly the team's inference server and robot client (FACTS.md, "How the team
  deploys"): the client's 224x224 resize + JPEG + base64 (``transport="jpeg"``), the server's
  bicubic resize, ``/255`` + CLIP, the prompt padded to ``tokenizer.max_text_len``, the head's own
  history, the first call after a reset answered ``[0, 0]``, the server's decode (x 1.15 or the
  class map, by the config's ``inference_mode``), its clip to +-1.5, and the client's drive rule
  (stop unless a component exceeds 0.1, else drive toward the whole-degree direction).

Both profiles share the fork's head history: for the first ``window_size`` frames the LSTM steps
through every frame since the reset, later it re-runs over the last ``window_size`` frames from a
zero state (the fork's ``LSTMDecoder.forward`` with one frame per call; for frames inside the
window this equals its training forward over the whole window, which is causal).

Era, in order of precedence: an explicit ``era=`` setting (a name of :data:`ERAS` or a date),
the run folder's date (``runs/<exp>/kosmos/<task>/<YYYY-MM-DD>/<exp>/``), else the newest era
with a warning. A run of this project records its recipe in its config and needs no era.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from mvla_sim.facts import KEY_ACTION_VALUE
from policies.vla.config import (
    CHANNEL_ORDERS,
    DEFAULT_FORWARD_PATH,
    FORWARD_PATH_EVIDENCE,
    FORWARD_PATH_LAYOUTS,
    FORWARD_PATHS,
    INSTRUCTION_MODES,
    NORMALIZATIONS,
    TOKEN_LAYOUTS,
    TrainingRecipe,
    VLAConfig,
    forward_path_of,
)

logger = logging.getLogger(__name__)

AS_TRAINED, AS_DEPLOYED = "as_trained", "as_deployed"
PROFILES: tuple[str, ...] = (AS_TRAINED, AS_DEPLOYED)
DEFAULT_PROFILE: str = AS_TRAINED
"""The profile used wherever none is named: what the model saw in training."""
TRANSPORTS: tuple[str, ...] = ("none", "jpeg")
RESIZES: tuple[str, ...] = ("bilinear", "bicubic")
TEXT_PADDINGS: tuple[str, ...] = ("none", "max_length")
DECODES: tuple[str, ...] = ("regression", "classification")
ABS_ACTION_SIDES: tuple[str, ...] = ("instruction",)
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")

SERVER_ACTION_CLIP = 1.5
"""The team's server clips each action component to +-1.5."""
REAL_DATA_CHANNEL_ORDER = "bgr"
"""What a checkpoint trained on real data saw: the collector stores the camera's ``bgr8`` frames as
they come and the fork's loader reads them as RGB, so red and blue were swapped in training
(FACTS.md, the episode file); ``as_trained`` swaps the env's RGB frames the same way."""
DEPLOYED_CHANNEL_ORDER = "rgb"
"""The deployed path sees true colours (the client JPEG-encodes the BGR array with OpenCV, the server
decodes RGB)."""


class ProfileError(ValueError):
    """A profile cannot reproduce this checkpoint, or a setting is invalid (the message says why)."""


# ------------------------------------------------------------------------------ eras
@dataclass(frozen=True)
class Era:
    """A period of the fork's dataset code: what every checkpoint trained in it saw."""

    name: str
    first: date | None
    last: date | None
    normalization: str
    instruction: str
    description: str

    def contains(self, day: date) -> bool:
        return (self.first is None or day >= self.first) and (self.last is None or day <= self.last)

    def recipe(self) -> TrainingRecipe:
        return TrainingRecipe(
            normalization=self.normalization,
            instruction=self.instruction,
            token_layout=FORWARD_PATH_LAYOUTS[DEFAULT_FORWARD_PATH],
            resize="bilinear",
            channel_order=REAL_DATA_CHANNEL_ORDER,
            source=f"era:{self.name}",
        )


ERAS: tuple[Era, ...] = (
    Era(
        "constant_instruction",
        None,
        date(2025, 12, 5),
        "none",
        "constant",
        "up to 2025-12-05 (the report's run): PIL bilinear resize, /255 only, the constant instruction "
        "'Navigate to the target location' for every episode",
    ),
    Era(
        "file_instruction",
        date(2025, 12, 6),
        date(2026, 2, 2),
        "none",
        "verbatim",
        "2025-12-06 to 2026-02-02: /255 only, the episode file's language_instruction verbatim",
    ),
    Era(
        "clip_normalized",
        date(2026, 2, 3),
        None,
        "clip",
        "verbatim",
        "from 2026-02-03: /255 then CLIP mean/std, the file's instruction",
    ),
)
ERA_NAMES: tuple[str, ...] = tuple(e.name for e in ERAS)
SUFFIX_DATES: tuple[date, ...] = (date(2026, 2, 2), date(2026, 2, 3))
"""Runs of these days may have trained with ', sliding left' / ', sliding right' / ', moving
forward' appended to the instruction, computed from the very action to predict."""

_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def _parse_date(text: str) -> date | None:
    m = _DATE_RE.match(text)
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def era_for_date(day: date) -> Era:
    return next(e for e in ERAS if e.contains(day))


def run_folder_date(checkpoint: str | Path | None) -> tuple[date, str] | None:
    """The date folder of a run (``.../<YYYY-MM-DD>/<exp>/file.ckpt``) and that folder's path."""
    if checkpoint is None:
        return None
    for parent in Path(checkpoint).parents:
        day = _parse_date(parent.name)
        if day is not None:
            return day, str(parent)
    return None


@dataclass(frozen=True)
class EraDecision:
    """Which era a checkpoint is reproduced in, and why."""

    era: str | None
    source: str
    """``"recipe"``, ``"explicit"``, ``"run folder date"`` or ``"default (newest era)"``."""
    evidence: str
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "era": self.era,
            "source": self.source,
            "evidence": self.evidence,
            "warnings": list(self.warnings),
        }


def decide_era(
    config: VLAConfig, checkpoint: str | Path | None = None, era: str | None = None
) -> EraDecision:
    """The era of a checkpoint: explicit ``era``, else its run folder's date, else the newest."""
    warnings: list[str] = []
    if era is None and config.recipe is not None:
        return EraDecision(None, "recipe", f"the run recorded its recipe ({config.recipe.source})")
    if era is not None:
        day = _parse_date(str(era))
        if str(era) in ERA_NAMES:
            chosen = next(e for e in ERAS if e.name == era)
            evidence = f"era={era!r} given"
        elif day is not None:
            chosen = era_for_date(day)
            evidence = f"era={era!r} given (a training date)"
        else:
            raise ProfileError(f"era must be one of {list(ERA_NAMES)} or a date YYYY-MM-DD, got {era!r}")
        source = "explicit"
    else:
        found = run_folder_date(checkpoint)
        if found is not None:
            day, folder = found
            chosen = era_for_date(day)
            evidence = f"run folder {folder}"
            source = "run folder date"
        else:
            chosen = ERAS[-1]
            day = None
            source = "default (newest era)"
            evidence = "no era= setting and no <YYYY-MM-DD> run folder above the checkpoint"
            warnings.append(
                f"training era unknown: assuming the newest ({chosen.name}: {chosen.description}); "
                "pass era=<name or YYYY-MM-DD> (CLI: --policy-option era=2025-11-20) if the run is older"
            )
    if source != "default (newest era)" and day is not None and day in SUFFIX_DATES:
        warnings.append(
            f"a run of {day.isoformat()} may have trained with an action-dependent suffix (', sliding left' ...) "
            "appended to the instruction; it was computed from the very action to predict and cannot be "
            "reproduced at inference: the instruction is given without it"
        )
    return EraDecision(chosen.name, source, evidence, tuple(warnings))


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class InferenceSettings:
    """Everything between the env's observation and the env's action, for one policy.

    Recorded with every result (``VLAPolicy.settings()``); every field can be overridden.
    """

    profile: str = DEFAULT_PROFILE
    transport: str = "none"
    """``"jpeg"``: the robot client's 224x224 resize + JPEG q95 + base64 and the server's decode."""
    resize: str = "bilinear"
    """PIL filter resizing the (full, unsquared) frame to the model's ``image_size``."""
    normalization: str = "none"
    channel_order: str = "rgb"
    """Order the model gets; env frames are RGB, ``"bgr"`` swaps them."""
    instruction: str = "verbatim"
    constant_instruction: str = "Navigate to the target location"
    prompt_template: str = "<grounding>An image of a robot {instruction}"
    text_padding: str = "none"
    """``"max_length"`` pads the prompt to the config's ``max_text_len`` (the team's server)."""
    token_layout: str = "fork"
    """Derived from ``forward_path`` (or the run's recipe); overriding it sets the forward path too."""
    forward_path: str = DEFAULT_FORWARD_PATH
    """The fork's Kosmos-2 forward (:data:`policies.vla.config.FORWARD_PATHS`): ``"fallback"`` (stock
    transformers: the prompt overwritten by the image features) or ``"patched"`` (the fork's own
    ``modeling_kosmos2.py``: the instruction visible)."""
    decode: str = "regression"
    first_action_zero: bool = False
    """The team's server answers [0, 0] to the first call after a reset."""
    episode_start: bool = False
    """The first observation after a reset also stands for the episode's frame 0 (``episode_start``,
    zero action, the same image as frame 1 in every recorded episode): the head's history starts
    with it twice, as in every training episode, and the first action is the one for frame 1.
    Closed loop only: ``trace()`` runs the head over the frames it is given."""
    action_clip: float = KEY_ACTION_VALUE
    gain: float = 1.0
    """Multiplier on the decoded action before the clip (a knob, not part of either pipeline)."""
    abs_action_side: str | None = None
    """For ``abs_action`` checkpoints: ``"instruction"`` restores linear_y's sign from the
    instruction's side (left +, right -)."""
    execute_steps: int = 1
    """Chunk actions executed before predicting again (1 = every step, as the fork and the server)."""
    temporal_ensemble: bool = False
    """ACT-style ensembling of overlapping chunks (predicts every step)."""
    ensemble_decay: float = 0.01
    device: str = "cpu"
    dtype: str = "float32"
    use_feature_cache: bool = True
    """Encode each frame once (identical results); off = every window frame every step."""
    merge_lora: bool = False
    """Merge LoRA into the base weights for inference (faster; equal up to float rounding)."""
    cpu_threads: int | None = None
    era: str | None = None
    """The era reproduced (``None`` when the run recorded its recipe)."""

    def __post_init__(self) -> None:
        choices = {
            "profile": PROFILES,
            "transport": TRANSPORTS,
            "resize": RESIZES,
            "normalization": NORMALIZATIONS,
            "channel_order": CHANNEL_ORDERS,
            "instruction": INSTRUCTION_MODES,
            "text_padding": TEXT_PADDINGS,
            "token_layout": TOKEN_LAYOUTS,
            "forward_path": FORWARD_PATHS,
            "decode": DECODES,
            "dtype": DTYPES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ProfileError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if self.token_layout != FORWARD_PATH_LAYOUTS[self.forward_path]:
            raise ProfileError(
                f"token_layout {self.token_layout!r} is not what forward_path {self.forward_path!r} lays out "
                f"({FORWARD_PATH_LAYOUTS[self.forward_path]!r}); set one of them"
            )
        if self.abs_action_side is not None and self.abs_action_side not in ABS_ACTION_SIDES:
            raise ProfileError(
                f"abs_action_side must be one of {list(ABS_ACTION_SIDES)} or None, got {self.abs_action_side!r}"
            )
        if "{instruction}" not in self.prompt_template:
            raise ProfileError(
                f"prompt_template must contain '{{instruction}}', got {self.prompt_template!r}"
            )
        if not (
            isinstance(self.action_clip, (int, float))
            and math.isfinite(self.action_clip)
            and self.action_clip > 0
        ):
            raise ProfileError(f"action_clip must be a positive number, got {self.action_clip!r}")
        if not (isinstance(self.gain, (int, float)) and math.isfinite(self.gain) and self.gain > 0):
            raise ProfileError(f"gain must be a positive number, got {self.gain!r}")
        if not (isinstance(self.execute_steps, int) and self.execute_steps >= 1):
            raise ProfileError(f"execute_steps must be an integer >= 1, got {self.execute_steps!r}")
        if self.temporal_ensemble and self.execute_steps != 1:
            raise ProfileError(
                f"temporal_ensemble predicts every step: execute_steps must be 1, got {self.execute_steps!r}"
            )
        if not (math.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0):
            raise ProfileError(f"ensemble_decay must be >= 0, got {self.ensemble_decay!r}")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ProfileError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.device == "cpu" and self.dtype == "float16":
            raise ProfileError("dtype 'float16' is not supported on CPU; use 'float32' or 'bfloat16'")
        if self.cpu_threads is not None and not (isinstance(self.cpu_threads, int) and self.cpu_threads >= 1):
            raise ProfileError(f"cpu_threads must be an integer >= 1 or None, got {self.cpu_threads!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Resolution:
    """A profile resolved for one checkpoint: the settings, the era decision, the overrides."""

    settings: InferenceSettings
    era: EraDecision
    overrides: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.settings.profile,
            "settings": self.settings.to_dict(),
            "era": self.era.to_dict(),
            "overrides": dict(self.overrides),
            "warnings": list(self.warnings),
        }


_NON_SETTING_OVERRIDES = ("era", "forward_path", "token_layout")
"""Overrides applied by :func:`resolve` itself rather than copied onto the profile's settings."""


@dataclass(frozen=True)
class ForwardPathDecision:
    """Which Kosmos-2 forward a checkpoint is reproduced with, and why."""

    forward_path: str
    source: str
    """``"override"``, ``"recipe"`` (this project's run recorded its layout) or ``"default"``."""
    warning: str | None = None


def decide_forward_path(
    config: VLAConfig, profile: str, overrides: dict[str, Any], recipe_source: str | None
) -> ForwardPathDecision:
    """The forward path: ``forward_path=`` or ``token_layout=`` given, else the run's recorded recipe
    (``as_trained`` of this project's runs), else :data:`DEFAULT_FORWARD_PATH` with a warning.

    Raises:
        ProfileError: an unknown path, ``forward_path`` and ``token_layout`` that disagree, or the
            patched path for a checkpoint with ``use_vision_resampler`` (its resampler is not implemented).
    """
    path, layout = overrides.get("forward_path"), overrides.get("token_layout")
    if path is not None and path not in FORWARD_PATHS:
        raise ProfileError(f"forward_path must be one of {list(FORWARD_PATHS)}, got {path!r}")
    if layout is not None and layout not in TOKEN_LAYOUTS:
        raise ProfileError(f"token_layout must be one of {list(TOKEN_LAYOUTS)}, got {layout!r}")
    if path is not None and layout is not None and FORWARD_PATH_LAYOUTS[path] != layout:
        raise ProfileError(
            f"forward_path={path!r} lays out {FORWARD_PATH_LAYOUTS[path]!r}, not token_layout={layout!r}; give one"
        )
    if path is not None or layout is not None:
        decision = ForwardPathDecision(path or forward_path_of(layout), "override")
    elif profile == AS_TRAINED and recipe_source == "config" and config.recipe is not None:
        decision = ForwardPathDecision(forward_path_of(config.recipe.token_layout), "recipe")
    else:
        machine = "training machine" if profile == AS_TRAINED else "team's inference server"
        decision = ForwardPathDecision(
            DEFAULT_FORWARD_PATH,
            "default",
            f"the Kosmos-2 forward path of the {machine} is not recorded: assuming forward_path="
            f"{DEFAULT_FORWARD_PATH!r} ({FORWARD_PATH_EVIDENCE}); pass forward_path=patched "
            "(CLI: --policy-option forward_path=patched) if the fork's modeling_kosmos2.py was in site-packages",
        )
    if decision.forward_path == "patched" and config.use_vision_resampler:
        raise ProfileError(
            "forward_path='patched' with use_vision_resampler: the fork's patched path feeds the image features "
            "through its PerceiverResampler, which this wrapper does not implement; evaluate it with "
            "forward_path='fallback' (where the resampler has no effect)"
        )
    return decision


def resolve(
    config: VLAConfig,
    profile: str = DEFAULT_PROFILE,
    *,
    checkpoint: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Resolution:
    """The :class:`InferenceSettings` of ``profile`` for a checkpoint, with ``overrides`` applied.

    Raises:
        ProfileError: an unknown profile or setting, an invalid value, or a profile that cannot
            reproduce this checkpoint (``as_deployed`` for ``LSTMDecoder``, say why).
        TypeError: an override that is not a setting (the message lists the valid names).
    """
    if profile not in PROFILES:
        raise ProfileError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    overrides = dict(overrides or {})
    names = set(InferenceSettings.field_names())
    unknown = sorted(k for k in overrides if k not in names or k == "profile")
    if unknown:
        raise TypeError(f"unknown policy settings {unknown}; valid: {sorted(names - {'profile'})}")
    decision = decide_era(config, checkpoint, overrides.get("era"))
    warnings = list(decision.warnings)
    recipe = _recipe_of(config, decision)
    path = decide_forward_path(config, profile, overrides, recipe.source)
    if path.warning:
        warnings.append(path.warning)
    if profile == AS_TRAINED:
        base = _as_trained(config, recipe, decision, path.forward_path)
    else:
        base = _as_deployed(config, recipe, decision, overrides, warnings, path.forward_path)
    if config.abs_action and overrides.get("abs_action_side") is None:
        raise ProfileError(
            "this checkpoint was trained with abs_action (on |linear_y|): it cannot tell which side to strafe. "
            "Pass abs_action_side='instruction' to take the sign from the instruction's side (left +, right -)"
        )
    setting_overrides = {k: v for k, v in overrides.items() if k not in _NON_SETTING_OVERRIDES}
    settings = dataclasses.replace(base, **setting_overrides)
    _check_against_head(config, settings, warnings)
    for w in warnings:
        logger.warning(w)
    return Resolution(settings=settings, era=decision, overrides=overrides, warnings=tuple(warnings))


def _recipe_of(config: VLAConfig, decision: EraDecision) -> TrainingRecipe:
    """The training recipe to reproduce: an explicit era wins, else the run's own, else its era's."""
    if decision.era is not None and (config.recipe is None or decision.source == "explicit"):
        return next(e for e in ERAS if e.name == decision.era).recipe()
    assert config.recipe is not None  # decide_era names an era whenever the run recorded no recipe
    return config.recipe


def _head_decode(config: VLAConfig) -> str:
    return "classification" if config.is_classification else "regression"


def _as_trained(
    config: VLAConfig, recipe: TrainingRecipe, decision: EraDecision, forward_path: str
) -> InferenceSettings:
    """What the model saw in training (module docstring, ``as_trained``)."""
    return InferenceSettings(
        profile=AS_TRAINED,
        transport="none",
        resize=recipe.resize,
        normalization=recipe.normalization,
        channel_order=recipe.channel_order,
        instruction=recipe.instruction,
        constant_instruction=recipe.constant_instruction,
        prompt_template=config.prompt_template,
        text_padding="none",
        token_layout=FORWARD_PATH_LAYOUTS[forward_path],
        forward_path=forward_path,
        decode=_head_decode(config),
        first_action_zero=False,
        episode_start=True,
        action_clip=KEY_ACTION_VALUE,
        era=decision.era,
    )


def _as_deployed(
    config: VLAConfig,
    recipe: TrainingRecipe,
    decision: EraDecision,
    overrides: dict[str, Any],
    warnings: list[str],
    forward_path: str,
) -> InferenceSettings:
    """What the team's server and robot client do (module docstring, ``as_deployed``)."""
    if config.head_type == "LSTMDecoder" and "decode" not in overrides:
        raise ProfileError(
            "as_deployed cannot run an LSTMDecoder checkpoint: the team's server decodes only the head's "
            "first output (the tanh 'actions', one value per step), fails on the missing linear_y and "
            "answers [0, 0] for every frame; evaluate it as_trained"
        )
    server_decode = config.inference_mode or "regression"
    if server_decode != _head_decode(config):
        warnings.append(
            f"the server decodes by the config's inference_mode ({server_decode!r}) while the head is "
            f"{config.head_type}: its outputs are read as {server_decode} (override decode= to change)"
        )
    return InferenceSettings(
        profile=AS_DEPLOYED,
        transport="jpeg",
        resize="bicubic",
        normalization="clip",
        channel_order=DEPLOYED_CHANNEL_ORDER,
        instruction="verbatim",
        constant_instruction=recipe.constant_instruction,
        prompt_template=config.prompt_template,
        text_padding="max_length",
        token_layout=FORWARD_PATH_LAYOUTS[forward_path],
        forward_path=forward_path,
        decode=server_decode,
        first_action_zero=True,
        action_clip=SERVER_ACTION_CLIP,
        era=decision.era,
    )


def _check_against_head(config: VLAConfig, settings: InferenceSettings, warnings: list[str]) -> None:
    """Settings the checkpoint's head cannot honour: a chunk too short, a decode of the other kind."""
    if settings.execute_steps > config.fwd_pred_next_n:
        raise ProfileError(
            f"execute_steps {settings.execute_steps} exceeds the chunk the head predicts ({config.fwd_pred_next_n})"
        )
    if config.is_classification and settings.decode == "regression":
        warnings.append(
            f"classification logits decoded as a regression (the first two logits x {KEY_ACTION_VALUE})"
        )
    if not config.is_classification and settings.decode == "classification":
        raise ProfileError(f"decode='classification' needs a classification head, not {config.head_type}")


__all__ = [
    "DEFAULT_PROFILE",
    "ERAS",
    "DEPLOYED_CHANNEL_ORDER",
    "ERA_NAMES",
    "Era",
    "ForwardPathDecision",
    "REAL_DATA_CHANNEL_ORDER",
    "decide_forward_path",
    "EraDecision",
    "InferenceSettings",
    "PROFILES",
    "ProfileError",
    "Resolution",
    "SERVER_ACTION_CLIP",
    "TRANSPORTS",
    "decide_era",
    "era_for_date",
    "resolve",
    "run_folder_date",
]
