"""Photos as the service sees them (EXIF orientation applied) with face boxes drawn on them.

The service decodes uploads upright (``ImageOps.exif_transpose``) and answers boxes in that frame;
a phone photo stored sideways with an orientation tag must be turned the same way before the
boxes are drawn, or they land on the wrong part of the picture.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps


def upright(data: bytes) -> Image.Image:
    """The photo in RGB, turned by its EXIF orientation as the service turns it."""
    return ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")


def boxed(
    data: bytes,
    boxes: Sequence[Sequence[float]],
    labels: Sequence[str],
    colors: Sequence[str],
    min_width: int = 0,
) -> Image.Image:
    """The upright photo with each box outlined in its colour and labelled above it (inside the box
    when there is no room above), in type scaled to the photo so that it stays readable.

    ``min_width``: a narrower photo is first enlarged to that width (boxes with it), so that a
    small probe is drawn at a readable size and its labels are not blurred by the browser's own
    upscaling."""
    image = upright(data)
    scale = 1.0
    if image.width < min_width:
        scale = min_width / image.width
        image = image.resize((min_width, round(image.height * scale)), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(image)
    width = max(2, image.width // 200)
    font = ImageFont.load_default(size=max(14, max(image.size) // 36))
    for box, label, color in zip(boxes, labels, colors, strict=True):
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=width)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        height = bottom - top + 2 * width
        y = y1 - height if y1 >= height else y1 + width
        draw.rectangle((x1, y, x1 + right - left + 2 * width, y + height), fill=color)
        draw.text((x1 + width - left, y + width - top), label, fill="black", font=font)
    return image
