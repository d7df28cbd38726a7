"""The user's real frames: episodes in the real ``.h5`` format or plain images, in RGB.

Real episodes store their frames BGR (FACTS.md, "The episode file"). ``channel_order="auto"``
(the default) takes the order the file records, else the real camera's BGR
(``train.episodes.Episode.channel_order``); ``"bgr"``/``"rgb"`` overrides it. Every frame is resized to the analysis width at the
real camera's aspect as it is read (area filter), so 720p folders fit in memory.

An episode is **paired** when its file name parses (``train.episodes.EPISODE_NAME_PATTERN``) and
names the simulated scene (``1box``, ``hori``): its recorded actions can then be replayed in the
calibrated scene of its side, lighting and distance. Any other episode (the team's later layouts
and obstacles), and every plain image, is **unpaired**: compared as a distribution only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from train.episodes import EpisodeNameError, find_episodes, parse_episode_name, read_episode

CHANNEL_ORDERS = ("auto", "bgr", "rgb")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
STANDIN_SOURCE = "standin"
PAIRED_BOXES, PAIRED_LAYOUT = "1box", "hori"
"""The simulated scene: one box lying across the corridor."""


@dataclass
class RealEpisode:
    """One real episode (or one folder of images), frames RGB uint8 (T, H, W, 3) at analysis size."""

    name: str
    frames: np.ndarray
    actions: np.ndarray | None
    instruction: str | None
    side: str | None = None
    lighting: str | None = None
    distance: str | None = None
    paired: bool = False
    why_unpaired: str | None = None
    native_size: tuple[int, int] = (0, 0)
    """(width, height) of the stored frames."""
    standin: bool = False
    """A stand-in (``eval.realgap.standins``: rendered, attribute ``source="standin"``), not real."""

    @property
    def scene(self) -> str:
        """``side-lighting-distance`` of a paired episode, else ``"unpaired"``."""
        return f"{self.side}-{self.lighting}-{self.distance}" if self.paired else "unpaired"


def to_rgb(frames: np.ndarray, channel_order: str) -> np.ndarray:
    """Stored frames -> RGB (``bgr`` swaps the channels, ``rgb`` keeps them)."""
    if channel_order not in CHANNEL_ORDERS[1:]:
        raise ValueError(
            f"channel order {channel_order!r} is not valid; choose one of {list(CHANNEL_ORDERS)}"
        )
    return np.ascontiguousarray(frames[..., ::-1]) if channel_order == "bgr" else frames


def analysis_size(native: tuple[int, int], width: int) -> tuple[int, int]:
    """(width, height) at ``width`` pixels wide with the native aspect (even height)."""
    w, h = native
    return width, max(2, int(round(width * h / w / 2)) * 2)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, size[1], size[0], 3), area filter (PIL ``BOX``)."""
    if frames.shape[2] == size[0] and frames.shape[1] == size[1]:
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BOX)) for f in frames])


def load_episode(path: Path, channel_order: str, width: int) -> RealEpisode:
    """One ``.h5`` episode at analysis ``width``; paired when its name names the simulated scene."""
    episode = read_episode(path, load_images=True, instruction_from_name=True)
    images = episode.images
    assert images is not None
    native = (int(images.shape[2]), int(images.shape[1]))
    order = episode.channel_order if channel_order == "auto" else channel_order
    frames = resize_frames(to_rgb(images, order), analysis_size(native, width))
    real = RealEpisode(path.stem, frames, episode.actions, episode.instruction, native_size=native)
    real.standin = episode.attrs.get("source") == STANDIN_SOURCE
    try:
        parsed = parse_episode_name(path)
    except EpisodeNameError as exc:
        real.why_unpaired = f"file name does not parse ({exc})"
        return real
    if (parsed.boxes, parsed.layout) != (PAIRED_BOXES, PAIRED_LAYOUT):
        real.why_unpaired = f"layout {parsed.boxes}_{parsed.layout} is not the simulated 1box_hori scene"
        return real
    real.side, real.lighting, real.distance = parsed.side, parsed.lighting, parsed.distance
    real.paired = True
    return real


def load_images(folder: Path, width: int) -> RealEpisode:
    """Every JPEG/PNG in ``folder`` as one unpaired set (image files decode to RGB: no swap)."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    frames, native = [], None
    for path in files:
        img = np.asarray(Image.open(path).convert("RGB"))
        native = native or (img.shape[1], img.shape[0])
        size = analysis_size(native, width)
        frames.append(resize_frames(img[None], size)[0])
    stacked = np.stack(frames)
    return RealEpisode(
        folder.name,
        stacked,
        None,
        None,
        why_unpaired="plain images (no actions)",
        native_size=native or (0, 0),
    )


def load_real(folder: str | Path, channel_order: str = "auto", width: int = 256) -> list[RealEpisode]:
    """The real episodes of ``folder`` (``episode_*.h5`` or any ``*.h5``), else its images.

    ``channel_order``: the order the ``.h5`` files store (``auto``: as each file records, else BGR).

    Raises:
        FileNotFoundError: naming the folder when it holds neither episodes nor images.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--real {folder}: no such folder; give a folder of .h5 episodes or images")
    paths = find_episodes(folder) or sorted(folder.glob("*.h5"))
    if paths:
        return [load_episode(p, channel_order, width) for p in paths]
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return [load_images(folder, width)]  # image files decode to true colours
    raise FileNotFoundError(f"--real {folder}: no .h5 episodes and no JPEG/PNG images in it")
