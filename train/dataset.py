"""PyTorch dataset of training windows over real and simulated episode files.

A sample is what the real RoboVLMs ``MobileVLAH5Dataset`` + collater feed the model
(``window_size`` 8, ``fwd_pred_next_n`` 10):

- ``window_size`` consecutive frames starting at ``start``;
- for each frame ``t`` of the window, the action chunk ``actions[start + t : start + t + fwd_pred_next_n]``
  (the frame's own action first), only ``[linear_x, linear_y]``, clamped to [-1, 1] (so a key's
  1.15 becomes 1.0);
- masks: ``action_mask[t, k]`` is 0 where ``start + t + k`` is past the episode's end, and
  ``frame_mask[t]`` is 0 for frames past the end (their images are zeros).

Windows (``windows="real"``, the default) start at every ``start`` in
``0 .. T - (window_size + fwd_pred_next_n)``, as the real loader's length; a real 18-frame episode gives exactly one window. An episode shorter than 18
frames gives one window at ``start = 0``, zero-padded. (The real loader pads with zeros too but
leaves its masks at 1 past the end; this one masks them. For an 18-frame episode the chunks are
exactly the real collater's: it drops the last action and unfolds the 17 others into 8 chunks of
10. The real training ``__getitem__`` also ignored its index and drew a random episode and start;
here every window is one index, so a shuffling sampler plays that role. The config's ``rgb_pad``
(10) is stored by the real loader but never applied.)

``windows="every_step"`` gives instead one window per key press ``t = 1 .. T-1``: the frames
the deployed head runs over at its ``t``-th decision (frames ``max(0, t-W+1) .. t``, from a zero
LSTM state; the fork's head is causal and never pads with the first frame), zero-padded after
``t``, with only position ``t`` supervised. Frame 0 (``episode_start``, zero action, the same
image as frame 1) is never supervised. The real loader never feeds frames 8-17 of
an 18-frame episode as inputs, so the model it trains sees, late in an episode, windows it was
never trained on; this mode closes that gap. ``windows="episode"`` returns whole episodes
(padded to the longest one) with the same frame mask: the training module then encodes every
frame once and unfolds the ``every_step`` windows from the per-frame features, which gives the
same loss with 8x fewer backbone passes (frames are independent through the backbone).

Images: the real pipeline squashes the whole 16:9 frame to a square (PIL bilinear on uint8, to
224 x 224); ``image_size`` does exactly that (:func:`policies.vla.processors.resize_frame`). Items carry uint8 (T, H, W, 3);
``collate`` makes them (B, T, 3, S, S), uint8 or float in [0, 1]. Mean/std normalization
(CLIP's, in the run's config) belongs to the model's preprocessing, not here.

Colour: real frames were saved straight from the camera's ``bgr8`` image, and the real training
code fed them to the model as if RGB. ``channel_order`` says how the frames of a source are stored:
``"bgr"`` swaps them to RGB on read, ``"rgb"`` (the default, what the real training did) keeps
them, ``"file"`` follows each file's own record (``Episode.channel_order``: the ``channel_order``
attribute, else bgr for the team's files and rgb for this project's older ones), so every frame
reaches the model in true colours. Set it per source (``EpisodeSource``) when mixing real and
simulated folders. Files of every layout the team writes (collector, v3, v5) mix freely: they are
read by ``train.episodes.read_episode``, which detects each file's layout.

Split: ``split="sorted"`` is the real one (the first ``train_fraction`` of the file names in sorted
order train, the rest validate); ``split="stratified"`` (default) splits each scenario
(``EpisodeName.scenario``) on its own, seeded, so that scarce scenarios (evening) land on both
sides whenever they have two episodes or more.

Mirror augmentation (left <-> right): flip the image horizontally, negate ``linear_y`` and swap
the instruction's side. ``mirror="random"`` flips each sample with ``mirror_prob`` (drawn from
torch's generator, so ``torch.manual_seed`` and DataLoader worker seeding apply);
``mirror="double"`` appends a mirrored copy of every window.

Memory: only window frames are read from disk per sample; episodes whose (resized) frames fit
``cache_max_episode_bytes`` are kept in memory after their first read (``cache="auto"``), up to
``cache_max_total_bytes`` per process.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from mvla_sim.facts import mirror_instruction
from policies.vla.processors import resize_frame
from train.episodes import CHANNEL_ORDERS, EPISODE_GLOB, find_episodes, read_episode, read_frames, scenario_of

logger = logging.getLogger(__name__)

ChannelOrder = Literal["rgb", "bgr", "file"]
MirrorMode = Literal["none", "random", "double"]
SplitMethod = Literal["sorted", "stratified"]
Subset = Literal["train", "val", "all"]
CacheMode = Literal["auto", "all", "none"]
WindowMode = Literal["real", "every_step", "episode"]

ACTION_CLAMP = 1.0
"""Training actions are clamped to [-ACTION_CLAMP, ACTION_CLAMP] (the config's norm_min/norm_max)."""

DEFAULT_SPLIT_SEED = 123
"""The ``seed`` of the real run's config."""

_CHANNEL_ORDERS = (*CHANNEL_ORDERS, "file")
_MIRROR_MODES = ("none", "random", "double")
_SPLITS = ("sorted", "stratified")
_SUBSETS = ("train", "val", "all")
_CACHE_MODES = ("auto", "all", "none")
_WINDOW_MODES = ("real", "every_step", "episode")


@dataclass(frozen=True)
class EpisodeSource:
    """A folder of episode files (or one file) and how its frames are stored.

    Attributes:
        path: a folder, searched with ``pattern``, or a single ``.h5`` file.
        pattern: glob inside the folder, e.g. the real run's ``"episode_2025111*.h5"``.
        channel_order: channel order of the stored frames (``"bgr"`` is swapped to RGB on read;
            ``"file"``: each file's recorded order).
    """

    path: Path
    pattern: str = EPISODE_GLOB
    channel_order: ChannelOrder = "rgb"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.channel_order not in _CHANNEL_ORDERS:
            raise ValueError(f"channel_order={self.channel_order!r} must be one of {list(_CHANNEL_ORDERS)}")

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return find_episodes(self.path, self.pattern)


@dataclass(frozen=True)
class EpisodeInfo:
    """What the dataset keeps in memory about one episode file (no images)."""

    path: Path
    num_frames: int
    frame_shape: tuple[int, int, int]
    instruction: str
    scenario: str
    channel_order: ChannelOrder
    actions: np.ndarray
    """float32 (T, 3) as stored (not clamped)."""


def _name_key(path: Path) -> tuple[str, str]:
    return path.name, str(path)


def split_episodes(
    paths: Iterable[str | os.PathLike[str]],
    method: SplitMethod = "stratified",
    train_fraction: float = 0.8,
    seed: int = DEFAULT_SPLIT_SEED,
) -> tuple[list[Path], list[Path]]:
    """Split episode files into (train, val) at the episode level.

    ``"sorted"``: the real split: sort by file name, the first ``int(n * train_fraction)`` train.
    ``"stratified"``: per scenario (see ``EpisodeName.scenario``; unparsable names form the
    ``"unknown"`` group), shuffle with a generator seeded by ``seed`` and the scenario name, then
    put ``round(n * (1 - train_fraction))`` in val, at least one on each side when the scenario
    has two episodes or more (a single episode trains). The result depends only on the set of
    files, not on their order or on other scenarios.

    Raises:
        ValueError: for an unknown method or a fraction outside (0, 1].
    """
    if method not in _SPLITS:
        raise ValueError(f"split={method!r} must be one of {list(_SPLITS)}")
    if not 0.0 < train_fraction <= 1.0:
        raise ValueError(f"train_fraction={train_fraction!r} must be in (0, 1]")
    ordered = sorted((Path(p) for p in paths), key=_name_key)
    if method == "sorted":
        cut = int(len(ordered) * train_fraction)
        return ordered[:cut], ordered[cut:]

    groups: dict[str, list[Path]] = defaultdict(list)
    for p in ordered:
        groups[scenario_of(p)].append(p)
    train: list[Path] = []
    val: list[Path] = []
    for scenario in sorted(groups):
        members = groups[scenario]
        rng = np.random.default_rng([seed, zlib.crc32(scenario.encode("utf-8"))])
        shuffled = [members[i] for i in rng.permutation(len(members))]
        n_val = int(round(len(members) * (1.0 - train_fraction)))
        if len(members) >= 2 and train_fraction < 1.0:
            n_val = min(max(n_val, 1), len(members) - 1)
        else:
            n_val = 0
        val.extend(shuffled[:n_val])
        train.extend(shuffled[n_val:])
    return sorted(train, key=_name_key), sorted(val, key=_name_key)


def _empty_split_message(subset: str, method: str, files: list[Path], train_fraction: float) -> str:
    """One line saying why a split left ``subset`` without episodes, and the fix."""
    n = len(files)
    cut = int(n * train_fraction)
    sorted_fix = f"use split 'sorted' (--split sorted: {cut} train, {n - cut} val)" if 1 <= cut < n else ""
    if train_fraction >= 1.0:
        return f"train_split={train_fraction!r} holds out no validation episode; lower it (the real run: 0.8)"
    if n < 2:
        return f"{n} episode is too few to train and validate; add episodes (at least 2)"
    if method == "stratified":
        per = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(scenario_of(p) for p in files).items()))
        fixes = " or ".join(f for f in ("add episodes (2 or more in a scenario)", sorted_fix) if f)
        return (
            f"{n} episodes are too few to hold out a {'validation' if subset == 'val' else 'training'} episode: the stratified split holds one out "
            f"only from a scenario with 2 or more episodes ({per}); {fixes}"
        )
    return f"{n} episodes leave no {subset} episode with train_split={train_fraction!r}; add episodes"


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Squash uint8 frames (N, H, W, 3) to (N, size, size, 3): PIL ``BILINEAR`` on uint8 of the
    whole frame, as the fork's dataset and the ``as_trained`` profile do."""
    if frames.shape[1] == size and frames.shape[2] == size:
        return frames
    return np.stack([resize_frame(f, size, "bilinear") for f in frames])


