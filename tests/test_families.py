"""Tower families from Hugging Face folders, against the PyTorch models they come from.

A tiny random model of each family is built with ``transformers`` (tests/helpers/
hf_families.py); its tokenizer ids must equal the Hugging Face tokenizer's in the graph,
and its embeddings, in a DualEncoder and in the exported SavedModel, PyTorch's pooled
hidden states (cosine >= 0.9999) for every pooling, on long and non-ASCII texts.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from helpers.hf_families import (MULTILINGUAL, gemma3_folder, pytorch_pooled, qwen3_folder,
                                 scifact_lines, xlm_roberta_folder)

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

EDGE_CASES = ["  leading spaces", "trailing spaces  ", "a  b   c", "tab\tand\nnewline", "",
              " ", "ﬁ ligature ①②", "e\u0301 combining accent", "\u00a0nbsp\u3000ideographic",
              "emoji 😀 ok", "zero\u200bwidth", "ＡＢＣ fullwidth", "1,000 and 2,000,000",
              "x" * 600]
TEXTS = ["short", "What protein binds the receptor in über-long texts? " * 12,
         "Déjà vu: a non-ASCII sentence, with punctuation!", *MULTILINGUAL[:4]]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def samtone(*args):
    return subprocess.run([sys.executable, "-m", "samtone_tf.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


# family → (builder, spec class, the length its towers use)
FAMILIES = {"xlm-roberta": (xlm_roberta_folder, "HFXLMRoberta", 128),
            "gemma3": (gemma3_folder, "HFGemma3", 256),
            "gemma3-causal": (lambda f: gemma3_folder(f, bidirectional=False), "HFGemma3", 256),
            "qwen3": (qwen3_folder, "HFQwen3", 256)}
# whitespace runs where Qwen's split pattern looks ahead, contractions, NEL, Unicode spaces
QWEN_CASES = ["Hello  world", "a   b", "x  (y", "x  's", "don't  'S  'LL", "a \t b", "a\t\tb",
              "a  1", "tab\t\n\nz", "x.\n\ny", "x.\n  \ny", "end  ", "  start",
              " \u00a0\u3000x", "a\u00a0\u00a0b", "\u2028line\u2029", "a\r\n\r\nb",
              "...hello", "((x", "12345 678", "x\x85y", "a \x85b"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """family → its tiny model folder, built on first use."""
    root, built = tmp_path_factory.mktemp("families"), {}

    def get(family):
        if family not in built:
            built[family] = FAMILIES[family][0](str(root))
        return built[family]
    return get


@pytest.fixture(scope="module")
def xlmr(folders):
    return folders("xlm-roberta")


@pytest.mark.parametrize("family", ["xlm-roberta", "gemma3", "qwen3"])
def test_tokenizer_ids_equal_hugging_face(folders, family):
    """3,000+ lines (SciFact abstracts the SentencePiece model was not trained on, all
    queries, whitespace/normalization edge cases, non-ASCII, emoji), eagerly and in a
    tf.function, truncated to 128 tokens as Hugging Face truncates, specials included."""
    from samtone_tf.models import get_backbone

    folder = folders(family)
    lines = scifact_lines(2000) + EDGE_CASES + MULTILINGUAL + QWEN_CASES
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer = get_backbone(folder).make_tokenizer(128)
    graph = tf.function(tokenizer)
    for start in range(0, len(lines), 512):
        chunk = lines[start:start + 512]
        want = hf(chunk, truncation=True, max_length=128)["input_ids"]
        for out in (tokenizer(tf.constant(chunk)), graph(tf.constant(chunk))):
            ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy()
            got = [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)]
            assert got == want
            assert (ids[mask == 0] == hf.pad_token_id).all()
    assert len(lines) > 3000


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("pooling", ["mean", "cls", "last_token"])
def test_tower_equals_pytorch(folders, family, pooling):
    """A DualEncoder of the folder (SDE; ADE's query tower too) embeds as PyTorch does;
    the texts run past XLM-R's 128 positions and Gemma's sliding window (8: 4 tokens
    either side) and include non-ASCII."""
    from samtone_tf.models import DualEncoder, get_backbone

    folder = folders(family)
    _, spec_class, length = FAMILIES[family]
    spec = get_backbone(folder)
    assert type(spec).__name__ == spec_class and spec.max_length == length
    want = pytorch_pooled(folder, TEXTS, pooling, length)
    for architecture in ("sde", "ade"):
        model = DualEncoder(spec, architecture=architecture, pooling=pooling)
        ours = model.encode_queries(TEXTS)
        assert (np.asarray(ours) * want).sum(1).min() >= 0.9999, architecture


@pytest.mark.slow  # exports or saves each family's model
@pytest.mark.parametrize("family", ["xlm-roberta", "gemma3", "qwen3"])
def test_export_equals_pytorch_with_prompts(folders, family, tmp_path):
    """`samtone export --pretrained FOLDER --pooling last_token` with E5's prompts: both
    signatures of the SavedModel equal PyTorch on the prompted texts; the SavedModels with
    mean and CLS pooling equal PyTorch's pooled hidden states too."""
    folder = folders(family)
    _, spec_class, length = FAMILIES[family]
    out = samtone("export", "--pretrained", folder, "--pooling", "last_token",
                  "--query-prompt", "query: ", "--document-prompt", "passage: ",
                  "--output", str(tmp_path / "zs"))
    assert out.returncode == 0, out.stderr[-3000:]
    module = tf.saved_model.load(str(tmp_path / "zs"))
    for signature, prefix in (("encode_query", "query: "), ("encode_document", "passage: ")):
        want = pytorch_pooled(folder, TEXTS, "last_token", length, prefix)
        ours = module.signatures[signature](texts=tf.constant(TEXTS))["embeddings"].numpy()
        assert (ours * want).sum(1).min() >= 0.9999, signature
    config = json.loads((tmp_path / "zs" / "assets" / "samtone_config.json").read_text())
    assert config["backbone"].startswith(spec_class) and config["query_prompt"] == "query: "
    from samtone_tf.cli.models import pretrained_model
    from samtone_tf.export.saved_model import export_saved_model

    for pooling in ("mean", "cls"):  # the other poolings, exported in this process
        path = str(tmp_path / pooling)
        export_saved_model(pretrained_model(folder, "sde", None, None, pooling, "", ""), path)
        module = tf.saved_model.load(path)
        want = pytorch_pooled(folder, TEXTS, pooling, length)
        for signature in ("encode_query", "encode_document"):
            ours = module.signatures[signature](texts=tf.constant(TEXTS))["embeddings"].numpy()
            assert (ours * want).sum(1).min() >= 0.9999, (pooling, signature)


@pytest.mark.slow  # exports or saves each family's model
@pytest.mark.parametrize("family", ["xlm-roberta", "gemma3", "qwen3"])
def test_keras_file_loads_without_the_folder(folders, family, tmp_path):
    """The .keras file carries the SentencePiece model: loaded after the folder is gone,
    it tokenizes and embeds as before."""
    import shutil

    import keras

    from samtone_tf.models import DualEncoder, get_backbone

    folder = shutil.copytree(folders(family), tmp_path / "copy")
    model = DualEncoder(get_backbone(str(folder)), architecture="ade", pooling="mean")
    before = np.asarray(model.encode_documents(TEXTS))
    model.save(tmp_path / "model.keras")
    shutil.rmtree(folder)
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(np.asarray(loaded.encode_documents(TEXTS)), before, atol=1e-6)


def test_unsupported_family_is_refused_naming_it(tmp_path):
    from samtone_tf.errors import DataError
    from samtone_tf.models import get_backbone

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(DataError, match=r"config.json: model_type 'gpt2' is not a supported"):
        get_backbone(str(tmp_path))


def test_xlm_roberta_without_sentencepiece_model_is_refused(xlmr, tmp_path):
    import shutil

    from samtone_tf.errors import DataError
    from samtone_tf.models import get_backbone

    folder = shutil.copytree(xlmr, tmp_path / "copy")
    os.remove(folder / "sentencepiece.bpe.model")
    with pytest.raises(DataError, match="no sentencepiece.bpe.model"):
        get_backbone(str(folder))


@pytest.mark.slow  # exports or saves each family's model
@pytest.mark.parametrize("family", ["xlm-roberta", "gemma3", "qwen3"])
def test_ade_lora_trains_adapters_on_a_pretrained_family(folders, family, tmp_path):
    """ADE-LoRA on a pretrained family: only the query/value adapters train (Gemma 3's
    attention is keras-hub's own, not Keras' MultiHeadAttention), the base stays
    bit-identical, the towers part ways, and the exported SavedModel encodes as the
    trained model."""
    import keras

    from helpers.builders import contrastive_batch
    from samtone_tf.export.saved_model import export_saved_model
    from samtone_tf.losses.samtone import SamToNeLoss
    from samtone_tf.models import DualEncoder, get_backbone

    keras.utils.set_random_seed(0)
    model = DualEncoder(get_backbone(folders(family)), architecture="ade-lora", lora_rank=4,
                        query_max_length=16, document_max_length=16)
    model.compile(keras.optimizers.Adam(1e-2), loss=SamToNeLoss(0.05, same_tower="query"))
    base = {v.path: v.numpy() for v in model.weights}
    layers = len(model.query_tower.encoder.transformer_layers)
    assert len(model.trainable_variables) == layers * 2 * 2 * 2  # (q, v) × sides × (A, B)
    batch = contrastive_batch(np.random.default_rng(1), 8, 6, 8, vocab=500)
    model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(8).repeat(3), verbose=0)
    for variable in model.weights:
        if "lora_" not in variable.path.rsplit("/", 1)[-1]:
            assert np.array_equal(variable.numpy(), base[variable.path]), variable.path
    queries, documents = model.encode_queries(TEXTS), model.encode_documents(TEXTS)
    assert (np.asarray(queries) * np.asarray(documents)).sum(1).min() < 0.9999
    export_saved_model(model, str(tmp_path / "saved"))
    module = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(module.encode_query(tf.constant(TEXTS))["embeddings"], queries,
                               atol=2e-5)
    np.testing.assert_allclose(module.encode_document(tf.constant(TEXTS))["embeddings"],
                               documents, atol=2e-5)


