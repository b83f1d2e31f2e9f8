"""Tiny random Hugging Face models of each tower family, built offline with
``transformers`` (seeded; norms and biases random too, so a weight copied to the wrong
place shows), each with its tokenizer, saved as a folder a user would download."""

from __future__ import annotations

import gzip
import json
import os
import shutil

from samtone_tf.resources import scifact_path

# non-ASCII lines the tokenizer model is trained on, so its pieces cover them
MULTILINGUAL = ["Ça va très bien, merci — naïve café", "Größe und Straße, Übermaß",
                "東京は日本の首都です", "Москва — столица России", "Ελληνικά κείμενα",
                "مرحبا بالعالم", "हिन्दी पाठ", "한국어 문장입니다"]


def scifact_lines(start=0, stop=None):
    """SciFact's corpus texts and query texts, in file order."""
    folder = scifact_path()
    lines = []
    for name in ("corpus.jsonl.gz", "queries.jsonl.gz"):
        with gzip.open(os.path.join(folder, name), "rt", encoding="utf-8") as handle:
            lines += [json.loads(line)["text"] for line in handle]
    return lines[start:stop]


def xlm_roberta_folder(folder, seed=0, vocab_size=800, max_positions=130):
    """A tiny XLM-RoBERTa folder: a unigram SentencePiece model trained on 2,000 SciFact
    abstracts and the multilingual lines, the fairseq-numbered Hugging Face tokenizer made
    from it, and a random 2-layer model. Returns the folder."""
    import sentencepiece
    import torch
    import transformers

    spm_folder = os.path.join(folder, "spm")
    os.makedirs(spm_folder, exist_ok=True)
    model_file = os.path.join(spm_folder, "sentencepiece.bpe.model")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(scifact_lines(0, 2000) + MULTILINGUAL * 50),
        model_prefix=model_file[:-len(".model")], vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, num_threads=1,
        minloglevel=2)
    tokenizer = transformers.XLMRobertaTokenizer.from_pretrained(spm_folder)
    out = os.path.join(folder, "xlm-roberta")
    tokenizer.save_pretrained(out)
    shutil.copy(model_file, out)  # as published XLM-R folders ship it
    torch.manual_seed(seed)
    config = transformers.XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, max_position_embeddings=max_positions)
    model = transformers.XLMRobertaModel(config, add_pooling_layer=False)
    _randomize_norms_and_biases(model, torch)
    model.save_pretrained(out)
    return out


def _randomize_norms_and_biases(model, torch):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.5)
            elif "LayerNorm" in name:
                parameter.normal_(1.0, 0.5)
            elif "norm" in name:  # Gemma's RMS norms scale by (1 + weight)
                parameter.normal_(0.0, 0.5)


def pytorch_pooled(folder, texts, pooling, max_length, prefix=""):
    """The Hugging Face model's last hidden states pooled as samtone_tf pools (mean over
    the attention mask, the first token, or the last non-padding token), L2-normalised."""
    import numpy as np
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    pooled = []
    for text in texts:  # one at a time: no padding (Gemma's tokenizer pads on the left)
        batch = tokenizer([prefix + text], truncation=True, max_length=max_length,
                          return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state.double().numpy()[0]
        if pooling == "mean":
            pooled.append(hidden.mean(0))
        else:
            pooled.append(hidden[0] if pooling == "cls" else hidden[-1])
    pooled = np.array(pooled)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def gemma3_folder(folder, seed=0, vocab_size=1000, sliding_window=8, bidirectional=True):
    """A tiny Gemma 3 text folder: a byte-fallback BPE SentencePiece model trained as
    Gemma's (no normalisation, no dummy prefix, digits split; <pad> 0, <eos> 1, <bos> 2,
    <unk> 3), Hugging Face's Gemma tokenizer made from it adding <bos> and <eos> as
    EmbeddingGemma's does, and a random 6-layer model (five sliding-window layers, then a
    full-attention one; EmbeddingGemma's bidirectional attention). Returns the folder."""
    import sentencepiece
    import torch
    import transformers

    spm_folder = os.path.join(folder, "gemma-spm")
    os.makedirs(spm_folder, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(scifact_lines(0, 2000) + MULTILINGUAL * 50),
        model_prefix=os.path.join(spm_folder, "tokenizer"), vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, character_coverage=0.9995, num_threads=1,
        minloglevel=2, pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>",
        eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>", add_dummy_prefix=False,
        split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, allow_whitespace_only_pieces=True)
    tokenizer = transformers.GemmaTokenizer.from_pretrained(
        spm_folder, add_bos_token=True, add_eos_token=True)
    out = os.path.join(folder, "gemma3" + ("" if bidirectional else "-causal"))
    tokenizer.save_pretrained(out)
    shutil.copy(os.path.join(spm_folder, "tokenizer.model"), out)
    config = transformers.Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
        sliding_window=sliding_window, max_position_embeddings=256,
        use_bidirectional_attention=bidirectional, pad_token_id=0, eos_token_id=1,
        bos_token_id=2)
    torch.manual_seed(seed)
    model = transformers.Gemma3TextModel(config)
    _randomize_norms_and_biases(model, torch)
    model.save_pretrained(out)
    return out


