"""The paper's two analyses: are the two towers' embeddings one space, and how do
similarities distribute?

* :func:`tower_separation`: N queries and their N positive documents (default
  400 + 400, as Dong et al. 2022) from both towers → a 2-D t-SNE (scikit-learn) for
  the picture, and a number: the 5-fold cross-validated accuracy of a linear probe
  (logistic regression) telling query embeddings from document embeddings. 0.5
  means fully mixed (one cloud); 1.0 means two separable clouds.
* :func:`similarity_statistics`: the top-1 retrieval similarity of every query over
  the corpus, and s(qᵢ,qⱼ) / s(qᵢ,dⱼ) (i ≠ j) over the sampled pairs.
* :func:`plot_tsne` / :func:`plot_similarities`: PNG figures; several runs side by side.
"""

from __future__ import annotations

import os

import numpy as np

from samtone_tf.files import atomic_path, check_output, refuse_link, write_json_atomic

SUMMARY = "analysis.json"


def check_output_folder(folder, inputs=()):
    """Refuses (OutputError) an ``analyze --output`` folder that is a link, lies inside
    or is an input, or already holds files but no ``analysis.json`` of an earlier
    analysis: the pictures are written only into a folder of their own."""
    from samtone_tf.files import OutputError

    check_output(folder, inputs)
    refuse_link(folder)
    if not os.path.exists(folder):
        return
    if not os.path.isdir(folder):
        raise NotADirectoryError(20, "is a file, expected a folder", folder)
    entries = os.listdir(folder)
    if entries and SUMMARY not in entries:
        raise OutputError(f"{folder}: holds files ({', '.join(sorted(entries)[:4])}) but no "
                          f"{SUMMARY} of an earlier samtone analyze; refusing to write into it")


def _save_figure(fig, path):
    """Saves a figure atomically (a link at ``path`` is replaced, never followed)."""
    with atomic_path(path, suffix=".png") as temporary:
        fig.savefig(temporary, dpi=110, format="png")


def sample_pairs(collection, n=400, seed=0):
    """Up to n (query text, positive document text) pairs, one per query."""
    rng = np.random.default_rng(seed)
    query_ids = sorted(collection.qrels)
    rng.shuffle(query_ids)
    pairs = []
    for query_id in query_ids:
        positives = sorted(d for d, r in collection.qrels[query_id].items() if r > 0)
        if positives:
            pairs.append((collection.queries[query_id],
                          collection.corpus[positives[0]].full_text))
        if len(pairs) == n:
            break
    return pairs


def tower_separation(query_embeddings, document_embeddings, seed=0, tsne=True):
    """Returns {"probe_accuracy", "probe_accuracy_std", "tsne": [2N, 2] or None}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import TSNE
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.concatenate([query_embeddings, document_embeddings]).astype(np.float64)
    y = np.concatenate([np.zeros(len(query_embeddings)), np.ones(len(document_embeddings))])
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(max_iter=2000), x, y, cv=folds)
    coords = None
    if tsne:
        perplexity = min(30.0, (len(x) - 1) / 3)
        coords = TSNE(n_components=2, perplexity=perplexity, random_state=seed,
                      init="pca").fit_transform(x)
    return {"probe_accuracy": float(scores.mean()), "probe_accuracy_std": float(scores.std()),
            "tsne": coords}


def similarity_statistics(query_embeddings, document_embeddings, corpus_embeddings=None,
                          retrieval_queries=None):
    """The off-diagonal query–query and query–document similarities of the sampled
    pairs, their positive similarities, and (with ``corpus_embeddings``) the top-1
    retrieval similarity of each of ``retrieval_queries`` (default: the sampled
    queries) over the corpus."""
    q, d = np.asarray(query_embeddings), np.asarray(document_embeddings)
    off = ~np.eye(len(q), dtype=bool)
    out = {"query_query": (q @ q.T)[off], "query_document": (q @ d.T)[off],
           "positive": np.sum(q * d, axis=1)}
    if corpus_embeddings is not None:
        from samtone_tf.evaluation import exact_search

        anchors = q if retrieval_queries is None else np.asarray(retrieval_queries)
        out["top1"] = exact_search(anchors, corpus_embeddings, k=1)[0][:, 0]
    return out


def plot_tsne(results, path):
    """results: {run name: tower_separation(...)} → one PNG, a panel per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 5), squeeze=False)
    for axis, (name, result) in zip(axes[0], results.items()):
        coords = result["tsne"]
        n = len(coords) // 2
        axis.scatter(coords[:n, 0], coords[:n, 1], s=6, alpha=0.7, label="query tower")
        axis.scatter(coords[n:, 0], coords[n:, 1], s=6, alpha=0.7, label="document tower")
        axis.set_title(f"{name}\nlinear probe accuracy {result['probe_accuracy']:.3f}")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.legend(loc="best", fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_similarities(stats, path):
    """stats: {run name: similarity_statistics(...)} → one PNG, runs side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("top1", "query_query", "query_document") if all(k in s for s in stats.values())]
    titles = {"top1": "top-1 retrieval similarity", "query_query": "s(qᵢ, qⱼ), i ≠ j",
              "query_document": "s(qᵢ, dⱼ), i ≠ j"}
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
    for axis, kind in zip(axes[0], kinds):
        for name, values in stats.items():
            axis.hist(values[kind], bins=50, range=(-0.2, 1.0), alpha=0.5, density=True,
                      label=name)
        axis.set_title(titles[kind])
        axis.set_xlabel("cosine similarity")
        axis.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def encode_pairs(encoder, pairs, batch_size=16):
    """Sampled (query, document) text pairs → (queries [n, dim], documents [n, dim]),
    each side through its own encoder, ``batch_size`` rows at a time; ``encoder``: a
    DualEncoder or a loaded export (anything with ``encode_queries/encode_documents``)."""
    return (encoder.encode_queries([q for q, _ in pairs], batch_size=batch_size),
            encoder.encode_documents([d for _, d in pairs], batch_size=batch_size))


def write_plots(model, collection, folder, seed=0, n=400, batch_size=16):
    """t-SNE of both towers (with the linear-probe number) and similarity histograms of
    the fine-tuned model, on up to n evaluation pairs (no corpus pass), encoded
    ``batch_size`` rows at a time (the job passes its ``evaluation.batch_size``: on CPU,
    64 rows of 256-token abstracts peaked 0.65 GB above 16 rows at the same speed,
    docs/RESULTS.md)."""
    pairs = sample_pairs(collection, n, seed)
    if len(pairs) < 10:
        return None
    queries, documents = encode_pairs(model, pairs, batch_size)
    refuse_link(folder)
    os.makedirs(folder, exist_ok=True)
    separation = tower_separation(queries, documents, seed)
    plot_tsne({"fine-tuned": separation}, os.path.join(folder, "tsne.png"))
    plot_similarities({"fine-tuned": similarity_statistics(queries, documents)},
                               os.path.join(folder, "similarities.png"))
    write_json_atomic(os.path.join(folder, "separation.json"), {
        "pairs": len(pairs), "probe_accuracy": separation["probe_accuracy"],
        "probe_accuracy_std": separation["probe_accuracy_std"]})
    return separation
