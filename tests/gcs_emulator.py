"""``python tests/gcs_emulator.py PORT BUCKET``: gcp-storage-emulator (in memory, on 127.0.0.1:PORT, BUCKET
created) with two behaviours of the real GCS JSON API that it lacks and that jaxgen's remote workdirs rely on:

- an object download carries ``x-goog-generation`` / ``x-goog-metageneration`` headers, as GCS's do
  (https://cloud.google.com/storage/docs/xml-api/reference-headers#xgooggeneration). TensorStore's ``gcs``
  driver reads an object's generation from them; without them its OCDBT manifest reads (Orbax's array
  checkpoints) fail now and then with "Malformed StorageGeneration", depending on its cache.
- an upload with ``ifGenerationMatch`` (``0``: only if absent; ``N``: only over generation ``N``) is refused with
  412 Precondition Failed otherwise (https://cloud.google.com/storage/docs/request-preconditions): the workdir
  lock's create-only upload and TensorStore's conditional manifest writes.

The emulator serves one request at a time (``http.server.HTTPServer``), so a check and the write after it cannot
interleave with another request. Used by ``tests/test_remote_workdir.py``.
"""

from __future__ import annotations

import sys
import time
from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects


def _object(storage, bucket: str, name: str | None):
    if not name:
        return None
    try:
        return storage.get_file_obj(bucket, name)
    except NotFound:
        return None


def _generation_headers(request, response, storage) -> None:
    obj = _object(storage, request.params["bucket_name"], request.params["object_id"])
    if obj is not None:
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj["metageneration"])


def download(request, response, storage, *args, **kwargs):
    _generation_headers(request, response, storage)
    return objects.download(request, response, storage, *args, **kwargs)


def get(request, response, storage, *args, **kwargs):
    """``GET .../o/NAME``: the object's metadata, or with ``alt=media`` its content (TensorStore's reads)."""
    if request.query.get("alt") == ["media"]:
        _generation_headers(request, response, storage)
    return objects.get(request, response, storage, *args, **kwargs)


def _upload_name(request) -> str | None:
    if "name" in request.query:
        return request.query["name"][0]
    data = request.data
    if isinstance(data, dict):
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else data
        return meta.get("name")
    return None


def insert(request, response, storage, *args, **kwargs):
    match = request.query.get("ifGenerationMatch")
    if match and "upload_id" not in request.query:
        obj = _object(storage, request.params["bucket_name"], _upload_name(request))
        current = "0" if obj is None else str(obj["generation"])
        if current != match[0]:
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json({"error": {"code": 412, "message": "At least one of the pre-conditions you specified "
                                     "did not hold.", "errors": [{"reason": "conditionNotMet"}]}})
            return None
    return objects.insert(request, response, storage, *args, **kwargs)


def main(port: int, bucket: str) -> None:
    for _, handlers in server.HANDLERS:  # the router reads this table on every request
        for method, handler in list(handlers.items()):
            if handler is objects.download:
                handlers[method] = download
            elif handler is objects.get:
                handlers[method] = get
            elif handler is objects.insert:
                handlers[method] = insert
    emulator = server.create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    emulator.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
