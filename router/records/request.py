"""``CreateRequest``: a validated create, the record the API hands to the job services.

It lives below both: the API builds it (``router.api.requests``), idempotency fingerprints it
and the dispatcher places it, so neither service owns it.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import InputReference


@dataclass(slots=True)  # not frozen, see providers.base.RenderRequest
class CreateRequest:
    """A validated create, in the client catalogue's terms."""

    model: str
    prompt: str
    size: str
    seconds: int
    input_reference: InputReference | None = None
