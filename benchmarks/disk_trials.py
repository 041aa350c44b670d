"""The on-disk trials of the reliability suite (issue 9): kill -9, concurrent writers, readers during commits.

Run by ``benchmarks/reliability.py`` (``--trials N`` sets how many of each; ``--no-trials`` skips them), or alone::

    python benchmarks/disk_trials.py --trials 20

- **kill -9**: a process updates the index (index a folder, add records, remove records, in turns) and is killed
  with SIGKILL after a random delay; half of the trials kill it at a chosen point instead (after a segment is
  published, after the manifest is written but before ``CURRENT`` is switched, while a deletion file is written),
  the window a random delay rarely hits. After each kill the index must load, agree with itself (documents and
  passages counted by the manifest equal what a search can reach), pass ``check``, and take the next write.
- **concurrent index runs**: two ``retriever index`` processes of different folders into one index, started
  together. Both updates must be applied (or one must fail with one line), and the index must be whole.
- **readers during commits**: a process opens the index and searches in a loop while another commits updates;
  any error it sees is a false "corrupt" report.
- **user files**: every trial's index lives in a folder that also holds a user's file and a user's ``gen-*``
  folder; none may be deleted.

Counts go to the report: corrupt indexes, lost user files, false errors, tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

WORDS = ("cat dog fish bird car train music song coffee tea water sleep memory brain password login email invoice "
         "payment card refund backup restore garden tomato sun plant delivery parcel order").split()

WRITER = textwrap.dedent("""
    import json, random, sys
    from retriever import Retriever
    index, corpus, model, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    kill_at = sys.argv[5] if len(sys.argv) > 5 else ""
    if kill_at:
        import os, signal
        module, _, name = kill_at.rpartition(".")
        owner = None
        if ":" in module:
            module, owner = module.split(":")
        import importlib
        target = importlib.import_module(module)
        holder = getattr(target, owner) if owner else target
        original = getattr(holder, name)
        def die(*args, **kwargs):
            result = original(*args, **kwargs) if name != "write_atomically" else None
            os.kill(os.getpid(), signal.SIGKILL)
            return result
        setattr(holder, name, die)
    rng = random.Random(seed)
    words = %r
    r = Retriever.build(corpus, index_dir=index, model=model)
    for step in range(1000):
        kind = step %% 3
        if kind == 0:
            r.add([{"_id": f"w{seed}-{step}-{i}", "text": " ".join(rng.choice(words) for _ in range(12))}
                   for i in range(rng.randint(1, 20))])
        elif kind == 1:
            live = [h.doc_id for h in r.search("cat dog coffee tea", k=30, mode="lexical")]
            r.remove(rng.sample(live, min(len(live), rng.randint(1, 5))))
        else:
            r = Retriever.build(corpus, index_dir=index, model=model)
    """) % (WORDS,)

READER = textwrap.dedent("""
    import sys, time, traceback
    from retriever import Retriever
    from retriever.errors import RetrieverError
    from pathlib import Path
    errors, tracebacks, searches = [], 0, 0
    stop = Path(sys.argv[2])  # the writer creates it when its commits are done
    while not stop.exists():
        try:
            with Retriever.load(sys.argv[1]) as r:
                r.search("coffee tea", k=5, mode="lexical")
                searches += 1
        except RetrieverError as exc:
            errors.append(str(exc))
        except Exception:
            tracebacks += 1
            errors.append(traceback.format_exc().splitlines()[-1])
    print(searches, len(errors), tracebacks, errors[:3], flush=True)
    """)

KILL_POINTS = (
    "retriever.index.layout:IndexLayout.publish",  # a segment published, its generation not yet written
    "retriever.index.layout.write_atomically",  # the manifest written, CURRENT not yet switched
    "retriever.index.writer.write_deletes",  # a deletion file written, nothing committed
    "retriever.index.files.write_json_atomically",  # the manifest just written
)


def make_corpus(folder: Path, name: str, documents: int, seed: int) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    records = [{"_id": f"{name}{i}", "title": rng.choice(WORDS), "text": " ".join(rng.choice(WORDS) for _ in range(14))}
               for i in range(documents)]
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / f"{name}-notes.md").write_text(f"# {name}\n\n" + " ".join(rng.choice(WORDS) for _ in range(40)))
    return folder


def plant_user_files(home: Path) -> list[Path]:
    """A user's files next to the index, with names an index uses: none may ever be deleted."""
    home.mkdir(parents=True, exist_ok=True)
    files = [home / "my-notes.txt", home / "gen-000001" / "keep.txt", home / ".staging-draft" / "keep.txt"]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the user's own file")
    return files


def inspect(index: Path) -> str | None:
    """What is wrong with an index after a trial, or None: it loads, agrees with itself, checks, and takes a write."""
    from retriever import Retriever
    from retriever.errors import RetrieverError

    try:
        with Retriever.load(index) as r:
            counts = r.manifest.counts
            hits = r.search("cat dog coffee tea water", k=10_000, mode="lexical", passages=True)
            if len({h.passage_id for h in hits}) > counts["passages"]:
                return f"search reaches {len(hits)} passages, the manifest counts {counts['passages']}"
            if len(r) != counts["documents"]:
                return f"{len(r)} live documents, the manifest counts {counts['documents']}"
            damaged = r.check()
            if damaged:
                return f"damaged files: {damaged[:3]}"
            r.remove(["no-such-document"])  # a write (a no-op) must succeed
    except RetrieverError as exc:
        return str(exc)
    return None


