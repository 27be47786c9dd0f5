"""View names, their prompts, and how a request (a list of views or a count) becomes a plan."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from core.errors import InvalidInput

# Pose and expression prompts for Stable Diffusion img2img; the photo itself carries identity.
VIEW_PROMPTS: dict[str, str] = {
    "frontal": "head facing the camera, looking straight ahead",
    "left": "head turned slightly to the left, three-quarter view",
    "right": "head turned slightly to the right, three-quarter view",
    "up": "head tilted slightly up, chin raised, looking up",
    "down": "head tilted slightly down, chin lowered, looking down",
    "smiling": "smiling, happy expression, visible teeth",
    "serious": "serious neutral expression, closed mouth",
}
PROMPT_TEMPLATE = "a portrait photo of the same person, {view}, {quality}"
QUALITY_WORDS = "photorealistic, natural skin texture, soft natural lighting, sharp focus, 85mm lens"
NEGATIVE_PROMPT = (
    "cartoon, drawing, painting, anime, 3d render, deformed, distorted face, asymmetric eyes, "
    "extra eyes, extra limbs, blurry, low quality, jpeg artifacts, watermark, text, two people"
)
# The order in which views are chosen when only a count is given.
DEFAULT_ORDER = ("left", "right", "up", "down", "smiling", "serious", "frontal")
MAX_VIEWS = 10
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class ViewRequest:
    """One view to generate: ``name`` is the source tag suffix (``augmented_<name>``)."""

    name: str
    repeat: int  # 1 for the first request of this view, 2 for the second, ...
    prompt: str
    seed: int

    @property
    def source(self) -> str:
        return f"augmented_{self.name}"

    @property
    def display_stem(self) -> str:
        return f"augmented_{self.name}_{self.repeat}"


def prompt_for(view: str) -> str:
    text = VIEW_PROMPTS.get(view, view.replace("_", " "))
    return PROMPT_TEMPLATE.format(view=text, quality=QUALITY_WORDS)


def view_seed(seed: int, view: str, repeat: int) -> int:
    """A per-view seed: stable whatever other views are requested alongside."""
    return (seed + zlib.crc32(f"{view}:{repeat}".encode())) % (2**31)


def plan_views(
    views: list[str] | None,
    num_variations: int | None,
    seed: int,
    supported: tuple[str, ...] | None = None,
    default_order: tuple[str, ...] = DEFAULT_ORDER,
    repeats_differ: bool = True,
) -> list[ViewRequest]:
    """Validated requests for explicit ``views`` or for the first ``num_variations`` defaults.

    ``supported`` limits the names (the classic generator cannot draw arbitrary prompts);
    None accepts custom names, which go into the prompt template. ``repeats_differ`` False (the
    generator draws the same image however often it is asked): a view may be asked for once.
    """
    if views is not None and num_variations is not None and len(views) != num_variations:
        raise InvalidInput("give either views or num_variations (or both, agreeing in number)")
    if views is None:
        count = len(default_order) if num_variations is None else num_variations
        most = MAX_VIEWS if repeats_differ else min(MAX_VIEWS, len(default_order))
        if not 0 <= count <= most:
            raise InvalidInput(f"num_variations must be between 0 and {most}, got {count}")
        views = [default_order[i % len(default_order)] for i in range(count)]
    if len(views) > MAX_VIEWS:
        raise InvalidInput(f"at most {MAX_VIEWS} views per enrollment, got {len(views)}")
    plan: list[ViewRequest] = []
    seen: dict[str, int] = {}
    for raw in views:
        name = str(raw).strip().lower().replace(" ", "_").replace("-", "_")
        if not _NAME.match(name):
            raise InvalidInput(f"view name {raw!r} is not valid: use 1-32 letters, digits or _")
        if supported is not None and name not in supported:
            raise InvalidInput(f"view {name!r} is not supported here; supported: {', '.join(supported)}")
        if name in seen and not repeats_differ:
            raise InvalidInput(f"view {name!r} is asked for twice; this generator draws the same image each time")
        seen[name] = seen.get(name, 0) + 1
        plan.append(ViewRequest(name, seen[name], prompt_for(name), view_seed(seed, name, seen[name])))
    return plan
