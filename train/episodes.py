"""Episode files in the real Mobile VLA HDF5 layout: write, read, validate and name them.

One episode per ``.h5`` file, laid out exactly as the real collector
(``ROS_action/src/mobile_vla_package/mobile_vla_package/mobile_vla_data_collector.py``) writes it
and as the real ``MobileVLAH5Dataset`` reads it:

| key                    | shape          | dtype                     | storage                       |
|------------------------|----------------|---------------------------|-------------------------------|
| ``images``             | (T, H, W, 3)   | uint8                     | gzip                          |
| ``actions``            | (T, 3)         | float32                   | gzip                          |
| ``action_event_types`` | (T,)           | variable-length UTF-8 str | gzip                          |
| ``language_instruction`` | (1,)         | ``S256`` (UTF-8 bytes)    | uncompressed                  |

``actions`` columns are ``[linear_x, linear_y, angular_z]`` in data units (a key writes +-1.15).
Real frames are 720 x 1280; simulated episodes may store smaller 16:9 frames (e.g. 144 x 256):
every reader resizes to the model's square input anyway, so only the aspect ratio matters.
The writer chunks ``images`` one frame per chunk so that a window of frames reads without
decompressing the whole episode; chunking is invisible to readers (h5py returns the same arrays).

Layouts. The team has written three layouts; ``read_episode`` tells them apart by the file's keys
(never by its name) and returns the same ``Episode`` for all three, with ``Episode.layout``:

| layout      | images                 | actions | events                 | instruction                         |
|-------------|------------------------|---------|------------------------|-------------------------------------|
| ``collector`` (Nov 2025, the table above) | ``images``  | ``actions`` (T, 3) | ``action_event_types`` | ``language_instruction`` (1,) S256 |
| ``v3`` (the collector's mode 2, ``mobile_vla_dataset_v3``) | ``images`` | ``actions`` (T, 3) | ``action_event_types`` | root attribute ``task`` |
| ``v5`` (the team's current data) | ``observations/images`` | ``actions`` (N, 3) | none stored | ``language_instruction`` (1,) S256 |

Detection: ``observations/images`` means v5; root ``images`` with a ``language_instruction`` dataset
means collector; root ``images`` with a ``task`` attribute and no ``language_instruction`` means v3;
root ``images`` with neither is a collector file from before the instruction was added. A file in
none of them fails with one line naming the keys it has. Where a file stores no event types (v5,
and v3 files without them) they are derived from the actions as the collector writes them
(``event_types_for_actions``). ``write_episode(..., layout=)`` writes each layout.

Recorded per file (fields of ``Episode``): ``layout``; ``instruction_source`` (``language_instruction``,
``attrs['task']`` or ``file name``); ``channel_order`` (``rgb``/``bgr``), read from the root attribute
``channel_order`` that ``write_episode`` stores in every layout, else ``rgb`` for this project's
simulated files written before the attribute (``source="mvla_sim"``), else ``bgr`` (the team's
camera publishes ``bgr8`` and the collector stores it as it comes); ``channel_order_source`` says which.

Root attributes: ``episode_name`` (the file name without ``.h5``), ``total_duration`` (s),
``num_frames``, ``action_chunk_size`` (8: a collector constant, not the training chunk of 10),
``obstacle_layout_type`` ("hori"), ``time_period``, ``collection_datetime`` (ISO 8601),
``collection_hour`` and ``collection_minute``.

Event types: frame 0 is ``episode_start`` with a zero action (the image before any key press);
then one frame per key press: ``start_action`` with the key's action for a movement key (the
image is grabbed right after the command is published, i.e. before the 0.4 s of motion), and
``stop_action`` with a zero action when the space bar stopped a motion. The timed stop after
0.4 s writes no frame.

Facts learned from the public code that a reader of these files must know:

- The collector itself does not write ``language_instruction``; the team added it to the files
  afterwards as ``np.array([text.encode("utf-8")], dtype="S256")`` (and later removed time phrases
  such as " in the evening" from the text). Files without it exist; ``read_episode`` can fall back
  to the instruction named by the file name (``instruction_from_name=True``).
- ``time_period`` was derived from the wall clock (dawn 0-6 h, morning 6-12 h, "evening"
  12-18 h, night 18-24 h), so it does not tell the lighting: the file name's ``_evening`` suffix
  does (``EpisodeName.lighting``). Simulated episodes written here store ``"evening"`` or
  ``"day"`` from their lighting.
- Colour: the collector saved frames straight from a ``bgr8`` image, so real ``images`` are BGR
  although the training code treats them as RGB. This module stores and returns arrays as given
  and records their order (``Episode.channel_order``); whether to swap is a reader's setting
  (``train.dataset``'s ``channel_order``, where ``"file"`` follows each file's record).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mvla_sim.facts import (
    EVENT_EPISODE_START,
    EVENT_START_ACTION,
    EVENT_STOP_ACTION,
    INSTRUCTIONS,
    KEY_PRESS_DURATION_S,
    OBSTACLE_DISTANCES,
    SIDES,
)
from mvla_sim.files import atomic_path

logger = logging.getLogger(__name__)

IMAGES_KEY = "images"
ACTIONS_KEY = "actions"
EVENT_TYPES_KEY = "action_event_types"
INSTRUCTION_KEY = "language_instruction"

V5_IMAGES_KEY = "observations/images"
V3_INSTRUCTION_ATTR = "task"
CHANNEL_ORDER_ATTR = "channel_order"

LAYOUT_COLLECTOR = "collector"
LAYOUT_V3 = "v3"
LAYOUT_V5 = "v5"
EPISODE_LAYOUTS: tuple[str, ...] = (LAYOUT_COLLECTOR, LAYOUT_V3, LAYOUT_V5)
"""The episode layouts the team has written (see the module docstring)."""

CHANNEL_ORDERS: tuple[str, ...] = ("rgb", "bgr")
REAL_CAMERA_CHANNEL_ORDER = "bgr"
"""What the team's camera node publishes (``bgr8``) and the collector stores."""

