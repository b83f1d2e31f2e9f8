"""A small BEIR copy of the shipped SciFact (fast end-to-end runs of the samtone command)."""

import json
import os

from samtone_tf.data.beir import load_beir
from samtone_tf.resources import scifact_path


def write_small_scifact(folder, documents=150, train_queries=48, test_queries=30):
    """Writes a BEIR folder with the first ``train_queries`` / ``test_queries`` judged
    queries of each split, their judged documents, and other documents up to
    ``documents``; returns the folder."""
    os.makedirs(os.path.join(folder, "qrels"), exist_ok=True)
    splits = {"train": load_beir(scifact_path(), "train"), "test": load_beir(scifact_path(), "test")}
    chosen = {"train": list(splits["train"].qrels)[:train_queries],
              "test": list(splits["test"].qrels)[:test_queries]}
    corpus = splits["train"].corpus
    keep = []
    for split, query_ids in chosen.items():
        for qid in query_ids:
            keep += [d for d in splits[split].qrels[qid] if d not in keep]
    keep += [d for d in corpus if d not in keep][:max(0, documents - len(keep))]
    with open(os.path.join(folder, "corpus.jsonl"), "w", encoding="utf-8") as handle:
        for doc_id in keep:
            doc = corpus[doc_id]
            handle.write(json.dumps({"_id": doc_id, "title": doc.title, "text": doc.text}) + "\n")
    with open(os.path.join(folder, "queries.jsonl"), "w", encoding="utf-8") as handle:
        for split, query_ids in chosen.items():
            for qid in query_ids:
                handle.write(json.dumps({"_id": qid, "text": splits[split].queries[qid]}) + "\n")
    for split, query_ids in chosen.items():
        with open(os.path.join(folder, "qrels", f"{split}.tsv"), "w", encoding="utf-8") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            for qid in query_ids:
                for doc_id, score in splits[split].qrels[qid].items():
                    handle.write(f"{qid}\t{doc_id}\t{score}\n")
    return str(folder)
