"""The camera-frame transport of the team's deployment: robot client -> HTTP -> inference server.

What a frame goes through between the robot's camera and the model when the team deploys
(``../shared/FACTS.md``, "How the team deploys"), each step a function here so that the
in-process ``as_deployed`` profile, the HTTP client policy and ``policies.http.serve`` share one
definition:

1. :func:`client_resize`: the ROS 2 client's ``cv2.resize(frame, (224, 224))``, i.e. OpenCV's
   8-bit ``INTER_LINEAR`` (half-pixel centres, no antialiasing, edge clamping, 11-bit
   fixed-point weights, its SIMD rounding), reimplemented in numpy (no OpenCV dependency);
2. :func:`encode_jpeg`: ``cv2.imencode('.jpg', ...)`` at its default quality 95 with 4:2:0
   chroma subsampling, done with Pillow.

Checked against OpenCV 4.11 and Pillow 13 on simulator frames: the resize and the JPEG bytes are
identical to the robot client's (``tests/policies/test_transport.py`` holds frames encoded by
``cv2``).
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


def _taps(src_size: int, dst_size: int, clamp: bool) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR source index and 11-bit weights along one axis.

    As ``cv::resize``: ``f = float((d + 0.5) * scale - 0.5)`` with ``scale = 1 / (dst / src)``,
    ``s = floor(f)``, weights ``round((1 - frac) * 2048)`` and ``round(frac * 2048)`` computed in
    float32; along x the borders clamp the index and zero the fraction, along y the rows are
    clamped when read.
    """
    scale = 1.0 / (dst_size / src_size)
    f = ((np.arange(dst_size, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    i0 = np.floor(f).astype(np.int64)
    frac = (f - i0.astype(np.float32)).astype(np.float32)
    if clamp:
        low, high = i0 < 0, i0 >= src_size - 1
        frac[low | high] = 0.0
        i0[low], i0[high] = 0, src_size - 1
    w0 = np.rint((np.float32(1.0) - frac) * np.float32(_COEF_SCALE)).astype(np.int64)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int64)
    return i0, np.stack([w0, w1])


def client_resize(image: np.ndarray, size: int = CLIENT_FRAME_SIZE) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size, size, 3), bit for bit as the robot client's ``cv2.resize``.

    OpenCV's 8-bit INTER_LINEAR: a horizontal pass in integers (weights x 2048), then its SIMD
    vertical pass ``((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1 >> 16) + 2 >> 2``.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) frame, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img.copy()
    x0, wx = _taps(w, size, clamp=True)
    x1 = np.minimum(x0 + 1, w - 1)
    y0, wy = _taps(h, size, clamp=False)
    r0, r1 = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    src = img.astype(np.int64)
    rows = src[:, x0] * wx[0][None, :, None] + src[:, x1] * wx[1][None, :, None]  # (h, size, 3), x 2^11
    a = ((rows[r0] >> 4) * wy[0][:, None, None]) >> 16
    b = ((rows[r1] >> 4) * wy[1][:, None, None]) >> 16
    return np.clip((a + b + 2) >> 2, 0, 255).astype(np.uint8)


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
            return np.array(img.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        reason = type(exc).__name__ if "BytesIO" in str(exc) else str(exc)
        raise FrameDecodeError(
            f"image payload is not a decodable image ({reason}, {len(data)} bytes)"
        ) from None


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
