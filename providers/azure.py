"""Azure OpenAI Sora 2: the OpenAI Videos wire format under Azure's URLs, version and auth.

Bodies, the Video object, errors and every operation are OpenAI's, so this adapter says only
where and how to call:

- ``base_url`` is the resource root (``https://{resource}.openai.azure.com``) and every path
  sits under ``/openai/v1``;
- every call carries ``?api-version=`` (the ``api_version`` keyword; config defaults it to
  ``preview``), since Azure answers a bare path with 404;
- the key goes in the ``api-key`` header, never as a Bearer token.

The ``model`` sent is the deployment name: config gives it as the provider model's
``upstream_model``, and ``find`` matches listed videos on it too. Whether Azure's list
shows the deployment name or the base model id is unconfirmed: if the latter, ``find`` misses
and an unanswered create goes elsewhere after ``reconcile_window``. Azure ids exist only on
the resource that made them; the router keeps every attempt on the provider that created it,
so nothing more is needed here.
"""

from __future__ import annotations

from providers.openai import OpenAIVideosProvider


class AzureVideosProvider(OpenAIVideosProvider):
    kind = "azure"

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self._api_key} if self._api_key else {}

    def url(self, path: str) -> str:
        return f"{self.base_url}/openai/v1{path}"

    def query(self) -> dict[str, str]:
        return {"api-version": self._api_version}
