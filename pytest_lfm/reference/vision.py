"""Image loading and the facts the toy VL model reads from real pixels (§6 of the behaviour notes)."""

from __future__ import annotations

import base64
import binascii
import functools
import io
import math
from dataclasses import dataclass

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

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
    text: str = ""
    orientation: int = 1  # EXIF Orientation tag (1 = as stored)

    def describe(self) -> str:
        """A short description: size, colours, and any text the picture shows."""
        if self.left != self.right:
            colours = f"the left half is {self.left} and the right half is {self.right}"
        else:
            colours = f"it is mostly {self.colour}"
        shown = f'; it shows the text "{self.text}"' if self.text else ""
        return f"a {self.width}x{self.height} picture; {colours}{shown}"

    @property
    def tokens(self) -> int:
        """Image tokens this picture takes in the prompt (64 to 256, by size)."""
        return max(64, min(256, math.ceil(self.width / 32) * math.ceil(self.height / 32)))


def _nearest(rgb: tuple[float, float, float]) -> str:
    return min(PALETTE, key=lambda n: sum((a - b) ** 2 for a, b in zip(PALETTE[n], rgb, strict=True)))


def _dominant(img: Image.Image) -> str:
    small = img.resize((16, 16), Image.Resampling.BOX)
    counts: dict[str, int] = {}
    for px in np.asarray(small.convert("RGB")).reshape(-1, 3).tolist():
        name = _nearest(tuple(px))
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
                      right=_dominant(right), digest=digest, text=read_text(rgb),
                      orientation=int(img.getexif().get(0x0112, 1) or 1))


# A very small OCR for dark glyphs on a light background: column segmentation, then the nearest
# template among digits and capital letters drawn with Pillow's bundled font. It reads pixels; it
# knows nothing about the suite's images.
_GLYPHS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GRID = (12, 16)
_OCR_MAX_WIDTH = 1024


def _glyph_vector(ink: np.ndarray) -> tuple[np.ndarray, float] | None:
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return None
    box = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    img = Image.fromarray((box * 255).astype(np.uint8)).resize(_GRID, Image.Resampling.BOX)
    vec = np.asarray(img) >= 96
    return vec, box.shape[1] / box.shape[0]


@functools.lru_cache(maxsize=1)
def _templates() -> tuple[tuple[str, np.ndarray, float], ...]:
    font = ImageFont.load_default(size=64)
    out = []
    for ch in _GLYPHS:
        img = Image.new("L", (120, 120), 255)
        ImageDraw.Draw(img).text((20, 10), ch, fill=0, font=font)
        found = _glyph_vector(np.asarray(img) < 128)
        if found is not None:
            out.append((ch, found[0], found[1]))
    return tuple(out)


def read_text(rgb: Image.Image) -> str:
    """Digits and capital letters printed dark on a light background, left to right ("" if none)."""
    gray = rgb.convert("L")
    if gray.width > _OCR_MAX_WIDTH:
        gray = gray.resize((_OCR_MAX_WIDTH, max(1, gray.height * _OCR_MAX_WIDTH // gray.width)),
                           Image.Resampling.BOX)
    px = np.asarray(gray)
    ink = px < 128
    ink_share, light_share = float(ink.mean()), float((px >= 200).mean())
    if not (0.003 <= ink_share <= 0.4 and light_share >= 0.55 and ink_share + light_share >= 0.9):
        return ""
    columns: list[bool] = [bool(v) for v in np.asarray(ink.any(axis=0)).ravel()]
    segments: list[tuple[int, int]] = []
    start = None
    for x, on in enumerate([*columns, False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            segments.append((start, x))
            start = None
    if not segments or len(segments) > 64:
        return ""
    heights = []
    for a, b in segments:
        rows = np.flatnonzero(ink[:, a:b].any(axis=1))
        heights.append(int(rows[-1] - rows[0] + 1))
    tallest = max(heights)
    out: list[str] = []
    previous_end = None
    for (a, b), h in zip(segments, heights, strict=True):
        if h < 0.4 * tallest:
            continue
        found = _glyph_vector(ink[:, a:b])
        if found is None:
            continue
        vec, aspect = found
        best, best_ch = 1.0, ""
        for ch, tvec, taspect in _templates():
            distance = float((vec != tvec).mean()) + 0.5 * abs(math.log(aspect / taspect))
            if distance < best:
                best, best_ch = distance, ch
        if best > 0.3:
            continue
        if previous_end is not None and a - previous_end > 0.9 * tallest and out:
            out.append(" ")
        out.append(best_ch)
        previous_end = b
    return "".join(out).strip()


def load_image_bytes(url: str, timeout: float = URL_TIMEOUT_S) -> bytes:
    """Bytes of an ``image_url``: data URI, bare base64, or http(s) URL (as SGLang loads them, waiting at
    most ``timeout`` seconds for an http download)."""
    if url.startswith("data:"):
        _, _, payload = url.partition(",")
        return _b64(payload)
    if url.startswith(("http://", "https://")):
        try:
            with httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5) as client:
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