INSTRUCTION_FROM_DATASET = INSTRUCTION_KEY
INSTRUCTION_FROM_TASK_ATTR = f"attrs[{V3_INSTRUCTION_ATTR!r}]"
INSTRUCTION_FROM_NAME = "file name"

SIM_SOURCE = "mvla_sim"
"""Value of the ``source`` attribute of the episodes this project generates."""

ACTION_DIM = 3
"""Columns of ``actions``: linear_x, linear_y, angular_z."""

INSTRUCTION_DTYPE = np.dtype("S256")
INSTRUCTION_MAX_BYTES = INSTRUCTION_DTYPE.itemsize

COLLECTOR_ACTION_CHUNK_SIZE = 8
"""Value of the ``action_chunk_size`` attribute the real collector writes."""

EVENT_TYPES: tuple[str, ...] = (EVENT_EPISODE_START, EVENT_START_ACTION, EVENT_STOP_ACTION)

ATTR_KEYS: tuple[str, ...] = (
    "episode_name",
    "total_duration",
    "num_frames",
    "action_chunk_size",
    "obstacle_layout_type",
    "time_period",
    "collection_datetime",
    "collection_hour",
    "collection_minute",
)
"""Root attributes of a real episode file; ``write_episode`` requires all of them."""

REAL_TIME_PERIOD_HOURS: dict[str, tuple[int, int]] = {
    "dawn": (0, 6),
    "morning": (6, 12),
    "evening": (12, 18),
    "night": (18, 24),
}
"""How the real collector set ``time_period`` from the clock hour (start inclusive, end exclusive)."""

EPISODE_GLOB = "episode_*.h5"

BOX_COUNTS: tuple[str, ...] = ("1box", "2box")
LAYOUTS: tuple[str, ...] = ("hori", "vert")
KINDS: tuple[str, ...] = ("core", "variant")
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"

EPISODE_NAME_PATTERN = (
    "episode_{YYYYMMDD_HHMMSS}_{1box|2box}_{hori|vert}_{left|right}_{core|variant}"
    "_{close|medium|far}[_evening].h5"
)
_NAME_RE = re.compile(
    r"^episode_(?P<timestamp>\d{8}_\d{6})"
    rf"_(?P<boxes>{'|'.join(BOX_COUNTS)})"
    rf"_(?P<layout>{'|'.join(LAYOUTS)})"
    rf"_(?P<side>{'|'.join(SIDES)})"
    rf"_(?P<kind>{'|'.join(KINDS)})"
    rf"_(?P<distance>{'|'.join(OBSTACLE_DISTANCES)})"
    r"(?P<evening>_evening)?$"
)

_H5_COMPRESSION = "gzip"


