"""Text embeddings of the view prompts for SD img2img: computed once, kept beside the UNet.

The fixed prompts (every named view and the negative prompt) are encoded at load and kept for
the replica's life. Custom view names ("wearing glasses") go into a small LRU (``CUSTOM_KEPT``):
a stream of unique names cannot grow GPU memory. Once the fixed prompts are cached the CLIP text
encoder (~250 MB in fp16) has nothing to do on the GPU: ``offload`` moves it to the CPU in
float32, where a custom prompt is encoded in tens of milliseconds and its embedding copied to the
UNet's device and dtype.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

log = logging.getLogger(__name__)

CUSTOM_KEPT = 64


class PromptCache:
    def __init__(self, pipe: Any, fixed: tuple[str, ...], custom_kept: int = CUSTOM_KEPT) -> None:
        self._pipe = pipe
        # its own reference: during a generation the pipeline holds none (sd_stages.text_encoder_set_aside)
        self._encoder = pipe.text_encoder
        self._fixed = frozenset(fixed)
        self._kept = custom_kept
        self._cache: OrderedDict[str, Any] = OrderedDict()
        for prompt in fixed:
            self.get(prompt)

    def __len__(self) -> int:
        return len(self._cache)

    def __contains__(self, prompt: object) -> bool:
        return prompt in self._cache

    @property
    def encoder_device(self) -> str:
        return str(self._encoder.device.type)

    def get(self, prompt: str) -> Any:
        """The (1, 77, 768) embedding of ``prompt`` on the UNet's device, in its dtype."""
        cached = self._cache.get(prompt)
        if cached is not None:
            self._cache.move_to_end(prompt)  # fixed prompts are never evicted, so order is only for custom ones
            return cached
        import torch

        target = self._pipe.vae  # the UNet may be a torch.compile wrapper; the VAE sits beside it
        with torch.inference_mode():
            embeds, _ = self._pipe.encode_prompt(prompt, self._encoder.device, 1, False)
        embeds = embeds.to(device=target.device, dtype=target.dtype)
        self._cache[prompt] = embeds
        custom = [p for p in self._cache if p not in self._fixed]
        if len(custom) > self._kept:
            del self._cache[custom[0]]  # the least recently used custom prompt
        return embeds

    def offload(self) -> bool:
        """Move the text encoder to the CPU (float32) when it sits on a GPU; True if it moved."""
        encoder = self._encoder
        if encoder.device.type == "cpu":
            return False
        import torch

        encoder.to("cpu", torch.float32)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.info("text encoder moved to the CPU: %d prompt embeddings cached on the GPU", len(self._cache))
        return True
