"""The S3-compatible asset store: objects in one bucket, shared by every instance of a fleet.

Built on aiobotocore (botocore's request signing and API models over aiohttp, so every call is
async on our loop). Path-style addressing, so any S3-compatible service works by its endpoint
URL (AWS, SeaweedFS, MinIO, R2). Keys are ``assets.prefix`` + the store's key.

``put`` is all or nothing by the service's own rules: a small object is one ``PutObject``,
a larger one a multipart upload of ``PART_BYTES`` parts that becomes visible only when
completed (and is aborted if the copy fails), so memory per copy stays at one part whatever
the video's size. ``read`` asks for the byte range and streams the answer. Errors from the
service come out as ``AssetStoreError``; botocore's messages name the operation and the
service's code, never the credentials.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from router.assets.base import AssetStoreError, StoredObject
from router.config.model import AssetsConfig

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

PART_BYTES = 8 << 20  # S3 wants parts of at least 5 MiB, but for the last
READ_CHUNK = 256 * 1024
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class S3AssetStore:
    """``AssetStore`` over one bucket of an S3-compatible service."""

    def __init__(self, config: AssetsConfig) -> None:
        self._config = config
        self._bucket = config.bucket
        self._prefix = config.prefix
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    def __repr__(self) -> str:
        return f"S3AssetStore(endpoint={self._config.endpoint!r}, bucket={self._bucket!r})"

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise AssetStoreError("the asset store is not open")
        return self._client

    async def open(self) -> None:
        """Connect, and create the bucket if it does not exist yet."""
        c = self._config
        session = get_session()
        creating = session.create_client(
            "s3",
            endpoint_url=c.endpoint,
            region_name=c.region,
            aws_access_key_id=c.access_key_id,
            aws_secret_access_key=c.secret_access_key,
            config=AioConfig(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=max(c.copy_concurrency * 2, 10),
                connect_timeout=10,
                read_timeout=60,
            ),
        )
        self._client = await self._stack.enter_async_context(creating)
        try:
            await self.client.head_bucket(Bucket=self._bucket)
        except ClientError as exc:
            if _code(exc) not in _MISSING:
                raise AssetStoreError(f"bucket {self._bucket}: {_code(exc)}") from exc
            await self._call(self.client.create_bucket(Bucket=self._bucket))
        except BotoCoreError as exc:
            raise AssetStoreError(f"bucket {self._bucket}: {exc}") from exc

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        name = self._prefix + key
        part = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            async for chunk in chunks:
                part += chunk
                size += len(chunk)
                if len(part) >= PART_BYTES:
                    if upload_id is None:
                        upload_id = await self._start_upload(name, content_type)
                    parts.append(await self._upload_part(name, upload_id, len(parts) + 1, part))
                    part = bytearray()
            if upload_id is None:
                await self._call(
                    self.client.put_object(
                        Bucket=self._bucket, Key=name, Body=bytes(part), ContentType=content_type
                    )
                )
                return size
            if part:
                parts.append(await self._upload_part(name, upload_id, len(parts) + 1, part))
            await self._call(
                self.client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=name,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
            )
            return size
        except BaseException:
            if upload_id is not None:  # nothing becomes visible; the parts are dropped
                with contextlib.suppress(BotoCoreError, ClientError):
                    await self.client.abort_multipart_upload(
                        Bucket=self._bucket, Key=name, UploadId=upload_id
                    )
            raise

    async def stat(self, key: str) -> StoredObject | None:
        try:
            head = await self.client.head_object(Bucket=self._bucket, Key=self._prefix + key)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise AssetStoreError(f"stat {key}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise AssetStoreError(f"stat {key}: {exc}") from exc
        return StoredObject(key, head["ContentLength"], head["LastModified"].timestamp())

    async def read(self, key: str, start: int, stop: int) -> AsyncIterator[bytes]:
        if stop <= start:
            return
        answer = await self._call(
            self.client.get_object(
                Bucket=self._bucket, Key=self._prefix + key, Range=f"bytes={start}-{stop - 1}"
            )
        )
        body = answer["Body"]
        try:
            async for chunk in body.iter_chunks(READ_CHUNK):
                yield chunk
        except (BotoCoreError, OSError) as exc:
            raise AssetStoreError(f"read {key}: {exc}") from exc
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self._call(self.client.delete_object(Bucket=self._bucket, Key=self._prefix + key))

    async def objects(self) -> AsyncIterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
                for entry in page.get("Contents", ()):
                    name = entry.get("Key", "")
                    yield StoredObject(
                        name[len(self._prefix) :],
                        entry.get("Size", 0),
                        entry["LastModified"].timestamp() if "LastModified" in entry else 0.0,
                    )
        except (BotoCoreError, ClientError) as exc:
            raise AssetStoreError(f"list: {exc}") from exc

    def local_path(self, key: str) -> Path | None:
        return None

    async def _start_upload(self, name: str, content_type: str) -> str:
        started = await self._call(
            self.client.create_multipart_upload(
                Bucket=self._bucket, Key=name, ContentType=content_type
            )
        )
        return str(started["UploadId"])

    async def _upload_part(
        self, name: str, upload_id: str, number: int, data: bytearray
    ) -> dict[str, Any]:
        done = await self._call(
            self.client.upload_part(
                Bucket=self._bucket, Key=name, UploadId=upload_id, PartNumber=number,
                Body=bytes(data),
            )
        )  # fmt: skip
        return {"PartNumber": number, "ETag": done["ETag"]}

    async def _call(self, call: Any) -> Any:
        """Await one client call, its failures as ``AssetStoreError``."""
        try:
            return await call
        except ClientError as exc:
            raise AssetStoreError(f"{exc.operation_name}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise AssetStoreError(str(exc)) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "unknown"))
