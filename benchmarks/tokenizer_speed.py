"""In-graph tokenizers against Hugging Face's (Rust) on the same texts, same run.

    python benchmarks/tokenizer_speed.py [--repeat 2]

For each family with a tokenizer of its own (XLM-R's SentencePiece, Gemma's SentencePiece
BPE, Qwen's byte-level BPE with the look-ahead split done in two regex passes), a tiny
folder is built as the tests build it (tests/helpers/hf_families.py: the tokenizer model
is trained on SciFact) and SciFact's 5,183 abstracts are tokenized in batches of 64,
truncated to 256 tokens: by samtone_tf's tokenizer inside a ``tf.function`` (first pass:
Qwen's BPE cache empty; later passes: warm) and by ``transformers.AutoTokenizer``. Prints
one JSON line per family with texts/s for each and their ratio; needs torch,
transformers, sentencepiece (the test extras).
"""

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="passes of samtone_tf's")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import tensorflow as tf
    import transformers
    from helpers.hf_families import gemma3_folder, qwen3_folder, scifact_lines, xlm_roberta_folder

    from samtone_tf.models import get_backbone

    texts = scifact_lines(0, 5183)
    batches = [tf.constant(texts[i:i + args.batch_size])
               for i in range(0, len(texts), args.batch_size)]
    work = tempfile.mkdtemp()
    print(f"# python benchmarks/tokenizer_speed.py --repeat {args.repeat}: {len(texts)} texts",
          flush=True)
    for family, build in (("xlm-roberta", xlm_roberta_folder), ("gemma3", gemma3_folder),
                          ("qwen3", qwen3_folder)):
        folder = build(work)
        tokenizer = get_backbone(folder).make_tokenizer(256)
        graph = tf.function(tokenizer)
        passes = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            for batch in batches:
                graph(batch)["token_ids"].numpy()
            passes.append(time.perf_counter() - start)
        hf = transformers.AutoTokenizer.from_pretrained(folder)
        start = time.perf_counter()
        for i in range(0, len(texts), args.batch_size):
            hf(texts[i:i + args.batch_size], truncation=True, max_length=256, padding=True)
        reference = time.perf_counter() - start
        ours = min(passes[1:] or passes)
        print(json.dumps({"family": family, "texts": len(texts),
                          "samtone_first_pass_texts_per_s": round(len(texts) / passes[0]),
                          "samtone_texts_per_s": round(len(texts) / ours),
                          "hugging_face_texts_per_s": round(len(texts) / reference),
                          "samtone_over_hugging_face": round(reference / ours, 2)}),
              flush=True)


if __name__ == "__main__":
    main()
