"""Builds the MultiReQA converter's test excerpt from ../shared/data/reqa-squad.

The MRQA SQuAD dev file is not available offline, so this writes an MRQA-format excerpt
for the first two contexts (c0, c1): each context is its candidate sentences joined
by one space (offsets recomputed), its questions are those judged on its sentences (in
queries.jsonl order), and each question gets one answer span inside each of its relevant
sentences (the sentence's second word, checked by hand for the first three questions:
"American" in c0_s1 for the AFC question, etc.). One extra question, whose only answer
crosses the boundary between c0_s0 and c0_s1, must be left out by the converter.
The converter's output must equal reqa-squad's ids, texts and qrels for c0 and c1.
"""

import gzip
import json
import os

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "shared", "data",
                      "reqa-squad")
HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    corpus = [json.loads(l) for l in open(os.path.join(SHARED, "corpus.jsonl"))]
    queries = [json.loads(l) for l in open(os.path.join(SHARED, "queries.jsonl"))]
    qrels = {}
    for line in list(open(os.path.join(SHARED, "qrels", "test.tsv")))[1:]:
        q, d, _ = line.rstrip("\n").split("\t")
        qrels.setdefault(q, []).append(d)
    header = {"header": {"dataset": "SQuAD", "split": "dev"}}
    records, candidates = [header], []
    for index in (0, 1):
        sentences = [d for d in corpus if d["_id"].startswith(f"c{index}_s")]
        sentences.sort(key=lambda d: int(d["_id"].split("_s")[1]))
        offsets, context = {}, ""
        for doc in sentences:
            if context:
                context += " "
            offsets[doc["_id"]] = (len(context), len(context) + len(doc["text"]))
            context += doc["text"]
        qas = []
        for query in queries:
            relevant = [d for d in qrels.get(query["_id"], []) if d in offsets]
            if not relevant:
                continue
            spans = []
            for doc_id in relevant:
                start, end = offsets[doc_id]
                words = context[start:end].split(" ")
                first = start + len(words[0]) + 1
                spans.append([first, first + len(words[1]) - 1])
            qas.append({"qid": query["_id"], "question": query["text"],
                        "detected_answers": [{"text": context[a:b + 1], "char_spans": [[a, b]]}
                                             for a, b in spans]})
        if index == 0:  # an answer across the c0_s0 / c0_s1 boundary: left out
            boundary = offsets["c0_s1"][0]
            qas.insert(1, {"qid": "f" * 32, "question": "Which span crosses a boundary?",
                           "detected_answers": [{"char_spans": [[boundary - 5, boundary + 5]]}]})
        records.append({"context": context, "qas": qas})
        qid_list = "/".join(qa["qid"] for qa in qas)
        for doc in sentences:
            start, end = offsets[doc["_id"]]
            candidates.append({"candidate_id": f"SQuAD_{qid_list}/_{doc['_id'].split('_s')[1]}",
                               "response_start": start, "response_end": end})
    with gzip.open(os.path.join(HERE, "SQuAD.jsonl.gz"), "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    with gzip.open(os.path.join(HERE, "candidates.json.gz"), "wt", encoding="utf-8") as handle:
        for record in candidates:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