def _as_sources(
    sources: str | os.PathLike[str] | EpisodeSource | Sequence[str | os.PathLike[str] | EpisodeSource],
    pattern: str,
    channel_order: ChannelOrder,
) -> list[EpisodeSource]:
    if isinstance(sources, str | os.PathLike | EpisodeSource):
        sources = [sources]
    result = []
    for s in sources:
        result.append(s if isinstance(s, EpisodeSource) else EpisodeSource(Path(s), pattern, channel_order))
    return result


def _check_settings(
    *,
    windows: str,
    subset: str,
    mirror: str,
    cache: str,
    window_size: int,
    fwd_pred_next_n: int,
    image_size: int | None,
    mirror_prob: float,
) -> None:
    """Raise ``ValueError`` naming the first bad setting of :class:`EpisodeWindowDataset`."""
    for name, value, allowed in (
        ("windows", windows, _WINDOW_MODES),
        ("subset", subset, _SUBSETS),
        ("mirror", mirror, _MIRROR_MODES),
        ("cache", cache, _CACHE_MODES),
    ):
        if value not in allowed:
            raise ValueError(f"{name}={value!r} must be one of {list(allowed)}")
    if window_size < 1 or fwd_pred_next_n < 1:
        raise ValueError(f"window_size={window_size!r} and fwd_pred_next_n={fwd_pred_next_n!r} must be >= 1")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size={image_size!r} must be a positive int or None")
    if not 0.0 <= mirror_prob <= 1.0:
        raise ValueError(f"mirror_prob={mirror_prob!r} must be in [0, 1]")