@pytest.mark.slow  # a whole job and an evaluation
def test_train_ade_lora_from_a_family_folder_and_eval_zero_shot(folders, small_scifact,
                                                                 tmp_path):
    """`samtone train --tower QWEN_FOLDER --architecture ade-lora --set model.lora_rank=4
    --set model.pooling=last_token` runs to its metrics and SavedModel (ADE-LoRA, last
    token, the Qwen spec); `samtone eval --model FOLDER` scores the folder zero-shot."""
    folder = folders("qwen3")
    run = tmp_path / "run"
    out = samtone("train", "--tower", folder, "--architecture", "ade-lora", "--set",
                  "model.lora_rank=4", "--set", "model.pooling=last_token", "--steps", "2",
                  "--batch-size", "8", "--data", small_scifact, "--output", str(run),
                  "--quiet")
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    for name in ("zero_shot", "fine_tuned"):
        assert 0.0 <= metrics[name]["ndcg@10"] <= 1.0
    config = json.loads((run / "savedmodel" / "assets" / "samtone_config.json").read_text())
    assert config["architecture"] == "ade-lora" and config["pooling"] == "last_token"
    assert config["backbone"].startswith("HFQwen3")
    module = tf.saved_model.load(str(run / "savedmodel"))
    got = module.signatures["encode_document"](texts=tf.constant(TEXTS))["embeddings"]
    assert np.isfinite(got.numpy()).all() and got.shape == (len(TEXTS), 32)
    scores = tmp_path / "zero_shot.json"
    out = samtone("eval", "--model", folder, "--data", small_scifact, "--split", "test",
                  "--output", str(scores))
    assert out.returncode == 0, out.stderr[-3000:]
    assert 0.0 <= json.loads(scores.read_text())["ndcg@10"] <= 1.0


