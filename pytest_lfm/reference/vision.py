"""Image loading and the facts the toy VL model reads from real pixels (§6 of the behaviour notes)."""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "orange": (250, 140, 20),
    "purple": (130, 40, 170),
    "pink": (250, 150, 190),
    "brown": (120, 70, 30),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "cyan": (30, 210, 220),
}
URL_TIMEOUT_S = 3.0  # SGLang's REQUEST_TIMEOUT default for images
MAX_URL_BYTES = 64 * 1024 * 1024


class MediaError(Exception):
    """A client media problem: SGLang 0.5.23 answers 400 for these (CLIENT_MEDIA_EXCEPTIONS)."""


@dataclass(frozen=True)
class ImageFacts:
    """What the model can tell about one image."""

    width: int
    height: int
    mode: str
    colour: str
    left: str
    right: str
    digest: str

    def describe(self) -> str:
        """A short description: size and colours."""
        if self.left != self.right:
            colours = f"the left half is {self.left} and the right half is {self.right}"
        else:
            colours = f"it is mostly {self.colour}"
        return f"a {self.width}x{self.height} picture; {colours}"

    @property
    def tokens(self) -> int:
        """Image tokens this picture takes in the prompt (64 to 256, by size)."""
        return max(64, min(256, math.ceil(self.width / 32) * math.ceil(self.height / 32)))


def _nearest(rgb: tuple[float, float, float]) -> str:
    return min(PALETTE, key=lambda n: sum((a - b) ** 2 for a, b in zip(PALETTE[n], rgb, strict=True)))


def _dominant(img: Image.Image) -> str:
    small = img.resize((16, 16), Image.Resampling.BOX)
    counts: dict[str, int] = {}
    for px in small.getdata():
        name = _nearest(px[:3])
        counts[name] = counts.get(name, 0) + 1
    return max(sorted(counts), key=lambda n: counts[n])


def facts_from_bytes(data: bytes) -> ImageFacts:
    """Decode image bytes and read their facts."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(f"Could not decode image: {exc}") from exc
    mode = img.mode
    rgb = img.convert("RGB")
    w, h = rgb.size
    left = rgb.crop((0, 0, max(1, w // 2), h))
    right = rgb.crop((w // 2, 0, w, h)) if w > 1 else left
    import hashlib

    digest = hashlib.sha256(rgb.tobytes()).hexdigest()[:16]
    return ImageFacts(width=w, height=h, mode=mode, colour=_dominant(rgb), left=_dominant(left),
                      right=_dominant(right), digest=digest)


def load_image_bytes(url: str) -> bytes:
    """Bytes of an ``image_url``: data URI, bare base64, or http(s) URL (as SGLang loads them)."""
    if url.startswith("data:"):
        _, _, payload = url.partition(",")
        return _b64(payload)
    if url.startswith(("http://", "https://")):
        try:
            with httpx.Client(timeout=URL_TIMEOUT_S, follow_redirects=True, max_redirects=5) as client:
                resp = client.get(url)
        except httpx.HTTPError as exc:
            raise MediaError(f"Error while loading data from {url}: {type(exc).__name__}") from exc
        if resp.status_code >= 400:
            raise MediaError(f"Error while loading data from {url}: HTTP {resp.status_code}")
        if len(resp.content) > MAX_URL_BYTES:
            raise MediaError(f"Error while loading data from {url}: larger than {MAX_URL_BYTES} bytes")
        return resp.content
    if "://" in url or url.startswith(("file:", "/")):
        raise MediaError(f"Error while loading data {url[:80]!r}: unsupported image source")
    return _b64(url)


def _b64(payload: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"Error while loading data: invalid base64 ({exc})") from exc
