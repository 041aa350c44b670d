"""Shared fixtures: tiny randomly initialised sentence-transformers models and small corpora.

The tiny models are BERTs with two layers of width 32 made from a config, with a WordPiece
vocabulary of letters and common words, so every word tokenizes without [UNK]. They are
saved in sentence-transformers format, as a user's own model directory would be.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # no telemetry calls from the Haystack tests
# Tests of other concerns encode with exact PyTorch fp32 and need no cached exports; the backends are
# tested in test_encoding.py, and the engine default (--backend auto, with this unset) in test_auto_backend.py.
os.environ.setdefault("RETRIEVER_BACKEND", "torch")
# Indexes served or written by a separate process (``retriever serve``, killed writers) are encoded through the
# tiny model's ONNX export when the extra is installed: from its light path (retriever/encoding/light.py) such a
# process starts without importing sentence-transformers and torch (~2 s of CPU instead of ~10 on 2 cores).
PROCESS_BACKEND = "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torch"

# How ``make test`` spreads the suite over its two xdist workers (--dist loadfile): a unit of work is a test file,
# so that a file's shared fixtures are built once, except that every test encoding on a local Ray is one unit,
# "ray", so that one worker starts Ray once for all of them (``local_ray``: a start costs ~15 s of CPU, its
# actors excepted). Units go out longest first, the many short files filling the gaps, so that both workers finish
# close together. A new file runs after these; one that takes over ~20 s belongs in this list, by its time on two
# idle cores (pytest --durations=0).
RAY_TESTS = ("tests/test_ray.py::", "tests/test_matrix.py::test_on_ray[")
LONGEST_FIRST = (  # AMD EPYC, 2 cores, AVX2 only, `make test` of 2026-12-07 (seconds per unit, both workers busy:
    # test_matrix.py 39, test_serve.py 35, test_encoding_minilm.py 34, ray 34, test_encoding.py 33, test_storage.py 23,
    # test_api_schema.py 22, test_milvus.py 19, test_index.py 18, test_training.py 17, ...; each worker's collection 19)
    "test_matrix.py", "test_serve.py", "test_encoding_minilm.py", "ray", "test_encoding.py", "test_storage.py",
    "test_api_schema.py", "test_milvus.py", "test_index.py", "test_training.py", "test_langchain_standard.py",
    "test_vectors.py", "test_scale_smoke.py", "test_page.py", "test_auto_backend.py",
)


def work_unit(nodeid: str) -> str:
    """The unit of work a test belongs to: "ray", or its file's name."""
    return "ray" if nodeid.startswith(RAY_TESTS) else nodeid.split("::")[0].rsplit("/", 1)[-1]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest units first (``LONGEST_FIRST``); the order within a unit and of the rest is kept."""
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(work_unit(item.nodeid), len(rank)))  # a stable sort


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without pytest-xdist, the suite runs in one process
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """--dist loadfile, with the Ray tests as one unit and the units in the order of the collection."""
    if config.getoption("dist", None) != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class RayAsOneUnit(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "ray" if nodeid.startswith(RAY_TESTS) else super()._split_scope(nodeid)

    config.option.loadscopereorder = False  # xdist would order the units by their number of tests
    return RayAsOneUnit(config, log)


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs, started at the first test that needs it and shared by all (see ``RAY_TESTS``)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


WORDS = """the a an of to in and or is are was were be for on with by at from as that this it
not no can you your we our all any cat cats dog dogs fish bird car cars train trains music song
coffee tea water sleep memory brain password login email invoice payment card refund backup
restore garden tomato sun plant delivery parcel order return item privacy data language""".split()


def make_tiny_model(directory: Path, seed: int = 0, max_seq_length: int = 64) -> Path:
    """Save a tiny random BERT as a sentence-transformers model in ``directory``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    hf_dir = directory / "hf"
    hf_dir.mkdir(exist_ok=True)
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars] + WORDS
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=max_seq_length + 2,
    )
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=max_seq_length)
    model = SentenceTransformer(modules=[transformer, Pooling(32, pooling_mode="mean"), Normalize()], device="cpu")
    out = directory / "model"
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def shared_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export cache for the whole run, shared by the xdist workers: each tiny-model export (an int8
    calibration takes seconds) is made once, as in real use, instead of once per test file. Two workers making
    the same export at once both end up with one complete copy (``cached_export`` renames it into place)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # under xdist: .../pytest-N/popen-gwK
    folder = root / "shared-exports"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def _exports_env(shared_exports: Path) -> Iterator[None]:
    """Tests export into the run's cache, never into the user's ``~/.cache/retriever/exports``; a test of the
    cache itself (first export, reuse) sets ``RETRIEVER_EXPORTS`` to its own folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETRIEVER_EXPORTS", str(shared_exports))
        yield


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("tiny-model")))


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_model(tmp_path_factory.mktemp("other-tiny-model"), seed=1))


def write_corpus(root: Path) -> Path:
    """Write a small folder with one file of each text format and a JSONL of records into ``root``."""
    (root / "sub").mkdir(parents=True)
    (root / "cats.txt").write_text("Cats sleep most of the day and hunt at night.")
    (root / "dogs.md").write_text("# Dogs\n\nDogs love a walk in the garden and a game with a ball.")
    (root / "sub" / "trains.rst").write_text("Trains\n======\n\nThe train to the coast leaves at nine.")
    (root / "sub" / "coffee.html").write_text(
        "<html><head><title>Coffee</title><script>var x = 1;</script></head>"
        "<body><p>Grind the coffee just before you brew it.</p></body></html>"
    )
    (root / "faq.jsonl").write_text(
        '{"_id": "q1", "title": "Refunds", "text": "A refund is paid to your card.", "year": 2021}\n'
        '{"_id": "q2", "title": "Delivery", "text": "Your parcel arrives in two days.", "year": 2019}\n'
    )
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small folder with one file of each text format and a JSONL of records."""
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture
def built(corpus: Path, index_dir: Path, tiny_model: str) -> Any:
    """An index of ``corpus`` built with the tiny model (a ``Retriever``) in ``index_dir``."""
    from retriever import Retriever

    return Retriever.build(corpus, index_dir=index_dir, model=tiny_model)