def _sentence_transformers_files(folder, pooling, prompts):
    (folder / "1_Pooling").mkdir()
    modes = {f"pooling_mode_{m}": m == pooling for m in
             ("cls_token", "mean_tokens", "max_tokens", "lasttoken")}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, **modes, "include_prompt": True}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"}]))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": prompts}))


def test_a_sentence_transformers_folder_brings_its_own_pooling_and_prompts(folders, tmp_path):
    """A Qwen3-Embedding-style folder (last-token pooling, an instruction before queries,
    none before documents): the zero-shot model built without flags pools and prompts as
    the folder says, equal to PyTorch's; flags still win; max pooling is refused naming
    the file."""
    import shutil

    from samtone_tf.cli.models import pretrained_model
    from samtone_tf.errors import DataError

    folder = shutil.copytree(folders("qwen3"), tmp_path / "qwen3-embedding")
    instruction = "Instruct: Given a claim, retrieve abstracts that support it\nQuery:"
    _sentence_transformers_files(folder, "lasttoken", {"query": instruction, "document": ""})
    model = pretrained_model(str(folder), "sde", None, None)
    assert (model.pooling, model.query_prompt, model.document_prompt) == (
        "last_token", instruction, "")
    want = pytorch_pooled(str(folder), TEXTS, "last_token", 256, instruction)
    assert (np.asarray(model.encode_queries(TEXTS)) * want).sum(1).min() >= 0.9999
    flagged = pretrained_model(str(folder), "sde", None, None, "mean", "", "")
    assert (flagged.pooling, flagged.query_prompt) == ("mean", "")
    shutil.rmtree(folder / "1_Pooling")
    _sentence_transformers_files(folder, "max_tokens", {})
    with pytest.raises(DataError, match=r"1_Pooling/config.json: pooling \['pooling_mode_max"):
        pretrained_model(str(folder), "sde", None, None)


