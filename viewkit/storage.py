"""Datasets in object storage: URLs (s3://, and gs:// and the rest of fsspec where their
package is installed) opened through fsspec, and their failures said in one line.

The endpoint and credentials come from the variables boto3, s3fs and DALI all read
(AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION, AWS_PROFILE and ~/.aws). Time-outs and retries are bounded, so a store that
stops or stalls ends in an error naming the object and the endpoint, never a hang.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def limits() -> tuple[float, float, int]:
    """(seconds to connect, seconds without a byte, tries), from VIEWKIT_STORE_CONNECT_TIMEOUT,
    VIEWKIT_STORE_READ_TIMEOUT and VIEWKIT_STORE_TRIES. choice: 10 s, 60 s and 4 tries with
    backoff (1, 2, 4 s): long enough for a loaded store, short enough that a dead one is
    named within minutes."""
    return (float(os.environ.get("VIEWKIT_STORE_CONNECT_TIMEOUT", 10)),
            float(os.environ.get("VIEWKIT_STORE_READ_TIMEOUT", 60)), int(os.environ.get("VIEWKIT_STORE_TRIES", 4)))


def is_url(value) -> bool:
    return isinstance(value, str) and bool(_URL.match(value))


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def endpoint(url: str) -> str:
    """Where requests for `url` go, for messages."""
    if scheme(url) == "s3":
        return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"
    return f"{scheme(url)}://"


def filesystem(url: str):
    """The fsspec filesystem that serves `url`, with bounded time-outs and retries."""
    import fsspec

    kind = scheme(url)
    try:
        fsspec.get_filesystem_class(kind)
    except ValueError:
        raise ValueError(f"{url}: unknown scheme {kind}://; viewkit reads local folders and object storage "
                         f"through fsspec (s3://, gs://, ...)") from None
    except ImportError as e:
        raise ValueError(f"{url}: {kind}:// needs a package that is not installed ({e})") from None
    if kind != "s3":
        return fsspec.filesystem(kind)
    connect, read, _ = limits()
    # AWS_ENDPOINT_URL is read by botocore itself, as DALI reads it; passed on explicitly all
    # the same: older botocore releases ignore it. The tries are ours (`retrying`), not boto's.
    client = {"endpoint_url": os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")}
    fs = fsspec.filesystem("s3", client_kwargs={k: v for k, v in client.items() if v},
                           config_kwargs={"connect_timeout": connect, "read_timeout": read,
                                          "retries": {"max_attempts": 1, "mode": "standard"}},
                           skip_instance_cache=True)
    fs.retries = 1  # s3fs's own 5 tries with backoff per call would multiply ours
    return fs


def download(fs, url: str, path) -> tuple[int, str]:
    """One object into the file `path`: (its bytes, its sha256). From S3 in one GET, hashed
    and written as it arrives in the calling thread (one pass over the bytes, threads in
    parallel: hashing the file again after `get_file` cost a fifth of a cold fetch's rate);
    other stores through fsspec's get_file, then hashed."""
    digest, size = hashlib.sha256(), 0
    if type(fs).__name__ == "S3FileSystem" and hasattr(fs, "_call_s3"):
        from fsspec.asyn import sync

        bucket, key, _ = fs.split_path(url)
        body = sync(fs.loop, fs._call_s3, "get_object", Bucket=bucket, Key=key)["Body"]
        try:
            with open(path, "wb") as file:
                while chunk := sync(fs.loop, body.read, 1 << 20):
                    digest.update(chunk)
                    file.write(chunk)
                    size += len(chunk)
        finally:
            body.close()
        return size, digest.hexdigest()
    from viewkit.shards.format import sha256_file

    fs.get_file(url, str(path))
    return os.path.getsize(path), sha256_file(path)


def join(url: str, name: str) -> str:
    return url.rstrip("/") + "/" + name


def retrying(action, url: str, what: str):
    """`action()`, tried again with backoff where the store failed (not where it answered
    no); the last failure is raised in one line naming `url` and the endpoint."""
    tries = limits()[2]
    for attempt in range(tries):
        try:
            return action()
        except Exception as error:  # noqa: BLE001  (every failure is said below, in one line)
            final = explain(error, url, what)
            if not _transient(error) or attempt == tries - 1:
                raise final from error
            time.sleep(2 ** attempt)


def _transient(error: Exception) -> bool:
    """A store that did not answer, or answered with a server error: worth another try."""
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, ValueError,
                          TypeError, AttributeError, KeyError)):  # an answer, or a fault of ours: no try helps
        return False
    if isinstance(error, OSError) and error.errno == 28:  # the local disk is full: no try will help
        return False
    if type(error).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return False
    code = _code(error)
    return code is None or code in ("InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "500",
                                    "502", "503", "504")


def _code(error: BaseException) -> str | None:
    while error is not None:
        response = getattr(error, "response", None)
        if isinstance(response, dict) and "Error" in response:
            return str(response["Error"].get("Code"))
        error = error.__cause__ or error.__context__
    return None


def explain(error: Exception, url: str, what: str) -> Exception:
    """One line that says which of: no such bucket, no such object, credentials refused,
    no answer from the endpoint; DALI's and botocore's own messages do not tell them apart."""
    where, tries = endpoint(url), limits()[2]
    bucket = url.split("://", 1)[1].split("/", 1)[0]
    code = _code(error) or ""
    text = f"{type(error).__name__}: {error}"
    if getattr(error, "corrupt", False):
        return ValueError(f"{url}: the {what} fetched from {where} has {error}, {tries} times; the object is not "
                          f"the one the manifest names: shard again, or restore it in the store")
    if code == "NoSuchBucket" or "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return FileNotFoundError(f"{url}: the bucket {bucket!r} does not exist at {where} (reading {what})")
    if "NoCredentialsError" in text or "Unable to locate credentials" in text:
        return PermissionError(f"{url}: no credentials for {where} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                               f"or AWS_PROFILE) reading {what}")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken") \
            or isinstance(error, PermissionError):
        return PermissionError(f"{url}: {where} refused the credentials ({code or type(error).__name__}; "
                               f"AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) reading {what}")
    if isinstance(error, FileNotFoundError) or code in ("NoSuchKey", "404"):
        return FileNotFoundError(f"{url}: no such object at {where} ({what})")
    if isinstance(error, OSError) and getattr(error, "errno", None) == 28:
        return OSError(28, f"{url}: the cache disk is full while fetching {what}; free space or lower "
                           f"cache_limit")
    return ConnectionError(f"{url}: {where} did not deliver {what} after {tries} tries ({_short(text)})")


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
