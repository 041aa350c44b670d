"""The screenshot of the search page in the docs (docs/assets/search-page.png), taken in Debian's chromium.

Indexes the sample corpus with the default model into a temporary folder, serves it as ``retriever ui`` does,
runs one search (and grades its first hit, when the server has judgments) and takes the picture, so that the
docs show the page as it is::

    python -m benchmarks.page_screenshot            # writes docs/assets/search-page.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from retriever import Retriever
from retriever.serve.ui import page_server

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "examples" / "sample-corpus")
    parser.add_argument("--query", default="how long until my parcel arrives")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "assets" / "search-page.png")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("RETRIEVER_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium (or set RETRIEVER_CHROMIUM)")
    with tempfile.TemporaryDirectory() as folder:
        index = Path(folder) / "sample-corpus"
        Retriever.build(args.corpus, index_dir=index, backend="torch").close()
        server, sock, url = page_server(index)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            with sync_playwright() as playwright:
                no_sandbox = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
                browser = playwright.chromium.launch(executable_path=chromium, args=no_sandbox)
                page = browser.new_page(viewport={"width": 1000, "height": 860})
                page.goto(url)
                page.wait_for_selector("body[data-ready=true]")
                page.fill("#query", args.query)
                page.fill("#k", "4")
                page.click("#search-form button[type=submit]")
                page.wait_for_selector("li.hit")
                if page.locator("li.hit .grade").count():  # a server with judgments: grade the first hit
                    page.locator("li.hit .grade[data-grade='2']").first.click()
                    page.wait_for_selector("#judging:has-text('1 judged')")
                    page.wait_for_selector("#judging:not(:has-text('Computing'))", timeout=300_000)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
