"""Images for image+text queries: where an image comes from, and how its vector joins the text's.

An image is given as raw bytes, a `data:` URL, a bare base64 string, a local file path, or
(only where the caller allows it) an http(s) URL, fetched with a timeout and a size limit.

`combine_image_text` is the one rule for an image+text query: the unit text vector and the
unit image vector are concatenated with weights sqrt(1 - w) and sqrt(w), w = `image_weight`.
The result is a unit vector of dim text_dim + image_dim, and the cosine of two such vectors
is exactly (1 - w) * cos(texts) + w * cos(images). A query without an image gets a zero image
half and its text half at full weight (still a unit vector): two text-only queries compare
as their texts do, and a text-only query against an image+text entry scores at most
sqrt(1 - w) * cos(texts), so it hits only where the thresholds allow that.
"""

from __future__ import annotations

import base64
import binascii
import io
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modelcache.embedding.base import normalize_rows
from modelcache.errors import InvalidRequest, MissingDependency

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["ImageSource", "combine_image_text", "open_image", "read_image_bytes"]

ImageSource = str | bytes
MAX_IMAGE_BYTES = 20 * 1024 * 1024
_MAX_PATH = 4096


def read_image_bytes(
    source: ImageSource,
    *,
    allow_urls: bool = False,
    timeout_s: float = 10.0,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> bytes:
    """The encoded image (PNG, JPEG, …) that `source` gives or points at."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif source.startswith("data:"):
        data = _data_url(source)
    elif source.startswith(("http://", "https://")):
        if not allow_urls:
            raise InvalidRequest("image URLs are not allowed here; send the image bytes or a data: URL")
        data = _fetch(source, timeout_s, max_bytes)
    elif _is_file(source):
        data = Path(source).read_bytes()
    else:
        data = _base64(source)
    if len(data) > max_bytes:
        raise InvalidRequest(f"image is {len(data)} bytes; the limit is {max_bytes}")
    return data


def open_image(data: bytes) -> Image:
    """Decoded RGB image; anything PIL cannot read is the caller's error."""
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependency("pillow", "timm") from exc
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
        raise InvalidRequest(f"not a readable image: {exc}") from exc


def combine_image_text(text: np.ndarray, image: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """Unit rows [sqrt(1-w)·text ; sqrt(w)·image]; an all-zero image row means "no image"."""
    if not 0.0 <= image_weight <= 1.0:
        raise ValueError(f"image_weight must be in [0, 1], not {image_weight}")
    text, image = normalize_rows(text), normalize_rows(image)
    has_image = np.linalg.norm(image, axis=1, keepdims=True) > 0
    text_scale = np.where(has_image, np.sqrt(1.0 - image_weight), 1.0).astype(np.float32)
    image_scale = np.float32(np.sqrt(image_weight))
    return np.hstack([text * text_scale, image * image_scale]).astype(np.float32)


def _is_file(source: str) -> bool:
    if len(source) > _MAX_PATH:
        return False
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # a name too long for the file system, or a NUL byte
        return False


def _data_url(source: str) -> bytes:
    header, comma, payload = source.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequest("an image data: URL must be base64-encoded (data:image/...;base64,...)")
    return _base64(payload)


def _base64(payload: str) -> bytes:
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("image is neither a file, a URL, nor valid base64") from exc


def _fetch(url: str, timeout_s: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "modelcache"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            data: bytes = response.read(max_bytes + 1)
    except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
        raise InvalidRequest(f"cannot fetch image {url}: {exc}") from exc
    return data
