"""``CreateRequest``: a validated create, the record the API hands to the job services.

It lives below both: the API builds it (``router.api.requests``), idempotency fingerprints it
and the dispatcher places it, so neither service owns it.
"""

from __future__ import annotations

from dataclasses import dataclass

from providers.base import InputReference, Operation, SourceVideo
from router.records.job import Job


@dataclass(slots=True)  # not frozen, see providers.base.RenderRequest
class CreateRequest:
    """A validated render any provider may take, in the client catalogue's terms: a create, or
    an edit or extension of an uploaded video (``source``). ``seconds`` is the video's length
    (an extension's stitched total); ``segment_seconds`` an extension's new segment."""

    model: str
    prompt: str
    size: str
    seconds: int
    input_reference: InputReference | None = None
    operation: Operation = Operation.CREATE
    source: SourceVideo | None = None
    segment_seconds: int | None = None
    extensions: int = 0
    characters: tuple[str, ...] = ()  # our character ids
    source_video_id: str | None = None  # our job an edit or extension starts from
    callback_url: str | None = None  # where the job's webhook events also go
    watermark: bool | None = None  # relay clients' switches, forwarded to relay upstreams only
    private: bool | None = None

    @property
    def rendered_seconds(self) -> int:
        """What a provider renders (and is paid for): an extension's segment, else all."""
        return self.seconds if self.segment_seconds is None else self.segment_seconds

    @property
    def needs(self) -> frozenset[str]:
        """The provider features (``providers.base.FEATURES``) this render takes."""
        return needed_features(self.operation, self.characters)

    @property
    def kept_input(self) -> InputReference | None:
        """What the store keeps so another provider can be sent the same render: the
        reference image, or the uploaded source video."""
        if self.source is None or self.source.data is None:
            return self.input_reference
        return InputReference(
            data=self.source.data,
            filename=self.source.filename,
            content_type=self.source.content_type,
        )

    @classmethod
    def of_job(cls, job: Job, kept: InputReference | None) -> CreateRequest:
        """The render ``job`` asked for, for a re-submission elsewhere; ``kept`` is what the
        store kept for it (``kept_input``)."""
        source = None
        reference = kept
        if job.operation in (Operation.EDIT, Operation.EXTEND):
            reference = None
            if kept is not None and kept.data is not None:
                source = SourceVideo(
                    data=kept.data, filename=kept.filename, content_type=kept.content_type
                )
        return cls(
            job.model,
            job.prompt,
            job.size,
            job.seconds,
            reference,
            operation=job.operation,
            source=source,
            segment_seconds=job.segment_seconds,
            extensions=job.extensions,
            characters=job.characters,
            callback_url=job.callback_url,
            watermark=job.watermark,
            private=job.private,
        )


def needed_features(operation: Operation, characters: tuple[str, ...] = ()) -> frozenset[str]:
    """What a provider must be able to do to take such a render (create needs nothing)."""
    needs = set() if operation is Operation.CREATE else {operation.value}
    if characters:
        needs.add("characters")
    return frozenset(needs)