def _files_by_colour(sources: list[EpisodeSource]) -> dict[Path, ChannelOrder]:
    """Every episode file of the sources with its stored channel order.

    Raises:
        ValueError: no episode file in any source (the message names the folders and patterns).
    """
    color_of: dict[Path, ChannelOrder] = {}
    for source in sources:
        for p in source.files():
            color_of[p] = source.channel_order
    if not color_of:
        where = ", ".join(f"{s.path}/{s.pattern}" if s.path.is_dir() else str(s.path) for s in sources)
        raise ValueError(f"no episode files found in {where}")
    return color_of


def _choose(
    files: list[Path], subset: str, split: SplitMethod, train_fraction: float, seed: int
) -> list[Path]:
    """The episode files of ``subset`` (``"all"``: every file, in name order).

    Raises:
        ValueError: the split leaves ``subset`` empty (the message says how to fix it).
    """
    if subset == "all":
        return sorted(files, key=_name_key)
    train, val = split_episodes(files, split, train_fraction, seed)
    chosen = train if subset == "train" else val
    if not chosen:
        raise ValueError(_empty_split_message(subset, split, files, train_fraction))
    return chosen


def _episode_info(path: Path, channel_order: ChannelOrder, instruction_from_name: bool) -> EpisodeInfo:
    """What the dataset keeps of an episode file (its actions, not its images)."""
    ep = read_episode(path, load_images=False, instruction_from_name=instruction_from_name)
    assert ep.image_shape is not None
    return EpisodeInfo(
        path=path,
        num_frames=ep.num_frames,
        frame_shape=tuple(ep.image_shape[1:]),  # type: ignore[arg-type]
        instruction=ep.instruction,
        scenario=scenario_of(path),
        channel_order=ep.channel_order if channel_order == "file" else channel_order,  # type: ignore[arg-type]
        actions=ep.actions,
    )


