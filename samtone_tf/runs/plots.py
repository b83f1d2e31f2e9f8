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


from samtone_tf.files import OutputError, atomic_path, check_output, refuse_link, write_json_atomic
from samtone_tf.training.alignment import (encode_pairs, sample_pairs, similarity_statistics,
                                           tower_separation)

SUMMARY = "analysis.json"


def check_output_folder(folder, inputs=()):
    """Refuses (OutputError) an ``analyze --output`` folder that is a link, lies inside
    or is an input, or already holds files but no ``analysis.json`` of an earlier
    analysis: the pictures are written only into a folder of their own."""
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
