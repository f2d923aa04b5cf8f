"""Run artifacts in Azure Blob storage, as an Azure Databricks workspace keeps them.

On Azure, ``credentials-for-write``/``-read`` answer ``AZURE_SAS_URI`` credentials: a blob URL
with a service SAS in its query string. MLflow's client uploads with Put Block + Put Block List
(``mlflow/azure/client.py``), Stacktag's with one Put Blob; both download with a GET. Behind the
URLs here is **azurite** (npm, Microsoft's own storage emulator): it checks the SAS signature,
permissions and expiry itself, so a URL the stand-in signs wrongly, a write through a read URL
or an expired URL is refused by Microsoft's code, not by ours.

Started with ``standin.py --run-artifacts azure``; Unity Catalog model versions stay on the S3
front (MLflow's client reaches UC storage on Azure through ADLS Gen2's ``dfs`` endpoint, which
azurite does not implement).

Not modelled: the ``expire_credentials_after`` fault (azurite cannot count a URL's uses; the
fault is refused in this mode), and the encryption-scope headers a workspace may add.
"""

from __future__ import annotations

import datetime
import logging
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import quote

log = logging.getLogger("standin.azure")
HERE = Path(__file__).resolve().parent

# azurite's one account and its key: Microsoft's published development credentials, the same
# in every azurite (https://learn.microsoft.com/azure/storage/common/storage-use-azurite).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "stacktag-standin"
# How long a SAS URL is valid; Databricks' are minutes, not hours.
SAS_EXPIRES = 900
_LISTENING = re.compile(r"successfully listens on (http://127\.0\.0\.1:\d+)")


def azurite_bin() -> Path:
    return HERE / "node_modules" / ".bin" / "azurite-blob"


def start_azurite(state_dir: Path, preexec: Callable[[], None], timeout: float) -> tuple[subprocess.Popen, str]:
    """azurite's blob service on a free loopback port, in memory. Returns (child, endpoint).
    Its output goes to DIR/azurite.log once it has said where it listens."""
    program = azurite_bin()
    if not program.exists():
        raise SystemExit(
            f"standin: azurite is not installed ({program} is missing): run scripts/setup.sh, "
            "which runs `npm ci` in tools/databricks-standin"
        )
    args = [
        str(program), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
        # Path-style URLs (http://host/account/container/blob), as azurite's own docs use on
        # loopback; the API-version check would refuse newer SDKs than this azurite knows.
        "--disableProductStyleUrl", "--skipApiVersionCheck", "--disableTelemetry",
    ]  # fmt: skip
    log.info("starting azurite: %s", " ".join(args))
    child = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=state_dir,
        preexec_fn=preexec,
    )  # fmt: skip
    logfile = open(state_dir / "azurite.log", "ab")  # noqa: SIM115 - the pump thread keeps it
    found: dict[str, str] = {}
    ready = threading.Event()

    def pump():
        # Reads every line (a full pipe would block azurite), keeps them in the log, and
        # notes the endpoint from the line that announces it.
        for line in iter(child.stdout.readline, b""):
            logfile.write(line)
            logfile.flush()
            m = _LISTENING.search(line.decode(errors="replace"))
            if m and not ready.is_set():
                found["endpoint"] = m.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=pump, name="azurite-log", daemon=True).start()
    deadline = time.time() + timeout
    while not ready.wait(0.2):
        if time.time() > deadline:
            child.kill()
            raise SystemExit(f"standin: azurite did not listen within {timeout:.0f}s (see {state_dir / 'azurite.log'})")
    if "endpoint" not in found:
        child.wait(timeout=5)
        raise SystemExit(f"standin: azurite exited with {child.returncode} (see {state_dir / 'azurite.log'})")
    return child, found["endpoint"]


class AzureRunStorage:
    """Run and logged-model artifacts in one azurite container, keyed like the S3 bucket's
    (``tracking/<exp>/<run>/artifacts/…``). The interface ``standin_api`` uses for either cloud:
    ``signed_url``, ``list_dir``, ``head``, ``CREDENTIAL_TYPE``, ``write_headers``."""

    CREDENTIAL_TYPE = "AZURE_SAS_URI"

    def __init__(self, endpoint: str, faults: Callable[[], dict]):
        from azure.storage.blob import BlobServiceClient

        self.account_url = f"{endpoint}/{ACCOUNT}"
        self._faults = faults
        service = BlobServiceClient(
            account_url=self.account_url, credential={"account_name": ACCOUNT, "account_key": ACCOUNT_KEY}
        )
        self._container = service.get_container_client(CONTAINER)
        self._container.create_container()

    def write_headers(self) -> dict:
        return {}

    def signed_url(self, method: str, key: str, headers: dict, label: str) -> str:
        """A service SAS URL for one blob: read for GET, create and write for PUT."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        now = datetime.datetime.now(datetime.timezone.utc)
        if self._faults().get("always_expired"):
            expiry = now - datetime.timedelta(minutes=5)
        else:
            expiry = now + datetime.timedelta(seconds=SAS_EXPIRES)
        permission = BlobSasPermissions(read=True) if method == "GET" else BlobSasPermissions(create=True, write=True)
        sas = generate_blob_sas(
            ACCOUNT, CONTAINER, key, account_key=ACCOUNT_KEY, permission=permission, expiry=expiry,
            start=now - datetime.timedelta(minutes=5),
        )  # fmt: skip
        log.debug("SAS %s for %s (%s)", method, key, label)
        return f"{self.account_url}/{CONTAINER}/{quote(key, safe='/~')}?{sas}"

    def list_dir(self, prefix: str) -> tuple[list[tuple[str, int]], list[str]]:
        """(files as (key, size), sub-prefixes ending in '/') directly under ``prefix``."""
        from azure.storage.blob import BlobPrefix

        files, dirs = [], []
        for item in self._container.walk_blobs(name_starts_with=prefix, delimiter="/"):
            if isinstance(item, BlobPrefix):
                dirs.append(item.name)
            else:
                files.append((item.name, item.size))
        return files, dirs

    def head(self, key: str) -> int | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._container.get_blob_client(key).get_blob_properties().size
        except ResourceNotFoundError:
            return None
