"""The model card: ``training.json`` (for scripts) and a README.md section (for people).

It records what is needed to trust or reproduce a fine-tuned model: base model, data, loss and
its formula, hyperparameters, dev metrics before and after, whether the starting model was kept,
training time and peak memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CARD_JSON = "training.json"
README = "README.md"


def write_card(directory: Path, card: dict[str, Any]) -> None:
    (directory / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
    (directory / README).write_text(render_readme(card))


def render_readme(card: dict[str, Any]) -> str:
    hp = card["hyperparameters"]
    before, after = card.get("dev_before") or {}, card.get("dev_after") or {}
    metric_rows = "\n".join(
        f"| {m} | {before.get(m, float('nan')):.4f} | {after.get(m, float('nan')):.4f} |"
        for m in sorted(after or before)
    )
    loss = card["loss"]
    lines = [
        f"# {Path(card['output']).name}",
        "",
        _origin_line(card),
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        f"model = SentenceTransformer({str(card['output'])!r})",
        "queries = model.encode_query([\"...\"])",
        "documents = model.encode_document([\"...\"])",
        "```",
        "",
        "Index a folder with it: `retriever index PATH --model " + str(card["output"]) + "`.",
        "",
        "## Training",
        "",
        f"- architecture: {card['architecture']} (metric head: {card['metric_head']})",
        f"- loss: {loss['class']}: `{loss['formula']}` {json.dumps(loss['parameters'])}",
        f"- data: {card['data']['source']} ({card['data']['format']}): {card['data']['train_queries']} training "
        f"queries, {card['examples']} examples; dev: {card['data']['dev_source']}",
        f"- negatives: {hp['negatives']} ({hp['negatives_per_query']} per query, ranks "
        f"{hp['negatives_skip']}:{hp['negatives_depth']})",
        f"- epochs {hp['epochs']}, batch size {hp['batch_size']}, lr {hp['lr']}, weight decay {hp['weight_decay']}, "
        f"warm-up {hp['warmup_ratio']:.0%}, max sequence length {hp['max_seq_length']}, seed {hp['seed']}",
        f"- steps: {card['steps']}; training time {card['seconds'] / 60:.1f} min; peak memory "
        f"{card['peak_memory_mb']:.0f} MB",
        "",
    ]
    if metric_rows:
        lines += ["| dev metric | before | after |", "|---|---|---|", metric_rows, ""]
    if card.get("kept_starting_model"):
        lines += ["**The dev score did not improve, so this is the starting model, unchanged.**", ""]
    lines += _adaptation_lines(card.get("adaptation"))
    for warning in card.get("warnings", []):
        lines.append(f"> warning: {warning}")
    return "\n".join(lines).rstrip() + "\n"


def _origin_line(card: dict[str, Any]) -> str:
    base = card["base_model"]["name"]
    if card.get("command") == "adapt":
        return (f"A sentence-transformers model adapted from `{base}` to the documents of "
                f"`{card['data']['source']}` with `retriever adapt`: no labels, pairs cut from the documents.")
    return f"A sentence-transformers model fine-tuned from `{base}` with `retriever train`."


def _adaptation_lines(adaptation: dict[str, Any] | None) -> list[str]:
    if not adaptation:
        return []
    pairs = ", ".join(f"{name} {count}" for name, count in adaptation["pairs_by_source"].items())
    lines = ["## Adaptation", "", f"- verdict: {adaptation['verdict']}",
             f"- training pairs by source: {pairs}",
             f"- held out: {adaptation['held_out_pairs']} documents with one pseudo-query each (the dev metric above)"]
    fusion = adaptation.get("fusion")
    if fusion and adaptation["kept_adapted_model"]:
        lines.append(f"- hybrid search weight: alpha {fusion['alpha']:.2f} (stored in retriever_search.json; "
                     "0.5 shifted by how the best weight on held-out pseudo-pairs moved from the base model)")
    return lines + [""]