def qwen3_folder(folder, seed=0, vocab_size=1200):
    """A tiny Qwen 3 folder: a byte-level BPE trained with Hugging Face ``tokenizers`` as
    Qwen's is built (NFC, Qwen's split pattern, byte-level alphabet), ending every text
    with <|endoftext|> as Qwen3-Embedding's template does, and a random 2-layer model.
    Returns the folder."""
    import torch
    import transformers
    from tokenizers import (Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors, trainers)

    from samtone_tf.tokenizers.byte_level import QWEN2_PATTERN

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(scifact_lines(0, 2000) + MULTILINGUAL * 50, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    end = tokenizer.token_to_id("<|endoftext|>")
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="$A <|endoftext|>",
                                      special_tokens=[("<|endoftext|>", end)])])
    wrapped = transformers.Qwen2Tokenizer(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                          pad_token="<|endoftext|>", unk_token=None)
    out = os.path.join(folder, "qwen3")
    wrapped.save_pretrained(out)
    config = transformers.Qwen3Config(
        vocab_size=len(wrapped), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=256, pad_token_id=end, eos_token_id=end,
        tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = transformers.Qwen3Model(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:  # Qwen's RMS norms scale by the weight itself
                parameter.normal_(1.0, 0.5)
    model.save_pretrained(out)
    return out


def as_sentence_transformers(folder, pooling="mean_tokens", dense=(), prompts=None, seed=0,
                             max_seq_length=256):
    """Makes a model folder a sentence-transformers folder as EmbeddingGemma's is: the
    Transformer, a Pooling module (``pooling``: mean_tokens, cls_token, lasttoken),
    bias-free identity Dense layers of sizes ``dense`` (random, seeded), Normalize;
    ``prompts`` in config_sentence_transformers.json. Returns the folder."""
    import numpy as np
    from safetensors.numpy import save_file

    hidden = json.load(open(os.path.join(folder, "config.json")))["hidden_size"]
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"}]
    os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
    modes = {f"pooling_mode_{m}": m == pooling for m in
             ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
              "weightedmean_tokens", "lasttoken")}
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as handle:
        json.dump({"word_embedding_dimension": hidden, **modes, "include_prompt": True}, handle)
    rng, size = np.random.default_rng(seed), hidden
    for i, out in enumerate(dense):
        path = f"{i + 2}_Dense"
        os.makedirs(os.path.join(folder, path), exist_ok=True)
        with open(os.path.join(folder, path, "config.json"), "w") as handle:
            json.dump({"in_features": size, "out_features": out, "bias": False,
                       "activation_function": "torch.nn.modules.linear.Identity"}, handle)
        weight = rng.normal(0.0, size ** -0.5, (out, size)).astype(np.float32)
        save_file({"linear.weight": weight}, os.path.join(folder, path, "model.safetensors"))
        modules.append({"idx": len(modules), "name": str(len(modules)), "path": path,
                        "type": "sentence_transformers.models.Dense"})
        size = out
    modules.append({"idx": len(modules), "name": str(len(modules)), "path": f"{len(modules)}_Normalize",
                    "type": "sentence_transformers.models.Normalize"})
    os.makedirs(os.path.join(folder, modules[-1]["path"]), exist_ok=True)
    with open(os.path.join(folder, "modules.json"), "w") as handle:
        json.dump(modules, handle)
    with open(os.path.join(folder, "sentence_bert_config.json"), "w") as handle:
        json.dump({"max_seq_length": max_seq_length, "do_lower_case": False}, handle)
    with open(os.path.join(folder, "config_sentence_transformers.json"), "w") as handle:
        json.dump({"prompts": prompts or {}, "default_prompt_name": None,
                   "similarity_fn_name": "cosine"}, handle)
    return folder