class EpisodeFormatError(ValueError):
    """An episode file (or in-memory episode) does not follow the real HDF5 layout.

    The message starts with the file name and names the offending key.
    """


class EpisodeNameError(ValueError):
    """An episode file name does not follow ``EPISODE_NAME_PATTERN``."""


# --------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------


def _check_choice(field_name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise EpisodeNameError(f"{field_name}={value!r} is not one of {list(choices)}")


@dataclass(frozen=True)
class EpisodeName:
    """The parts of an episode file name (see ``EPISODE_NAME_PATTERN``).

    ``timestamp`` is naive local time at one-second resolution (sub-second parts are dropped),
    so two episodes written in the same second by the same scenario collide: generators must
    give each episode its own timestamp.
    """

    timestamp: datetime
    boxes: str
    layout: str
    side: str
    kind: str
    distance: str
    evening: bool = False

    def __post_init__(self) -> None:
        ts = self.timestamp
        if isinstance(ts, str):
            try:
                ts = datetime.strptime(ts, TIMESTAMP_FORMAT)
            except ValueError as exc:
                raise EpisodeNameError(f"timestamp {ts!r} is not YYYYMMDD_HHMMSS") from exc
        if not isinstance(ts, datetime):
            raise EpisodeNameError(f"timestamp {ts!r} must be a datetime or a YYYYMMDD_HHMMSS string")
        object.__setattr__(self, "timestamp", ts.replace(microsecond=0))
        _check_choice("boxes", self.boxes, BOX_COUNTS)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("side", self.side, SIDES)
        _check_choice("kind", self.kind, KINDS)
        _check_choice("distance", self.distance, OBSTACLE_DISTANCES)
        if not isinstance(self.evening, bool):
            raise EpisodeNameError(f"evening={self.evening!r} must be a bool")

    @property
    def stem(self) -> str:
        """The file name without ``.h5`` (the value of the ``episode_name`` attribute)."""
        suffix = "_evening" if self.evening else ""
        return (
            f"episode_{self.timestamp.strftime(TIMESTAMP_FORMAT)}_{self.boxes}_{self.layout}"
            f"_{self.side}_{self.kind}_{self.distance}{suffix}"
        )

    @property
    def filename(self) -> str:
        return f"{self.stem}.h5"

    @property
    def lighting(self) -> str:
        """``"evening"`` when the name carries the ``_evening`` suffix, else ``"day"``."""
        return "evening" if self.evening else "day"

    @property
    def scenario(self) -> str:
        """Stratification key: boxes, layout, side, distance and lighting, e.g.
        ``"1box_hori_left_medium_evening"`` (``core``/``variant`` is not part of it)."""
        suffix = "_evening" if self.evening else ""
        return f"{self.boxes}_{self.layout}_{self.side}_{self.distance}{suffix}"


def format_episode_name(
    timestamp: datetime | str,
    boxes: str,
    layout: str,
    side: str,
    kind: str,
    distance: str,
    evening: bool = False,
) -> str:
    """Return the file name ``episode_{YYYYMMDD_HHMMSS}_..._{distance}[_evening].h5``.

    Raises:
        EpisodeNameError: if a part is not one of its allowed values.
    """
    return EpisodeName(timestamp, boxes, layout, side, kind, distance, evening).filename


def parse_episode_name(name: str | os.PathLike[str]) -> EpisodeName:
    """Parse a file name (with or without directory and ``.h5``) into its parts.

    Raises:
        EpisodeNameError: naming the expected pattern when the name does not follow it.
    """
    base = Path(name).name
    stem = base[:-3] if base.endswith(".h5") else base
    match = _NAME_RE.match(stem)
    if match is None:
        raise EpisodeNameError(f"episode file name {base!r} does not match {EPISODE_NAME_PATTERN}")
    try:
        timestamp = datetime.strptime(match["timestamp"], TIMESTAMP_FORMAT)
    except ValueError as exc:
        raise EpisodeNameError(
            f"episode file name {base!r} has an invalid date/time {match['timestamp']!r} "
            f"(pattern {EPISODE_NAME_PATTERN})"
        ) from exc
    return EpisodeName(
        timestamp=timestamp,
        boxes=match["boxes"],
        layout=match["layout"],
        side=match["side"],
        kind=match["kind"],
        distance=match["distance"],
        evening=match["evening"] is not None,
    )


def scenario_of(path: str | os.PathLike[str]) -> str:
    """The stratification key of an episode file, or ``"unknown"`` when its name does not parse."""
    try:
        return parse_episode_name(path).scenario
    except EpisodeNameError:
        return "unknown"


def find_episodes(folder: str | os.PathLike[str], pattern: str = EPISODE_GLOB) -> list[Path]:
    """Episode files in ``folder`` matching ``pattern`` (e.g. ``"episode_2025111*.h5"``), sorted by name.

    Raises:
        FileNotFoundError: if ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"episode folder {str(folder)!r} does not exist")
    return sorted((p for p in folder.glob(pattern) if p.is_file()), key=lambda p: p.name)


# --------------------------------------------------------------------------------------------
# The in-memory episode
# --------------------------------------------------------------------------------------------


@dataclass
class Episode:
    """One episode in memory, field for field the content of a real episode file.

    Attributes:
        images: uint8 (T, H, W, 3), or None when read with ``load_images=False``.
        actions: float32 (T, 3) ``[linear_x, linear_y, angular_z]`` in data units.
        event_types: T strings out of ``EVENT_TYPES``.
        instruction: the language instruction (at most 256 UTF-8 bytes).
        attrs: root attributes (``ATTR_KEYS``; extra keys are written as well). The layout's own
            records (``channel_order``, v3's ``task``) live in the fields below, not here.
        image_shape: (T, H, W, 3); taken from ``images`` when they are present.
        layout: the file layout it was read from or is meant for (``EPISODE_LAYOUTS``).
        channel_order: ``"rgb"`` or ``"bgr"``: the order of the stored ``images``.
        channel_order_source: where ``channel_order`` came from: ``"attribute"`` (the file records
            it), ``"mvla_sim default"`` or ``"camera default"`` (see the module docstring), or
            ``"given"`` for an episode built in memory.
        instruction_source: where the instruction was read: ``"language_instruction"``,
            ``"attrs['task']"``, ``"file name"``, or ``"given"``.
    """

    images: np.ndarray | None
    actions: np.ndarray
    event_types: list[str]
    instruction: str
    attrs: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, ...] | None = None
    layout: str = LAYOUT_COLLECTOR
    channel_order: str = "rgb"
    channel_order_source: str = "given"
    instruction_source: str = "given"

    def __post_init__(self) -> None:
        if self.images is not None:
            self.image_shape = tuple(int(n) for n in self.images.shape)

    @property
    def num_frames(self) -> int:
        return int(self.actions.shape[0])

    @property
    def name(self) -> str:
        return str(self.attrs.get("episode_name", "episode"))

    def validate(self, source: str | None = None) -> None:
        """Check shapes, dtypes, event types and the instruction.

        Raises:
            EpisodeFormatError: naming ``source`` (default: the episode name) and the bad key.
        """
        where = source or self.name
        if self.layout not in EPISODE_LAYOUTS:
            raise EpisodeFormatError(f"{where}: layout={self.layout!r} is not one of {list(EPISODE_LAYOUTS)}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise EpisodeFormatError(
                f"{where}: channel_order={self.channel_order!r} is not one of {list(CHANNEL_ORDERS)}"
            )
        actions = self.actions
        if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.shape[1] != ACTION_DIM:
            raise EpisodeFormatError(
                f"{where}: malformed {ACTIONS_KEY!r}: expected (T, 3) float32, got {_describe(actions)}"
            )
        if actions.dtype != np.float32:
            raise EpisodeFormatError(f"{where}: {ACTIONS_KEY!r} must be float32, got {actions.dtype}")
        num_frames = actions.shape[0]
        if num_frames < 1:
            raise EpisodeFormatError(f"{where}: {ACTIONS_KEY!r} has no frames")
        if not np.all(np.isfinite(actions)):
            raise EpisodeFormatError(f"{where}: {ACTIONS_KEY!r} holds non-finite values")
        if self.images is not None:
            self._check_images(where, num_frames)
        if len(self.event_types) != num_frames:
            raise EpisodeFormatError(
                f"{where}: {EVENT_TYPES_KEY!r} has {len(self.event_types)} entries but "
                f"{ACTIONS_KEY!r} has {num_frames} frames"
            )
        unknown = sorted({str(e) for e in self.event_types} - set(EVENT_TYPES))
        if unknown:
            raise EpisodeFormatError(
                f"{where}: {EVENT_TYPES_KEY!r} holds unknown event types {unknown}; "
                f"expected {list(EVENT_TYPES)}"
            )
        if not isinstance(self.instruction, str) or not self.instruction:
            raise EpisodeFormatError(f"{where}: {INSTRUCTION_KEY!r} must be a non-empty str")
        size = len(self.instruction.encode("utf-8"))
        if size > INSTRUCTION_MAX_BYTES:
            raise EpisodeFormatError(
                f"{where}: {INSTRUCTION_KEY!r} is {size} UTF-8 bytes; the S256 dataset holds at most "
                f"{INSTRUCTION_MAX_BYTES}"
            )
        declared = self.attrs.get("num_frames")
        if declared is not None and int(declared) != num_frames:
            raise EpisodeFormatError(
                f"{where}: attribute 'num_frames'={declared} but the datasets hold {num_frames} frames"
            )

    def _check_images(self, where: str, num_frames: int) -> None:
        images = self.images
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
            raise EpisodeFormatError(
                f"{where}: malformed {IMAGES_KEY!r}: expected (T, H, W, 3) uint8, got {_describe(images)}"
            )
        if images.dtype != np.uint8:
            raise EpisodeFormatError(f"{where}: {IMAGES_KEY!r} must be uint8, got {images.dtype}")
        if images.shape[0] != num_frames:
            raise EpisodeFormatError(
                f"{where}: {IMAGES_KEY!r} has {images.shape[0]} frames but {ACTIONS_KEY!r} has {num_frames}"
            )


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray | h5py.Dataset):
        return f"shape {tuple(value.shape)} {value.dtype}"
    return type(value).__name__


def event_types_for_actions(actions: np.ndarray) -> list[str]:
    """Event types as the real collector writes them for a sequence of key-press actions.

    Frame 0 is ``episode_start``; a later frame is ``stop_action`` when its action is all zero
    (the space bar) and ``start_action`` otherwise.
    """
    actions = np.asarray(actions)
    events = [EVENT_EPISODE_START]
    for action in actions[1:]:
        events.append(EVENT_STOP_ACTION if not np.any(action) else EVENT_START_ACTION)
    return events


def episode_attrs(
    name: EpisodeName | str,
    num_frames: int,
    total_duration_s: float | None = None,
    collection_datetime: datetime | None = None,
    time_period: str | None = None,
) -> dict[str, Any]:
    """The nine root attributes of an episode file.

    Args:
        name: the episode's name (parsed when a string).
        num_frames: T.
        total_duration_s: wall-clock length of the episode; default (T - 1) key presses of
            ``KEY_PRESS_DURATION_S`` each.
        collection_datetime: default the name's timestamp.
        time_period: default ``name.lighting`` ("evening" or "day"); see the module docstring
            for what the real collector stored.
    """
    parsed = name if isinstance(name, EpisodeName) else parse_episode_name(name)
    when = collection_datetime or parsed.timestamp
    if total_duration_s is None:
        total_duration_s = max(num_frames - 1, 0) * KEY_PRESS_DURATION_S
    return {
        "episode_name": parsed.stem,
        "total_duration": float(total_duration_s),
        "num_frames": int(num_frames),
        "action_chunk_size": COLLECTOR_ACTION_CHUNK_SIZE,
        "obstacle_layout_type": parsed.layout,
        "time_period": time_period or parsed.lighting,
        "collection_datetime": when.isoformat(),
        "collection_hour": int(when.hour),
        "collection_minute": int(when.minute),
    }


def make_episode(
    images: np.ndarray,
    actions: np.ndarray,
    instruction: str,
    name: EpisodeName | str,
    *,
    event_types: list[str] | None = None,
    total_duration_s: float | None = None,
    collection_datetime: datetime | None = None,
    time_period: str | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
    channel_order: str = "rgb",
    layout: str = LAYOUT_COLLECTOR,
) -> Episode:
    """Build a valid ``Episode`` from frames and actions, filling events and attributes.

    ``actions`` may be (T, 2) ``[linear_x, linear_y]`` (angular_z is then 0) or (T, 3); it is
    cast to float32. ``images`` must be uint8 (T, H, W, 3), in ``channel_order`` (the env's
    frames are RGB); ``layout`` is the one ``write_episode`` writes by default.

    Raises:
        EpisodeFormatError: if the result is not a valid episode.
        EpisodeNameError: if ``name`` does not parse.
    """
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim == 2 and actions.shape[1] == 2:
        actions = np.concatenate([actions, np.zeros((actions.shape[0], 1), np.float32)], axis=1)
    attrs = episode_attrs(name, actions.shape[0], total_duration_s, collection_datetime, time_period)
    attrs.update(extra_attrs or {})
    episode = Episode(
        images=np.asarray(images),
        actions=actions,
        event_types=list(event_types) if event_types is not None else event_types_for_actions(actions),
        instruction=instruction,
        attrs=attrs,
        layout=layout,
        channel_order=channel_order,
    )
    episode.validate()
    return episode


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_episode(
    path: str | os.PathLike[str],
    episode: Episode,
    *,
    overwrite: bool = False,
    compression_level: int = 4,
    layout: str | None = None,
) -> Path:
    """Write ``episode`` to ``path`` in one of the team's layouts, atomically.

    ``layout`` is ``"collector"``, ``"v3"`` or ``"v5"`` (module docstring; default
    ``episode.layout``). Every layout also gets the root attribute ``channel_order``. The file is
    written through ``mvla_sim.files.atomic_path``: on any error ``path`` is untouched and no
    temporary file is left.

    Raises:
        EpisodeFormatError: if the episode is invalid, lacks an attribute of ``ATTR_KEYS`` or the
            layout is unknown.
        FileExistsError: if ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    layout = episode.layout if layout is None else layout
    if layout not in EPISODE_LAYOUTS:
        raise EpisodeFormatError(f"{path.name}: layout={layout!r} is not one of {list(EPISODE_LAYOUTS)}")
    if episode.images is None:
        raise EpisodeFormatError(f"{path.name}: cannot write an episode read without images")
    episode.validate(source=path.name)
    missing = [key for key in ATTR_KEYS if key not in episode.attrs]
    if missing:
        raise EpisodeFormatError(
            f"{path.name}: missing attribute(s) {missing}; use episode_attrs()/make_episode() to fill them"
        )
    if episode.attrs["episode_name"] != path.stem:
        logger.warning(
            "%s: attribute episode_name=%r differs from the file name",
            path.name,
            episode.attrs["episode_name"],
        )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: episode file exists (pass overwrite=True to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)

    with atomic_path(path) as tmp, h5py.File(tmp, "x") as f:
        _write_content(f, episode, layout, compression_level)
    return path


def _write_content(f: h5py.File, episode: Episode, layout: str, compression_level: int) -> None:
    for key, value in episode.attrs.items():
        f.attrs[key] = value
    f.attrs[CHANNEL_ORDER_ATTR] = episode.channel_order
    images = episode.images
    assert images is not None
    gzip = {"compression": _H5_COMPRESSION, "compression_opts": compression_level}
    images_key = V5_IMAGES_KEY if layout == LAYOUT_V5 else IMAGES_KEY
    f.create_dataset(images_key, data=images, chunks=(1, *images.shape[1:]), **gzip)
    f.create_dataset(ACTIONS_KEY, data=episode.actions, **gzip)
    if layout != LAYOUT_V5:
        events = np.array(episode.event_types, dtype=h5py.string_dtype(encoding="utf-8"))
        f.create_dataset(EVENT_TYPES_KEY, data=events, **gzip)
    if layout == LAYOUT_V3:
        f.attrs[V3_INSTRUCTION_ATTR] = episode.instruction
    else:
        instruction = np.array([episode.instruction.encode("utf-8")], dtype=INSTRUCTION_DTYPE)
        f.create_dataset(INSTRUCTION_KEY, data=instruction)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_episode(
    path: str | os.PathLike[str],
    load_images: bool = True,
    *,
    strict_attrs: bool = False,
    instruction_from_name: bool = False,
) -> Episode:
    """Read and validate one episode file.

    Args:
        path: the ``.h5`` file.
        load_images: when false, ``images`` is None (``image_shape`` is still set): cheap for
            indexing 720p episodes.
        strict_attrs: require every attribute of ``ATTR_KEYS`` (older real files lack some).
        instruction_from_name: when the file has no ``language_instruction``, use the real
            instruction for the side named by the file name instead of failing.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        EpisodeFormatError: naming the file and the missing or malformed key, also for truncated
            or corrupt files.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such episode file")
    try:
        with h5py.File(path, "r") as f:
            return _read_open(f, path, load_images, strict_attrs, instruction_from_name)
    except EpisodeFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise EpisodeFormatError(
            f"{path.name}: unreadable HDF5 episode ({type(exc).__name__}: {exc})"
        ) from exc


def read_frames(path: str | os.PathLike[str], start: int, stop: int) -> np.ndarray:
    """Frames ``start:stop`` of an episode's images (any layout) as uint8 (n, H, W, 3), without the rest.

    Raises:
        EpisodeFormatError: if the file or its images cannot be read.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            images = _images_dataset(f, path, detect_layout(f, path))
            return np.asarray(images[start:stop])
    except EpisodeFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise EpisodeFormatError(
            f"{path.name}: cannot read its images ({type(exc).__name__}: {exc})"
        ) from exc


def _found_keys(f: h5py.File) -> str:
    datasets: list[str] = []
    f.visititems(lambda name, node: datasets.append(name) if isinstance(node, h5py.Dataset) else None)
    return f"datasets {sorted(datasets)} and attributes {sorted(f.attrs)}"


def detect_layout(f: h5py.File, path: str | os.PathLike[str]) -> str:
    """The layout of an open episode file, from its keys (see the module docstring).

    Raises:
        EpisodeFormatError: one line naming the keys found when the file is in no known layout.
    """
    if V5_IMAGES_KEY in f:
        return LAYOUT_V5
    if IMAGES_KEY in f:
        if INSTRUCTION_KEY not in f and V3_INSTRUCTION_ATTR in f.attrs:
            return LAYOUT_V3
        return LAYOUT_COLLECTOR
    raise EpisodeFormatError(
        f"{Path(path).name}: not an episode in any known layout (collector: images, actions, "
        f"action_event_types, language_instruction; v3: images, actions, attrs['task']; v5: "
        f"observations/images, actions, language_instruction); found {_found_keys(f)}"
    )


def _images_dataset(f: h5py.File, path: Path, layout: str) -> h5py.Dataset:
    key = V5_IMAGES_KEY if layout == LAYOUT_V5 else IMAGES_KEY
    images_ds = _require(f, path, key, "(T, H, W, 3) uint8")
    if images_ds.ndim != 4 or images_ds.shape[-1] != 3 or images_ds.dtype != np.uint8:
        raise EpisodeFormatError(
            f"{path.name}: malformed dataset {key!r}: expected (T, H, W, 3) uint8, got {_describe(images_ds)}"
        )
    return images_ds


def _require(f: h5py.File, path: Path, key: str, expected: str) -> h5py.Dataset:
    if key not in f:
        raise EpisodeFormatError(f"{path.name}: missing dataset {key!r} (expected {expected})")
    node = f[key]
    if not isinstance(node, h5py.Dataset):
        raise EpisodeFormatError(f"{path.name}: {key!r} is a group, expected a dataset {expected}")
    return node


def _is_string_dtype(dtype: np.dtype) -> bool:
    return dtype.kind in ("S", "U") or h5py.check_string_dtype(dtype) is not None


def _to_str(value: object) -> str:
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).rstrip(b"\x00").decode("utf-8")
    return str(value)


def _attr_value(value: object) -> Any:
    if isinstance(value, bytes | np.bytes_):
        return _to_str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _read_instruction(f: h5py.File, path: Path, layout: str, from_name: bool) -> tuple[str, str]:
    """The instruction and where it was read (``Episode.instruction_source``)."""
    name = path.name
    if layout == LAYOUT_V3:
        return _to_str(f.attrs[V3_INSTRUCTION_ATTR]), INSTRUCTION_FROM_TASK_ATTR
    if INSTRUCTION_KEY in f:
        instr_ds = _require(f, path, INSTRUCTION_KEY, "(1,) S256")
        if instr_ds.size != 1 or not _is_string_dtype(instr_ds.dtype):
            raise EpisodeFormatError(
                f"{name}: malformed dataset {INSTRUCTION_KEY!r}: expected (1,) S256, got {_describe(instr_ds)}"
            )
        raw = instr_ds[()]
        return _to_str(np.asarray(raw).reshape(-1)[0] if np.ndim(raw) else raw), INSTRUCTION_FROM_DATASET
    if from_name:
        try:
            return INSTRUCTIONS[parse_episode_name(path).side], INSTRUCTION_FROM_NAME
        except EpisodeNameError as exc:
            raise EpisodeFormatError(
                f"{name}: missing dataset {INSTRUCTION_KEY!r} and no side in the file name ({exc})"
            ) from exc
    raise EpisodeFormatError(f"{name}: missing dataset {INSTRUCTION_KEY!r} (expected (1,) S256)")


def _channel_order_of(attrs: dict[str, Any], path: Path) -> tuple[str, str]:
    """The stored channel order and its source; removes the record from ``attrs``."""
    recorded = attrs.pop(CHANNEL_ORDER_ATTR, None)
    if recorded is not None:
        if recorded not in CHANNEL_ORDERS:
            raise EpisodeFormatError(
                f"{path.name}: attribute {CHANNEL_ORDER_ATTR}={recorded!r} is not one of {list(CHANNEL_ORDERS)}"
            )
        return str(recorded), "attribute"
    if attrs.get("source") == SIM_SOURCE:
        return "rgb", "mvla_sim default"
    return REAL_CAMERA_CHANNEL_ORDER, "camera default"


def _read_events(f: h5py.File, path: Path, layout: str, actions: np.ndarray) -> list[str]:
    if EVENT_TYPES_KEY not in f:
        if layout == LAYOUT_COLLECTOR:
            raise EpisodeFormatError(
                f"{path.name}: missing dataset {EVENT_TYPES_KEY!r} (expected (T,) UTF-8 str)"
            )
        return event_types_for_actions(actions)
    events_ds = _require(f, path, EVENT_TYPES_KEY, "(T,) UTF-8 str")
    if events_ds.ndim != 1 or not _is_string_dtype(events_ds.dtype):
        raise EpisodeFormatError(
            f"{path.name}: malformed dataset {EVENT_TYPES_KEY!r}: expected (T,) UTF-8 str, got {_describe(events_ds)}"
        )
    return [_to_str(e) for e in events_ds[()]]


def _read_open(
    f: h5py.File, path: Path, load_images: bool, strict_attrs: bool, instruction_from_name: bool
) -> Episode:
    name = path.name
    layout = detect_layout(f, path)
    images_ds = _images_dataset(f, path, layout)
    actions_ds = _require(f, path, ACTIONS_KEY, "(T, 3) float32")
    if actions_ds.ndim != 2 or actions_ds.shape[1] != ACTION_DIM or actions_ds.dtype.kind != "f":
        raise EpisodeFormatError(
            f"{name}: malformed dataset {ACTIONS_KEY!r}: expected (T, 3) float32, got {_describe(actions_ds)}"
        )
    num_frames = int(actions_ds.shape[0])
    if int(images_ds.shape[0]) != num_frames:
        raise EpisodeFormatError(
            f"{name}: dataset {images_ds.name.lstrip('/')!r} has {images_ds.shape[0]} frames but "
            f"{ACTIONS_KEY!r} has {num_frames}"
        )
    actions = np.asarray(actions_ds[()], dtype=np.float32)
    event_types = _read_events(f, path, layout, actions)
    if len(event_types) != num_frames:
        raise EpisodeFormatError(
            f"{name}: dataset {EVENT_TYPES_KEY!r} has {len(event_types)} frames but {ACTIONS_KEY!r} has {num_frames}"
        )
    instruction, instruction_source = _read_instruction(f, path, layout, instruction_from_name)

    attrs = {key: _attr_value(value) for key, value in f.attrs.items()}
    if layout == LAYOUT_V3:
        attrs.pop(V3_INSTRUCTION_ATTR)
    channel_order, channel_order_source = _channel_order_of(attrs, path)
    if strict_attrs:
        missing = [key for key in ATTR_KEYS if key not in attrs]
        if missing:
            raise EpisodeFormatError(f"{name}: missing attribute(s) {missing}")

    episode = Episode(
        images=np.asarray(images_ds[()]) if load_images else None,
        actions=actions,
        event_types=event_types,
        instruction=instruction,
        attrs=attrs,
        image_shape=tuple(int(n) for n in images_ds.shape),
        layout=layout,
        channel_order=channel_order,
        channel_order_source=channel_order_source,
        instruction_source=instruction_source,
    )
    episode.validate(source=name)
    return episode


def read_episodes(paths: Iterable[str | os.PathLike[str]], load_images: bool = False) -> list[Episode]:
    """``read_episode`` over several files (without images by default)."""
    return [read_episode(p, load_images) for p in paths]
