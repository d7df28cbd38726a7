"""The camera-frame transport of the team's deployment: robot client -> HTTP -> inference server.

What a frame goes through between the robot's camera and the model when the team deploys
(``../shared/FACTS.md``, "How the team deploys"), each step a function here so that the
in-process ``as_deployed`` profile, the HTTP client policy and ``policies.serve`` share one
definition:

1. :func:`client_resize`: the ROS 2 client's ``cv2.resize(frame, (224, 224))``, i.e. OpenCV's
   ``INTER_LINEAR`` (half-pixel centres, no antialiasing, edge clamping, 11-bit fixed-point
   weights). Reimplemented in numpy with OpenCV's fixed-point arithmetic (no OpenCV
   dependency); against ``cv2.resize`` itself it differs by at most 1 grey level on a few
   pixels (OpenCV's SIMD path rounds its vertical pass slightly differently).
2. :func:`encode_jpeg`: ``cv2.imencode('.jpg', ...)`` at its default quality 95 with 4:2:0
   chroma subsampling, done with Pillow (same libjpeg quantisation tables and subsampling).
3. :func:`to_base64` / :func:`from_base64`: the JSON payload's ``image`` field.
4. :func:`decode_jpeg`: the server's ``Image.open(BytesIO(...)).convert('RGB')``.

:func:`jpeg_round_trip` chains them: the frame the server's model sees. The frames here are
RGB; the real client encodes its ``bgr8`` frame with OpenCV, which writes the same JPEG colours,
so the server decodes RGB in both cases.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image

CLIENT_FRAME_SIZE: int = 224
"""Side of the square frame the robot client sends (``cv2.resize(image, (224, 224))``)."""

JPEG_QUALITY: int = 95
"""``cv2.imencode('.jpg', ...)`` default quality."""

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


class FrameDecodeError(ValueError):
    """A payload is not base64 or not a decodable image (the message says which)."""


def _linear_taps(src_size: int, dst_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR source indices and fixed-point weights along one axis."""
    scale = src_size / dst_size
    f = (np.arange(dst_size, dtype=np.float64) + 0.5) * scale - 0.5
    f = f.astype(np.float32)  # OpenCV computes the source coordinate in float
    i0 = np.floor(f).astype(np.int64)
    frac = (f - i0).astype(np.float32)
    low = i0 < 0
    i0[low], frac[low] = 0, 0.0
    high = i0 >= src_size - 1
    i0[high], frac[high] = src_size - 1, 0.0
    i1 = np.minimum(i0 + 1, src_size - 1)
    w0 = np.rint((1.0 - frac) * _COEF_SCALE).astype(np.int64)
    return i0, i1, np.stack([w0, _COEF_SCALE - w0])


def client_resize(image: np.ndarray, size: int = CLIENT_FRAME_SIZE) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3), as the robot client's ``cv2.resize``."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) frame, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img.copy()
    x0, x1, wx = _linear_taps(w, size)
    y0, y1, wy = _linear_taps(h, size)
    src = img.astype(np.int64)
    rows = src[:, x0] * wx[0][None, :, None] + src[:, x1] * wx[1][None, :, None]  # (h, size, 3) x 2^11
    out = rows[y0] * wy[0][:, None, None] + rows[y1] * wy[1][:, None, None]  # x 2^22
    out = (out + (1 << (2 * _COEF_BITS - 1))) >> (2 * _COEF_BITS)
    return np.clip(out, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """uint8 RGB (H, W, 3) -> JPEG bytes (4:2:0, like OpenCV's default)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(
        buf, format="JPEG", quality=quality, subsampling="4:2:0"
    )
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """Image bytes -> uint8 RGB (H, W, 3), as the team's server decodes them.

    Raises:
        FrameDecodeError: the bytes are not an image Pillow can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FrameDecodeError(f"image payload is not a decodable image ({exc})") from exc


def to_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_base64(text: str) -> bytes:
    """The JSON ``image`` field -> bytes; :class:`FrameDecodeError` if it is not base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameDecodeError(f"image field is not valid base64 ({exc})") from exc


def client_payload_image(image: np.ndarray, quality: int = JPEG_QUALITY) -> str:
    """What the robot client puts in ``"image"``: resized to 224x224, JPEG, base64."""
    return to_base64(encode_jpeg(client_resize(image), quality))


def jpeg_round_trip(image: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """The frame the server's model receives for ``image`` (client resize, JPEG, decode)."""
    return decode_jpeg(encode_jpeg(client_resize(image), quality))


__all__ = [
    "CLIENT_FRAME_SIZE",
    "FrameDecodeError",
    "JPEG_QUALITY",
    "client_payload_image",
    "client_resize",
    "decode_jpeg",
    "encode_jpeg",
    "from_base64",
    "jpeg_round_trip",
    "to_base64",
]
