"""Audio storage: a local folder, and S3 over real HTTP against moto's server (never a patched boto3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from queue_app.storage import AudioNotFound, LocalStorage, S3Storage, StorageError, storage_from_config

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 28


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Storage:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    bucket = f"koe-{id(monkeypatch)}"
    boto3.client("s3", region_name="eu-north-1", endpoint_url=s3_endpoint).create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"}
    )
    return S3Storage.create(bucket, "prompts/", "eu-north-1", s3_endpoint)


def test_it_stores_and_reads_back_a_local_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put("org-1/welcome.wav", WAV, "audio/wav")
    assert storage.get("org-1/welcome.wav") == WAV
    assert storage.exists("org-1/welcome.wav")
    assert storage.presigned_url("org-1/welcome.wav") is None
    storage.delete("org-1/welcome.wav")
    assert not storage.exists("org-1/welcome.wav")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../../b", "", "white space.wav"])
def test_it_refuses_keys_that_escape_the_folder(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        LocalStorage(tmp_path).put(key, WAV, "audio/wav")


def test_it_says_when_a_local_file_is_missing(tmp_path: Path) -> None:
    with pytest.raises(AudioNotFound):
        LocalStorage(tmp_path).get("nope.wav")


def test_it_stores_private_encrypted_objects_in_s3(s3: S3Storage) -> None:
    s3.put("org-1/welcome.wav", WAV, "audio/wav")
    head = s3.client.head_object(Bucket=s3.bucket, Key="prompts/org-1/welcome.wav")
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ContentType"] == "audio/wav"
    assert s3.get("org-1/welcome.wav") == WAV
    # Private: an unsigned request is refused, a presigned one is served.
    plain = f"{s3.client.meta.endpoint_url}/{s3.bucket}/prompts/org-1/welcome.wav"
    acl = s3.client.get_object_acl(Bucket=s3.bucket, Key="prompts/org-1/welcome.wav")
    assert all(g["Grantee"].get("URI") is None for g in acl["Grants"]), "no public grant"
    url = s3.presigned_url("org-1/welcome.wav", expires_in=300)
    assert url and "X-Amz-Signature" in url
    assert requests.get(url, timeout=5).content == WAV
    assert requests.get(plain, timeout=5).status_code == 403


def test_it_says_when_an_s3_object_is_missing(s3: S3Storage) -> None:
    with pytest.raises(AudioNotFound):
        s3.get("nope.wav")
    assert not s3.exists("nope.wav")


def test_it_chooses_s3_only_when_a_bucket_is_configured(tmp_path: Path, s3_endpoint: str) -> None:
    local = storage_from_config({"S3_BUCKET": None, "AUDIO_DIR": str(tmp_path)})
    assert isinstance(local, LocalStorage)
    remote = storage_from_config(
        {"S3_BUCKET": "b", "S3_PREFIX": "p/", "S3_REGION": "eu-north-1", "S3_ENDPOINT_URL": s3_endpoint}
    )
    assert isinstance(remote, S3Storage)