def test_embeddinggemma_style_folder_equals_sentence_transformers(folders, tmp_path):
    """A sentence-transformers folder built as EmbeddingGemma's (Gemma 3, mean pooling,
    two bias-free dense layers 32 → 128 → 32, Normalize, its query and document prompts):
    the zero-shot model's embeddings equal SentenceTransformer.encode's with the named
    prompts (the dense layers compose into the tower's projection), in Python and through
    the .keras file."""
    import shutil

    import keras

    from helpers.hf_families import as_sentence_transformers
    from samtone_tf.cli.models import pretrained_model

    sentence_transformers = pytest.importorskip("sentence_transformers")
    prompts = {"query": "task: search result | query: ", "document": "title: none | text: "}
    folder = as_sentence_transformers(
        str(shutil.copytree(folders("gemma3"), tmp_path / "embeddinggemma")),
        dense=(128, 32), prompts=prompts)
    reference = sentence_transformers.SentenceTransformer(folder, device="cpu")
    model = pretrained_model(folder, "sde", None, None)
    assert model.projection_dim is None and model.query_tower.output_dim == 32
    for side, name in (("queries", "query"), ("documents", "document")):
        want = reference.encode(TEXTS, prompt_name=name, normalize_embeddings=True)
        got = np.asarray(getattr(model, f"encode_{side}")(TEXTS))
        assert (got * want).sum(1).min() >= 0.9999, side
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.encode_queries(TEXTS), model.encode_queries(TEXTS),
                               atol=1e-6)


def test_a_dense_layer_with_an_activation_is_refused_naming_its_file(tmp_path):
    from samtone_tf.errors import DataError
    from samtone_tf.models.pretrained import sentence_transformers_projection

    (tmp_path / "2_Dense").mkdir()
    (tmp_path / "2_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 4, "out_features": 4, "bias": True,
         "activation_function": "torch.nn.modules.activation.Tanh"}))
    (tmp_path / "modules.json").write_text(json.dumps([
        {"path": "", "type": "sentence_transformers.models.Transformer"},
        {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(DataError, match=r"2_Dense/config.json: a Dense layer with bias True "
                                        r"and activation 'Tanh'"):
        sentence_transformers_projection(str(tmp_path))


@pytest.mark.parametrize("family", ["xlm-roberta", "gemma3", "qwen3"])
def test_every_character_between_two_letters_tokenizes_as_hugging_face(folders, family):
    """U+0001–U+30FF and U+FE00–U+FFFD (surrogates aside), each between two letters: the
    in-graph ids equal Hugging Face's (XLM-R's fast SentencePiece op leaves U+0085
    unknown where Hugging Face makes it a space; the tokenizer maps it first)."""
    from samtone_tf.models import get_backbone

    folder = folders(family)
    codes = [c for c in [*range(1, 0x3100), *range(0xFE00, 0xFFFE)] if not 0xD800 <= c < 0xE000]
    texts = [f"a{chr(c)}b" for c in codes]
    hf = transformers.AutoTokenizer.from_pretrained(folder)
    out = tf.function(get_backbone(folder).make_tokenizer(16))(tf.constant(texts))
    ids, mask = out["token_ids"].numpy(), out["padding_mask"].numpy().astype(bool)
    want = hf(texts)["input_ids"]
    differ = [hex(c) for c, row, m, w in zip(codes, ids, mask, want) if row[m].tolist() != w]
    assert not differ, differ[:20]
