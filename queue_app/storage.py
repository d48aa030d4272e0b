"""Where audio lives: a local folder (default) or an S3 bucket, behind one small interface.

S3 objects are private and encrypted at rest (SSE-S3); Twilio plays them through short-lived
presigned URLs. Local files are served by the app itself, at a URL signed with an HMAC of the
app's SECRET_KEY that expires (`audio_url`, served by web/prompt_audio.py):

    {PUBLIC_BASE_URL}/twilio/prompts/<key>?exp=<unix seconds>&sig=<hex HMAC-SHA256(key "\n" exp)>
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/_.-]{0,254}$")


class StorageError(RuntimeError):
    pass


class AudioNotFound(StorageError):
    pass


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key) or ".." in key:
        raise StorageError(f"invalid storage key {key!r}")
    return key


class AudioStorage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def presigned_url(self, key: str, expires_in: int = 3600) -> str | None:
        """A URL Twilio can fetch directly, or None when the app must serve the file itself."""
        ...


@dataclass
class LocalStorage:
    folder: Path

    def _path(self, key: str) -> Path:
        return self.folder / check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a half-written prompt is never played

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise AudioNotFound(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def presigned_url(self, key: str, expires_in: int = 3600) -> str | None:
        return None


@dataclass
class S3Storage:
    bucket: str
    prefix: str
    client: Any

    @classmethod
    def create(cls, bucket: str, prefix: str, region: str, endpoint_url: str | None) -> S3Storage:
        client = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=BotoConfig(signature_version="s3v4", retries={"max_attempts": 3}),
        )
        return cls(bucket=bucket, prefix=prefix, client=client)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
            ServerSideEncryption="AES256",
        )

    def get(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise AudioNotFound(key) from None
            raise StorageError(str(exc)) from exc
        return bytes(response["Body"].read())

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError:
            return False
        return True

    def presigned_url(self, key: str, expires_in: int = 3600) -> str | None:
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=expires_in,
            )
        )


def storage_from_config(config: Any) -> AudioStorage:
    if config.get("S3_BUCKET"):
        return S3Storage.create(
            config["S3_BUCKET"], config["S3_PREFIX"], config["S3_REGION"], config["S3_ENDPOINT_URL"]
        )
    return LocalStorage(Path(config["AUDIO_DIR"]))


# ---- URLs Twilio plays -------------------------------------------------------------------------

# Long enough for a caller who waits in the queue while the waitUrl loops (each loop asks afresh),
# short enough that a leaked URL soon stops working.
AUDIO_URL_SECONDS = 900
LOCAL_AUDIO_PATH = "/twilio/prompts/"


def current_storage() -> AudioStorage:
    """The app's storage, built once per configuration (a boto3 client is not free to create)."""
    from flask import current_app

    config = current_app.config
    settings = (
        config.get("S3_BUCKET"),
        config.get("S3_PREFIX"),
        config.get("S3_REGION"),
        config.get("S3_ENDPOINT_URL"),
        config.get("AUDIO_DIR"),
    )
    cached = current_app.extensions.get("koe_audio_storage")
    if cached is None or cached[0] != settings:
        cached = (settings, storage_from_config(config))
        current_app.extensions["koe_audio_storage"] = cached
    return cached[1]  # type: ignore[no-any-return]


def local_signature(secret: str, key: str, expires: int) -> str:
    message = f"{key}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def local_signature_is_valid(secret: str, key: str, expires: str, signature: str, now: float) -> bool:
    """True when `signature` was made by `audio_url` for `key` and `expires` is still ahead."""
    if not expires.isdigit() or not signature:
        return False
    if not hmac.compare_digest(local_signature(secret, key, int(expires)), signature):
        return False
    return int(expires) > now


def audio_url(key: str, expires_in: int = AUDIO_URL_SECONDS) -> str:
    """An absolute URL Twilio can <Play>: presigned S3 when a bucket is set, else signed by the app."""
    from flask import current_app

    from . import get_clock

    check_key(key)
    presigned = current_storage().presigned_url(key, expires_in=expires_in)
    if presigned:
        return presigned
    expires = int(get_clock().now().timestamp()) + expires_in
    signature = local_signature(str(current_app.config["SECRET_KEY"]), key, expires)
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return f"{base}{LOCAL_AUDIO_PATH}{quote(key)}?{urlencode({'exp': expires, 'sig': signature})}"
