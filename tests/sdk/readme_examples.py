"""Runs every curl example of the README against a real fugue server.

The examples are read from the README's ```sh blocks, so the manual cannot drift
from what works. Placeholders get fresh resources for each command: $ID a new
dataset, $JOB a new tiny training job, $MODEL a newly trained model, $C a new
composition, $EVAL a new evaluation of the bundled default, so that deleting one
does not break the next example. Each command
runs with --fail-with-body (an HTTP error fails it) and a time limit.

Usage: readme_examples.py BASE_URL SHARED_DATA_DIR README
"""

import io
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile

base, shared, readme = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
mini = sorted((shared / "jsb-mini").rglob("*.mid"))


def call(method, path, body=None, form=None):
    data, headers = None, {}
    if body is not None:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    if form is not None:
        boundary = uuid.uuid4().hex
        parts = []
        for name, (filename, content) in form.items():
            disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + content + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read() or b"null")


def dataset():
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in mini:
            zipped.write(path, path.name)
    return call("POST", "/v1/datasets", form={"name": (None, b"readme"), "files": ("mini.zip", archive.getvalue())})["id"]


TINY = {"epochs": 1, "hidden_size": 8, "layers": 1, "embedding_size": 4, "window": 8, "batch_size": 8}


def job():
    return call("POST", "/v1/training-jobs", {"dataset_id": dataset(), "preset": "fugue", "hyperparameters": TINY})["id"]


def model():
    job_id = job()
    deadline = time.time() + 120
    while (state := call("GET", f"/v1/training-jobs/{job_id}"))["state"] in ("queued", "running"):
        if time.time() > deadline:
            raise SystemExit("readme: a tiny training job did not finish")
        time.sleep(0.2)
    if state["state"] != "succeeded":
        raise SystemExit(f"readme: a tiny training job {state['state']}: {state['error']}")
    return state["model_id"]


def composition():
    return call("POST", "/v1/generate", {"length": {"notes": 8}})["composition_id"]


def evaluation():
    # Long enough (about ten seconds) to be cancelled before it ends.
    return call("POST", "/v1/models/default/evaluations", {"pieces": 8, "notes": 400})["id"]


FRESH = {"$ID": dataset, "$JOB": job, "$MODEL": model, "$C": composition, "$EVAL": evaluation}

commands = []
for block in re.findall(r"```sh\n(.*?)```", readme.read_text(), re.S):
    pending = None
    for line in block.replace("\\\n", " ").splitlines():
        if pending is not None:
            pending += "\n" + line
        elif line.strip().startswith("curl "):
            pending = line.strip()
        # A command goes on while a quote is open (a JSON body over several lines).
        if pending is not None and pending.count("'") % 2 == 0:
            commands.append(pending)
            pending = None
if len(commands) < 10:
    raise SystemExit(f"readme: only {len(commands)} curl examples found")

work = pathlib.Path(tempfile.mkdtemp(prefix="fugue-readme-"))
with zipfile.ZipFile(work / "chorales.zip", "w") as zipped:
    for path in mini[:4]:
        zipped.write(path, path.name)
shutil.copy(mini[0], work / "extra.mid")

failures = []
for command in commands:
    concrete = command.replace("localhost:8080", base.removeprefix("http://"))
    for placeholder, make in FRESH.items():
        if placeholder in concrete:
            concrete = concrete.replace(placeholder, make())
    concrete = concrete.replace("curl ", "curl --fail-with-body --max-time 120 ", 1)
    run = subprocess.run(["bash", "-c", concrete], cwd=work, capture_output=True, text=True)
    if run.returncode != 0:
        failures.append(f"{command}\n  exit {run.returncode}: {run.stdout[-300:]} {run.stderr[-300:]}")
shutil.rmtree(work)
if failures:
    raise SystemExit("readme: FAILED:\n" + "\n".join(failures))
print(f"readme: ok: all {len(commands)} curl examples of the README answered without an error")
