"""Image input (§6): decoding image parts, the multimodal cache, image tokens in the prompt, media errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_lfm.reference import hooks as H
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.state import ServerState
from pytest_lfm.reference.validation import ClientError
from pytest_lfm.reference.vision import (
    URL_TIMEOUT_S,
    ImageFacts,
    MediaError,
    facts_from_bytes,
    load_image_bytes,
)
from pytest_lfm.releases import has_fact


def collect_images(messages: Sequence[Mapping[str, Any]], st: ServerState) -> list[ImageFacts]:
    """Decode every image part (raises MediaError / ClientError as SGLang does)."""
    if st.media_wedged:
        raise ClientError("Internal server error: the scheduler died after a media error",
                          type_="InternalServerError", status=500)
    facts: list[ImageFacts] = []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    for n, m in enumerate(messages):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "image_url":
                continue
            if not st.variant.supports("vision"):
                if not st.hooks(H.IMAGE_PART_REJECTED, True):
                    continue
                raise ClientError(
                    "Model only supports text input; received unsupported content type 'image_url'."
                )
            url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), Mapping) else None
            if not isinstance(url, str) or not url:
                raise ClientError("image_url.url is required", type_="Bad Request")
            try:
                img = facts_from_bytes(st.hooks(H.IMAGE_BYTES, load_image_bytes(url, st.hooks(H.IMAGE_URL_TIMEOUT, URL_TIMEOUT_S)), url=url))
            except MediaError as exc:
                raise st.hooks(H.MEDIA_ERROR, exc, st=st) from None
            img = st.hooks(H.IMAGE_DECODED, img)
            if not st.hooks(H.IMAGE_KEPT, True, turn=n, last_user=last_user):
                continue
            facts.append(cached(img, st))
    if facts:
        with st.lock:
            st.image_requests += 1
    return st.hooks(H.IMAGES_COLLECTED, facts, st=st)


def cache_key(img: ImageFacts) -> str:
    """The multimodal cache key: the decoded pixels' digest AND the picture's size (two pictures with the
    same pixel data in a different shape, e.g. a red 16x4 and a red 8x8, are different images)."""
    return f"{img.digest}:{img.width}x{img.height}"


def cached(img: ImageFacts, st: ServerState) -> ImageFacts:
    """The image through the multimodal cache (faults: a key that collides, a corrupted hit)."""
    key = st.hooks(H.IMAGE_CACHE_KEY, cache_key(img), img=img)
    with st.lock:
        hit = st.image_cache.get(key)
        if hit is None:
            st.image_cache[key] = img
            return img
    return st.hooks(H.IMAGE_CACHE_HIT, hit)


def flush_cache(st: ServerState) -> None:
    """``/flush_cache``: forget cached images."""
    with st.lock:
        if st.hooks(H.FLUSH_FORGETS_FIRST_IMAGE, True):
            st.first_image = None
        st.image_cache.clear()
    st.hooks(H.FLUSH_CACHE, None, st=st)


def prompt_ids_for(text: str, images: Sequence[ImageFacts], st: ServerState) -> list[int]:
    """Token ids of a rendered prompt, each ``<image>`` expanded to the picture's image tokens."""
    ids = tok.encode(text)
    if not images:
        return st.hooks(H.PROMPT_IDS_NO_IMAGES, ids)
    markers = ids.count(tok.IMAGE_ID)
    if markers != len(images):
        # a user typed the literal placeholder text: it cannot be told from an image part's placeholder
        err: ClientError | None = st.hooks(H.IMAGE_PLACEHOLDER_MISMATCH, ClientError(
            f"The prompt holds {markers} image placeholders ('<image>') but {len(images)} image(s) were given: "
            "remove the literal '<image>' text from the messages, or send one image part per placeholder."),
            markers=markers, images=len(images))
        if err is not None:  # None: a fault that forgets images keeps their placeholders as plain tokens
            raise err
    out: list[int] = []
    queue = list(images)
    for i in ids:
        if i == tok.IMAGE_ID and queue:
            img = queue.pop(0)
            out.extend([tok.IMAGE_ID] * st.hooks(H.IMAGE_TOKENS, img.tokens))
        else:
            out.append(i)
    return out


def media_error(exc: MediaError, st: ServerState) -> ClientError:
    """Client media errors are 400 (0.5.23 by its code, 0.5.17 as run on an H100); 0.5.10 answered 500
    (``RuntimeError``)."""
    message = f"An exception occurred while loading multimodal data: {exc}"
    if not has_fact("media-errors-400", st.version):
        return ClientError("Internal server error: " + message, type_="InternalServerError", status=500)
    return st.hooks(H.MEDIA_ERROR_RESPONSE, ClientError(message))
