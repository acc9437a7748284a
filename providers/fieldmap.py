"""How one model's inputs are named, for upstreams whose models each take their own (fal).

Config data, not code: a provider model of kind ``fal`` gives a ``fields`` mapping, parsed
here into a ``FieldMap``, which builds the model's input object from a ``RenderRequest`` and
finds the video URL in its result. Each of our request's parts goes to the input field named
for it, or nowhere when none is named::

    fields:
      prompt: prompt              # default "prompt"
      seconds: duration           # the length's field; left out, the model has one length
      seconds_format: "{}s"       # a template for a string ("8s"); left out, a number
      aspect_ratio: aspect_ratio  # "16:9" ...
      resolution: resolution      # "720p" ...
      size: video_size            # "1280x720" as it is
      image_url: image_url        # the first frame (a data URL for an upload)
      fixed: {generate_audio: false}   # sent as they are
      output: video.url           # dotted path of the video URL in the result (the default)

``geometry`` says what the mapping can ask for exactly: a model that takes ``size`` renders
any size; one that takes a resolution and ratio, the named pairs; one that takes only a ratio,
that ratio at the model's own resolution (so the provider must list its ``sizes``); and one
that takes neither needs ``sizes`` listed too, as does a model without a ``seconds`` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from providers.base import RenderRequest
from providers.sizes import NAMED_RATIOS, NAMED_RESOLUTIONS, Geometry, named

_NAMES = ("prompt", "seconds", "aspect_ratio", "resolution", "size", "image_url", "output")


@dataclass(frozen=True, slots=True, kw_only=True)
class FieldMap:
    prompt: str = "prompt"
    seconds: str | None = None
    seconds_format: str | None = None  # "{}s" -> "8s"; None -> 8
    aspect_ratio: str | None = None
    resolution: str | None = None
    size: str | None = None
    image_url: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    output: str = "video.url"

    @property
    def names_size(self) -> bool:
        """Whether the model is told the size (so the config need not list it)."""
        return self.size is not None or (
            self.resolution is not None and self.aspect_ratio is not None
        )

    def geometry(self) -> Geometry:
        if self.size is not None or self.aspect_ratio is None:
            return Geometry(any_size=True)
        resolutions = NAMED_RESOLUTIONS if self.resolution else frozenset()
        return Geometry(resolutions=resolutions, ratios=NAMED_RATIOS)

    def inputs(self, request: RenderRequest) -> dict[str, Any]:
        """The model's input object for ``request``."""
        body: dict[str, Any] = {**self.fixed, self.prompt: request.prompt}
        if self.seconds is not None:
            template = self.seconds_format
            body[self.seconds] = (
                request.seconds if template is None else template.format(request.seconds)
            )
        pair = named(request.size)
        if self.size is not None:
            body[self.size] = request.size
        if pair is not None and self.resolution is not None:
            body[self.resolution] = pair[0]
        if pair is not None and self.aspect_ratio is not None:
            body[self.aspect_ratio] = pair[1]
        if self.image_url is not None and request.input_reference is not None:
            body[self.image_url] = request.input_reference.as_url()
        return body

    def video_url(self, result: object) -> str | None:
        """The video URL at ``output`` in a result, if it is there."""
        found = result
        for part in self.output.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        return found if isinstance(found, str) and found else None

    @classmethod
    def parse(cls, raw: object, path: str) -> tuple[FieldMap, list[str]]:
        """A mapping from config; every problem by dotted path (values are never repeated)."""
        if not isinstance(raw, Mapping):
            return cls(), [f"{path}: must be a mapping"]
        problems: list[str] = []
        values: dict[str, Any] = {}
        known = {f.name for f in fields(cls)}
        for key, value in raw.items():
            where = f"{path}.{key}"
            if key not in known:
                problems.append(f"{where}: unknown field")
            elif key == "fixed":
                if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
                    values[key] = MappingProxyType(dict(value))
                else:
                    problems.append(f"{where}: must be a mapping of input names to values")
            elif not isinstance(value, str) or not value:
                problems.append(f"{where}: must be a non-empty string")
            elif key == "seconds_format" and value.count("{}") != 1:
                problems.append(f"{where}: must hold {{}} once, where the seconds go")
            else:
                values[key] = value
        named_fields = [values.get(n) for n in _NAMES[:-1] if values.get(n) is not None]
        if len(named_fields) != len(set(named_fields)):
            problems.append(f"{path}: two parts map to the same input field")
        return cls(**values), problems
