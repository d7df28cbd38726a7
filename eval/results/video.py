"""Episode videos: H.264 (yuv420p) mp4 files with the step, action and instruction on each frame.

Frames come from ``env.render()`` (camera view beside a top-down map). A caption band is added
below each frame (so the text never hides the scene), and frames are padded to even sizes,
which yuv420p needs; imageio's own resizing (``macro_block_size``) is turned off.
"""

from __future__ import annotations

import logging
import re
import textwrap
from pathlib import Path
from types import TracebackType

import numpy as np
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

REAL_TIME_FPS = 2.5
"""One env step is one 0.4 s key press: 2.5 frames per second plays an episode in real time."""

_LINE_HEIGHT_PX = 12
_CHAR_WIDTH_PX = 6  # PIL's built-in bitmap font


def video_name(policy_id: str, cell: str, seed: int, outcome: str) -> str:
    """``<policy>__<cell>__seed<seed>__<outcome>.mp4`` with file-name-safe parts."""

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"

    return f"{safe(policy_id)}__{safe(cell)}__seed{int(seed)}__{safe(outcome)}.mp4"


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Pad an (H, W, 3) frame with black rows/columns so that H and W are even."""
    h, w = frame.shape[:2]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return frame
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)), mode="constant")


def annotate(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """Return ``frame`` with a black caption band below it holding ``lines`` (wrapped to fit)."""
    frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    h, w = frame.shape[:2]
    width_chars = max(8, (w - 8) // _CHAR_WIDTH_PX)
    wrapped = [piece for line in lines for piece in (textwrap.wrap(line, width_chars) or [""])]
    band_h = 6 + _LINE_HEIGHT_PX * len(wrapped)
    canvas = Image.new("RGB", (w, h + band_h), (0, 0, 0))
    canvas.paste(Image.fromarray(frame), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, line in enumerate(wrapped):
        draw.text((4, h + 3 + i * _LINE_HEIGHT_PX), line, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def caption(step: int, action: np.ndarray | None, instruction: str, extra: str = "") -> list[str]:
    """The standard caption: step number, action [linear_x, linear_y], instruction."""
    if action is None:
        act = "start"
    else:
        a = np.asarray(action, dtype=float).ravel()
        act = "[" + ", ".join(f"{v:+.2f}" for v in a[:2]) + "]"
    head = f"step {step:2d}  action {act}"
    if extra:
        head += f"  {extra}"
    return [head, instruction]


class EpisodeVideo:
    """Write frames to an mp4 (H.264, yuv420p); every frame is padded to one even size.

    Use as a context manager; ``frames_written`` counts frames. Frames of a different size than
    the first are padded or cropped to the first frame's size.
    """

    def __init__(self, path: Path, fps: float = REAL_TIME_FPS) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames_written = 0
        self._writer = None
        self._size: tuple[int, int] | None = None

    def append(self, frame: np.ndarray, lines: list[str] | None = None) -> None:
        if lines:
            frame = annotate(frame, lines)
        frame = pad_to_even(np.ascontiguousarray(frame[..., :3], dtype=np.uint8))
        if self._writer is None:
            import imageio.v2 as imageio

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._size = frame.shape[:2]
            self._writer = imageio.get_writer(
                str(self.path),
                format="FFMPEG",
                mode="I",
                fps=self.fps,
                codec="libx264",
                pixelformat="yuv420p",
                macro_block_size=1,
                ffmpeg_log_level="error",
                ffmpeg_params=["-preset", "veryfast"],
            )
        assert self._size is not None
        h, w = self._size
        if frame.shape[:2] != (h, w):
            fixed = np.zeros((h, w, 3), dtype=np.uint8)
            fh, fw = min(h, frame.shape[0]), min(w, frame.shape[1])
            fixed[:fh, :fw] = frame[:fh, :fw]
            frame = fixed
        self._writer.append_data(frame)
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> EpisodeVideo:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_video(path: Path) -> list[np.ndarray]:
    """Decode every frame of a video (used by tests and checks)."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        return [np.asarray(f) for f in reader]
    finally:
        reader.close()