SMALL_RECORDS = [
    {"_id": "cats", "title": "Cats", "text": "cats sleep in the sun all day", "year": 2021},
    {"_id": "dogs", "title": "Dogs", "text": "dogs love a walk in the garden", "year": 2019},
    {"_id": "guides/trains.md", "title": "Trains", "text": "the train to the coast leaves at nine", "year": 2020},
    {"_id": "coffee", "title": "Coffee", "text": "grind the coffee before you brew the tea", "year": 2022},
]


@pytest.fixture
def records_index(tmp_path: Path, tiny_model: str) -> Path:
    """A tiny index of four records (one id with a slash) built with the tiny model, in ``tmp_path/idx``."""
    from retriever import Retriever

    Retriever.build(SMALL_RECORDS, index_dir=tmp_path / "idx", model=tiny_model).close()
    return tmp_path / "idx"


@pytest.fixture
def start_server():  # noqa: ANN201 - returns the starter function
    """Start an ASGI app with uvicorn on a free 127.0.0.1 port in a thread; stopped after the test.

    ``start(app)`` returns the base URL once the server accepts connections.
    """
    import threading
    import time

    import uvicorn

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:  # noqa: ANN001
        from retriever.serve.errors import JsonErrorH11Protocol  # as 'retriever serve' runs it
        from retriever.serve.sockets import listening_socket  # Nagle off, as 'retriever serve' has it

        sock = listening_socket("127.0.0.1", 0)
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", http=JsonErrorH11Protocol))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 120  # bounds a hang only, generous for a loaded machine
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model: str) -> Any:
    """The tiny model loaded once, for tests that make many small indexes (``encoder=`` of build and create)."""
    from retriever.encoding.encoder import Encoder

    return Encoder(tiny_model)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def run_serve_command(index_dir: Path, *options: str, api_key: str | None = None) -> Iterator[str]:
    """Run the real ``retriever serve`` over ``index_dir`` on a free 127.0.0.1 port; yields its base URL.

    On leaving, the server is interrupted (Ctrl-C) and must have stopped cleanly: exit 0, no traceback.
    """
    port = free_port()
    env = {**os.environ, "RETRIEVER_API_KEY": api_key or ""}
    command = [str(Path(sys.executable).parent / "retriever"), "serve", "--index", str(index_dir),
               "--port", str(port), *options]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # bounds a hang only: importing torch can take minutes on a loaded machine
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output


@pytest.fixture(scope="session")
def serve_command():  # noqa: ANN201 - returns the context manager
    """``with serve_command(index_dir, *options, api_key=KEY) as url``: the real ``retriever serve`` (see
    ``run_serve_command``)."""
    return run_serve_command
