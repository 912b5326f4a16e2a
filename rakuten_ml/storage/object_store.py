"""A small object-store interface with two backends: a local folder and S3 (through boto3).

Keys are '/'-separated and relative to the store's root (bucket prefix or folder), so the
same code paths run on the embedded default and on S3/MinIO.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rakuten_ml.errors import InvalidObjectKeyError, ObjectNotFoundError, ObjectStoreError, UnreadableObjectError
from rakuten_ml.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    version: str  # ETag on S3, size+mtime locally: changes whenever the content is rewritten


class ObjectStore(Protocol):
    url: str

    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def info(self, key: str) -> ObjectInfo: ...
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def uri(self, key: str) -> str: ...
    def check(self) -> None: ...


def _clean_key(key: str) -> str:
    key = key.strip("/")
    if not key or ".." in key.split("/"):
        raise InvalidObjectKeyError(f"invalid object key {key!r}: keys are non-empty relative paths without '..'")
    return key


class LocalObjectStore:
    """A folder acting as object store; writes are atomic (temp file + rename)."""

    def __init__(self, root: str | Path, create: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        if create:
            self.root.mkdir(parents=True, exist_ok=True)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from None
        except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            raise UnreadableObjectError(f"object {key!r} in {self.url} is not a readable file: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnreadableObjectError(f"object {key!r} in {self.url} is a symbolic link loop") from None
            raise ObjectStoreError(f"cannot read {key!r} in {self.url}: {exc}; check the disk or mount") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def info(self, key: str) -> ObjectInfo:
        try:
            stat = self._path(key).stat()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"no object {key!r} in {self.url}") from None
        return ObjectInfo(key=_clean_key(key), size=stat.st_size, version=f"{stat.st_size}-{stat.st_mtime_ns}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        if not base.exists():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in sorted(files):
                if name.startswith(".tmp-"):
                    continue
                path = Path(dirpath) / name
                try:
                    stat = path.stat()
                except OSError as exc:  # a dangling link or a link loop: not an object, but not a reason to fail
                    log.warning("skipping %s while listing %s: %s", path, self.url, exc.strerror)
                    continue
                key = path.relative_to(self.root).as_posix()
                yield ObjectInfo(key=key, size=stat.st_size, version=f"{stat.st_size}-{stat.st_mtime_ns}")

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def check(self) -> None:
        if not self.root.is_dir():
            raise ObjectStoreError(f"object store folder {self.root} does not exist; create it or fix the URL")


class S3ObjectStore:
    """A bucket (and optional prefix) reached through boto3."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, region: str = "us-east-1") -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # Few, fast retries: an unreachable endpoint must surface as a clear error, not hang a DAG task.
        config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})
        self._client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)

    def _full(self, key: str) -> str:
        key = _clean_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _translate(self, exc: Exception, key: str | None = None) -> ObjectStoreError:
        from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

        if isinstance(exc, EndpointConnectionError):
            return ObjectStoreError(
                f"cannot reach S3 endpoint {self.endpoint_url or 'AWS'}: {exc}; "
                "check RAKUTEN_S3_ENDPOINT_URL and that the server is running"
            )
        if isinstance(exc, NoCredentialsError):
            return ObjectStoreError("no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket",) or (code in ("404", "NotFound") and key is None):
                return ObjectStoreError(
                    f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}; "
                    "create it or fix RAKUTEN_OBJECT_STORE_URL"
                )
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectNotFoundError(f"no object {key!r} in {self.url}")
            return ObjectStoreError(f"S3 error {code} on {self.url}/{key or ''}: {exc}")
        return ObjectStoreError(f"S3 error on {self.url}: {exc}")

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)
        except Exception as exc:  # noqa: BLE001 - translated into a typed error
            raise self._translate(exc, key) from exc

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"].read()
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, key) from exc

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
        except ObjectNotFoundError:
            return False
        return True

    def info(self, key: str) -> ObjectInfo:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        except Exception as exc:  # noqa: BLE001
            error = self._translate(exc, key)
            if isinstance(error, ObjectNotFoundError):
                self.check()  # head_object answers a bare 404 for a missing bucket too: tell the two apart
            raise error from exc
        return ObjectInfo(key=_clean_key(key), size=int(head["ContentLength"]), version=head["ETag"].strip('"'))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full_prefix = self._full(prefix) + "/" if prefix.strip("/") else (self.prefix + "/" if self.prefix else "")
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        key=self._relative(item["Key"]), size=int(item["Size"]), version=item["ETag"].strip('"')
                    )
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc) from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc) from exc


def open_store(url: str, settings: Settings, *, create: bool = True) -> ObjectStore:
    """Open the store a URL names: ``s3://bucket/prefix`` or a local folder (``file://`` or a path)."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ObjectStoreError(f"S3 URL {url!r} names no bucket; use s3://bucket/prefix")
        return S3ObjectStore(bucket, prefix, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    if url.startswith("file://"):
        url = url[len("file://") :]
    return LocalObjectStore(url, create=create)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