def kill_trials(root: Path, model: str, trials: int, rng: random.Random) -> dict[str, Any]:
    corpus = make_corpus(root / "corpus", "k", 60, seed=1)
    outcomes = {"trials": 0, "killed": 0, "corrupt": 0, "lost_user_files": 0, "problems": []}
    for trial in range(trials):
        home = root / f"kill-{trial}"
        user_files = plant_user_files(home)
        index = home / "index"
        kill_at = KILL_POINTS[trial % len(KILL_POINTS)] if trial % 2 else ""
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(index), str(corpus), model, str(trial), kill_at],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not kill_at:
            time.sleep(rng.uniform(2.0, 8.0))  # the model loads, the first build commits, then updates run
            process.send_signal(signal.SIGKILL)
        try:
            _, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        outcomes["trials"] += 1
        outcomes["killed"] += int(process.returncode == -signal.SIGKILL)
        problem = inspect(index) if (index / "CURRENT").exists() else None
        if problem:
            outcomes["corrupt"] += 1
            outcomes["problems"].append({"trial": trial, "kill_at": kill_at or "random", "problem": problem[:300]})
        lost = [str(f) for f in user_files if not f.exists()]
        outcomes["lost_user_files"] += len(lost)
        if "Traceback" in err and process.returncode != -signal.SIGKILL:
            outcomes["problems"].append({"trial": trial, "traceback": err[-500:]})
        shutil.rmtree(home, ignore_errors=True)
    return outcomes


def concurrent_trials(root: Path, model: str, trials: int) -> dict[str, Any]:
    command = [str(Path(sys.executable).parent / "retriever"), "index"]
    outcomes = {"trials": 0, "both_applied": 0, "one_refused_in_one_line": 0, "corrupt": 0, "lost_user_files": 0,
                "problems": []}
    for trial in range(trials):
        home = root / f"concurrent-{trial}"
        user_files = plant_user_files(home)
        index = home / "index"
        folders = [make_corpus(home / name, name, 40, seed=trial * 2 + i) for i, name in enumerate("ab")]
        runs = [subprocess.Popen([*command, str(f), "--index", str(index), "--model", model, "-q"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in folders]
        results = [(run, *run.communicate(timeout=600)) for run in runs]
        outcomes["trials"] += 1
        failed = [err for run, _, err in results if run.returncode != 0]
        problem = inspect(index)
        from retriever import Retriever

        if problem is None:
            with Retriever.load(index) as r:
                if len(r) == 82 and not failed:  # 40 records and a Markdown file from each folder
                    outcomes["both_applied"] += 1
                elif len(failed) == 1 and len(failed[0].strip().splitlines()) == 1:
                    outcomes["one_refused_in_one_line"] += 1
                else:
                    problem = f"{len(r)} documents, failures: {[f[-300:] for f in failed]}"
        if problem:
            outcomes["corrupt"] += 1
            outcomes["problems"].append({"trial": trial, "problem": problem[:400]})
        outcomes["lost_user_files"] += sum(not f.exists() for f in user_files)
        shutil.rmtree(home, ignore_errors=True)
    return outcomes


def reader_trial(root: Path, model: str, commits: int) -> dict[str, Any]:
    from retriever import Retriever

    index = root / "readers" / "index"
    stop = root / "readers" / "stop"
    corpus = make_corpus(root / "readers" / "corpus", "r", 30, seed=5)
    writer = Retriever.build(corpus, index_dir=index, model=model)
    loop = subprocess.Popen([sys.executable, "-c", READER, str(index), str(stop)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # the reader's imports
    done = 0
    for step in range(commits):
        writer.add([{"_id": f"c{step}", "text": f"coffee tea number {step}"}])
        writer.remove([f"c{step - 1}"])
        done += 2
    stop.touch()
    out, err = loop.communicate(timeout=120)
    writer.close()
    fields = out.split(maxsplit=3)
    if len(fields) < 3:
        return {"commits": done, "reader_failed": err[-500:]}
    return {"commits": done, "searches": int(fields[0]), "false_errors": int(fields[1]),
            "tracebacks": int(fields[2]), "examples": fields[3] if len(fields) > 3 else ""}


def run_trials(model: str, scratch: Path, trials: int, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.perf_counter()
    report = {
        "kill9": kill_trials(scratch / "kill", model, trials, rng),
        "concurrent_index_runs": concurrent_trials(scratch / "concurrent", model, max(10, trials // 2)),
        "readers_during_commits": reader_trial(scratch, model, max(20, trials)),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--model", default=None, help="default: the test suite's tiny random BERT")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_model import tiny_model

    scratch = Path(tempfile.mkdtemp(prefix="retriever-disk-trials-"))
    try:
        model = args.model or tiny_model(scratch / "model")
        print(json.dumps(run_trials(model, scratch, args.trials), indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
