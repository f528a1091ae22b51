"""A real S3 API for tests: a moto server on 127.0.0.1 with a free port.

Used by the store and multi-node tests (issue 12). ``moto_s3()`` starts the server in
this process (other processes, Ray workers included, reach it over HTTP), creates a
bucket and sets the standard AWS variables (``AWS_ENDPOINT_URL`` first) so that boto3,
pyarrow.fs and fsspec all find it; the variables are restored on exit.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str
    env: dict[str, str]

    def uri(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (boto3, so it checks what the store wrote)."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _fix_complete_multipart() -> None:
    """moto 5.2 answers CompleteMultipartUpload with a ``<CompleteMultipartUploadResponse>``
    root; S3 (and MinIO) send ``<CompleteMultipartUploadResult>``, and pyarrow's S3 client
    treats any other root as an error embedded in the 200 OK (it then retries for ~25 s
    and fails with "AWS Error INTERNAL_FAILURE during CompleteMultipartUpload"). Every
    object over pyarrow's 5 MiB part size is a multipart upload. The body is renamed to
    what S3 sends; idempotent."""
    from moto.s3.responses import S3Response

    original = S3Response.serialized
    if getattr(original, "s3_root_fixed", False):
        return

    def serialized(self: S3Response, action_result: Any) -> Any:
        status, headers, body = original(self, action_result)
        if self.data.get("Action") == "CompleteMultipartUpload" and isinstance(body, str):
            body = body.replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult")
        return status, headers, body

    serialized.s3_root_fixed = True  # type: ignore[attr-defined]
    S3Response.serialized = serialized  # type: ignore[method-assign]


@contextmanager
def moto_s3(*, bucket: str | None = None) -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    _fix_complete_multipart()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        name = bucket or f"airflowdsl-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
        yield S3Server(endpoint=endpoint, bucket=name, env=env)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