def _window_starts(
    episodes: list[EpisodeInfo], windows: str, window_size: int, fwd_pred_next_n: int
) -> list[tuple[int, int]]:
    """``(episode index, start frame)`` of every sample of a window mode (module docstring)."""
    if windows == "real":
        span = window_size + fwd_pred_next_n
        return [
            (i, start)
            for i, info in enumerate(episodes)
            for start in range(max(info.num_frames - span, 0) + 1)
        ]
    if windows == "episode":
        return [(i, 0) for i in range(len(episodes))]
    return [
        (i, end - window_size + 1) for i, info in enumerate(episodes) for end in range(1, info.num_frames)
    ]


class EpisodeWindowDataset(Dataset):
    """Training windows over episode files in the real format (see the module docstring).

    Args:
        sources: folders / files / ``EpisodeSource`` objects, real and simulated mixed freely.
        subset: ``"train"``, ``"val"`` or ``"all"`` (no split).
        split: ``"stratified"`` (default) or ``"sorted"`` (the real run's split).
        train_fraction: share of episodes that train (the real run: 0.8).
        seed: seed of the stratified split.
        window_size: frames per sample (8).
        fwd_pred_next_n: actions per frame's chunk (10).
        image_size: resize every frame to (image_size, image_size); None keeps the stored size.
        pattern: glob for folders given as plain paths.
        channel_order: stored channel order for sources given as plain paths.
        mirror: ``"none"``, ``"random"`` (with ``mirror_prob``) or ``"double"``.
        mirror_prob: probability of a mirrored sample when ``mirror="random"``.
        cache: ``"auto"`` (episodes up to ``cache_max_episode_bytes``), ``"all"`` or ``"none"``.
        cache_max_episode_bytes: largest (resized) episode kept in memory under ``"auto"``.
        cache_max_total_bytes: memory budget of the cache in each process.
        instruction_from_name: use the file name's side when a file lacks ``language_instruction``.
        windows: ``"real"`` (the RoboVLMs loader's windows), ``"every_step"`` (one window per key
            press, padded with the first frame like the deployed policy's) or ``"episode"`` (whole
            episodes, for unfolding those windows from per-frame features).

    Raises:
        ValueError: for bad settings or when no episode is found (the message names the folders).
        EpisodeFormatError: when an episode file is malformed.

    Items are dicts: ``images`` uint8 (window, H, W, 3), ``actions`` float32 (window, chunk, 2),
    ``action_mask`` float32 (window, chunk), ``frame_mask`` float32 (window,), ``instruction`` str,
    ``episode`` str (path), ``start`` int, ``mirrored`` bool.
    """

    def __init__(
        self,
        sources: str | os.PathLike[str] | EpisodeSource | Sequence[str | os.PathLike[str] | EpisodeSource],
        *,
        subset: Subset = "train",
        split: SplitMethod = "stratified",
        train_fraction: float = 0.8,
        seed: int = DEFAULT_SPLIT_SEED,
        window_size: int = 8,
        fwd_pred_next_n: int = 10,
        image_size: int | None = None,
        pattern: str = EPISODE_GLOB,
        channel_order: ChannelOrder = "rgb",
        mirror: MirrorMode = "none",
        mirror_prob: float = 0.5,
        cache: CacheMode = "auto",
        cache_max_episode_bytes: int = 32 * 2**20,
        cache_max_total_bytes: int = 2 * 2**30,
        instruction_from_name: bool = False,
        windows: WindowMode = "real",
    ) -> None:
        _check_settings(
            windows=windows,
            subset=subset,
            mirror=mirror,
            cache=cache,
            window_size=window_size,
            fwd_pred_next_n=fwd_pred_next_n,
            image_size=image_size,
            mirror_prob=mirror_prob,
        )
        self.window_size = window_size
        self.fwd_pred_next_n = fwd_pred_next_n
        self.image_size = image_size
        self.mirror = mirror
        self.mirror_prob = mirror_prob
        self.cache_mode = cache
        self.cache_max_episode_bytes = cache_max_episode_bytes
        self.cache_max_total_bytes = cache_max_total_bytes
        self.subset = subset
        self.split = split

        self.sources = _as_sources(sources, pattern, channel_order)
        color_of = _files_by_colour(self.sources)
        chosen = _choose(list(color_of), subset, split, train_fraction, seed)
        self.episodes = [_episode_info(p, color_of[p], instruction_from_name) for p in chosen]
        self.window_mode = windows
        self.windows = _window_starts(self.episodes, windows, window_size, fwd_pred_next_n)
        if windows == "episode":
            self.episode_len = max(info.num_frames for info in self.episodes)
        self._cache: dict[int, np.ndarray] = {}
        self._cache_bytes = 0
        logger.info(
            "%s episodes: %d of %d (split=%s), %d windows of %d frames + %d actions, mirror=%s",
            *(subset, len(self.episodes), len(color_of), split, len(self.windows)),
            *(window_size, fwd_pred_next_n, mirror),
        )

    def __len__(self) -> int:
        return len(self.windows) * (2 if self.mirror == "double" else 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        n = len(self.windows)
        mirrored = False
        if self.mirror == "double":
            mirrored = index >= n
            index = index % n
        elif self.mirror == "random":
            mirrored = bool(torch.rand(()) < self.mirror_prob)
        ep_index, start = self.windows[index]
        info = self.episodes[ep_index]
        w, c, num_frames = self.window_size, self.fwd_pred_next_n, info.num_frames
        if self.window_mode == "episode":
            w = self.episode_len

        first = max(start, 0)
        end = start + w - 1  # every_step: the window's decision frame
        frames = self._frames(ep_index, first, min(start + w, num_frames))
        images = np.zeros((w, *frames.shape[1:]), dtype=np.uint8)
        images[: len(frames)] = frames  # causal: the frames from `first` on, zeros after the end
        idx = first + np.arange(w)
        min_frame = 0 if self.window_mode == "real" else 1
        real = (idx >= min_frame) & (idx < num_frames)
        if self.window_mode == "every_step":
            real &= idx == end  # supervise the decision the deployed head makes at `end`
        frame_mask = real.astype(np.float32)

        steps = idx[:, None] + np.arange(c)[None, :]
        valid = (steps < num_frames) & real[:, None]
        steps = np.maximum(steps, 0)
        actions = info.actions[np.minimum(steps, num_frames - 1), :2] * valid[..., None]
        actions = np.clip(actions, -ACTION_CLAMP, ACTION_CLAMP).astype(np.float32)
        instruction = info.instruction

        if mirrored:
            images = images[:, :, ::-1]
            actions[..., 1] = -actions[..., 1]
            try:
                instruction = mirror_instruction(instruction)
            except ValueError as exc:
                raise ValueError(f"{info.path.name}: cannot mirror the instruction: {exc}") from exc

        return {
            "images": torch.from_numpy(np.ascontiguousarray(images)),
            "actions": torch.from_numpy(actions),
            "action_mask": torch.from_numpy(valid.astype(np.float32)),
            "frame_mask": torch.from_numpy(frame_mask),
            "instruction": instruction,
            "episode": str(info.path),
            "start": start,
            "mirrored": mirrored,
        }

    def _prepare(self, frames: np.ndarray, channel_order: ChannelOrder) -> np.ndarray:
        if channel_order == "bgr":
            frames = frames[..., ::-1]
        if self.image_size is not None:
            frames = resize_frames(frames, self.image_size)
        return np.ascontiguousarray(frames)

    def _episode_bytes(self, info: EpisodeInfo) -> int:
        h, w, ch = info.frame_shape
        if self.image_size is not None:
            h = w = self.image_size
        return info.num_frames * h * w * ch

    def _frames(self, ep_index: int, start: int, stop: int) -> np.ndarray:
        cached = self._cache.get(ep_index)
        if cached is not None:
            return cached[start:stop]
        info = self.episodes[ep_index]
        size = self._episode_bytes(info)
        cacheable = self.cache_mode == "all" or (
            self.cache_mode == "auto"
            and size <= self.cache_max_episode_bytes
            and self._cache_bytes + size <= self.cache_max_total_bytes
        )
        if cacheable:
            frames = self._prepare(read_frames(info.path, 0, info.num_frames), info.channel_order)
            self._cache[ep_index] = frames
            self._cache_bytes += frames.nbytes
            return frames[start:stop]
        return self._prepare(read_frames(info.path, start, stop), info.channel_order)


def train_val_datasets(
    sources: str | os.PathLike[str] | EpisodeSource | Sequence[str | os.PathLike[str] | EpisodeSource],
    *,
    mirror: MirrorMode = "none",
    **kwargs: Any,
) -> tuple[EpisodeWindowDataset, EpisodeWindowDataset]:
    """The train and val datasets of one split; mirror augmentation applies to train only."""
    train = EpisodeWindowDataset(sources, subset="train", mirror=mirror, **kwargs)
    val = EpisodeWindowDataset(sources, subset="val", mirror="none", **kwargs)
    return train, val


def collate(batch: Sequence[dict[str, Any]], *, float_images: bool = False) -> dict[str, Any]:
    """Stack dataset items into a batch.

    Returns ``images`` (B, T, 3, H, W): uint8, or float32 in [0, 1] with ``float_images=True``
    (use ``functools.partial(collate, float_images=True)`` as a DataLoader's ``collate_fn``);
    ``actions`` (B, T, chunk, 2); ``action_mask`` (B, T, chunk); ``frame_mask`` (B, T);
    ``instruction`` and ``episode`` lists; ``start`` (B,) int64; ``mirrored`` (B,) bool.

    Raises:
        ValueError: if the items' frames differ in size (set the dataset's ``image_size``).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    shapes = {tuple(item["images"].shape) for item in batch}
    if len(shapes) > 1:
        raise ValueError(
            f"cannot stack frames of different sizes {sorted(shapes)}; set the dataset's image_size"
        )
    images = torch.stack([item["images"] for item in batch]).permute(0, 1, 4, 2, 3).contiguous()
    if float_images:
        images = images.float().div_(255.0)
    return {
        "images": images,
        "actions": torch.stack([item["actions"] for item in batch]),
        "action_mask": torch.stack([item["action_mask"] for item in batch]),
        "frame_mask": torch.stack([item["frame_mask"] for item in batch]),
        "instruction": [item["instruction"] for item in batch],
        "episode": [item["episode"] for item in batch],
        "start": torch.tensor([item["start"] for item in batch], dtype=torch.int64),
        "mirrored": torch.tensor([item["mirrored"] for item in batch], dtype=torch.bool),
    }
