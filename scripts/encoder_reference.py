#!/usr/bin/env python3
"""Reference embeddings for tests/encoder.rs, computed independently of candle.

A plain numpy (float64) re-implementation of sentence-transformers/all-MiniLM-L6-v2 as its
configuration describes it: BertModel (post-LayerNorm, exact erf GELU, absolute positions,
token type 0) -> mean pooling over the attention mask (1_Pooling/config.json:
pooling_mode_mean_tokens) -> L2 normalisation (modules.json: 2_Normalize). Every sentence is
encoded alone, so there is no padding to get wrong; truncation is max_seq_length from
sentence_bert_config.json, as sentence-transformers does. Tokenisation uses the model's own
tokenizer.json (the same fast tokenizer sentence-transformers calls).

Usage (writes only numbers, no weights):
    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install numpy safetensors tokenizers
    /tmp/refvenv/bin/python scripts/encoder_reference.py MODEL_DIR \
        > tests/fixtures/encoder/reference.json
where MODEL_DIR is what scripts/fetch-encoder.sh prints.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War.",
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog while the sleepy cat watches from the warm windowsill.",
    "Amélie, café au lait & naïve résumé — 2001!",
    "x",
]

_erf = np.vectorize(math.erf)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def linear(w, prefix, x):
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def encode(w, cfg, ids):
    n = len(ids)
    h = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    d = h // heads
    eps = cfg["layer_norm_eps"]
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = linear(w, p + "attention.self.query", x).reshape(n, heads, d).transpose(1, 0, 2)
        k = linear(w, p + "attention.self.key", x).reshape(n, heads, d).transpose(1, 0, 2)
        v = linear(w, p + "attention.self.value", x).reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, h)
        a = linear(w, p + "attention.output.dense", ctx)
        x = layer_norm(a + x, w[p + "attention.output.LayerNorm.weight"],
                       w[p + "attention.output.LayerNorm.bias"], eps)
        f = gelu(linear(w, p + "intermediate.dense", x))
        f = linear(w, p + "output.dense", f)
        x = layer_norm(f + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)  # one unpadded sentence: the mask is all ones
    return pooled / max(np.linalg.norm(pooled), 1e-12)


def main():
    model_dir = Path(sys.argv[1])
    cfg = json.loads((model_dir / "config.json").read_text())
    max_len = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
    w = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items()
         if k != "embeddings.position_ids"}
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    out = []
    for s in SENTENCES:
        ids = tok.encode(s).ids
        e = encode(w, cfg, np.array(ids))
        out.append({"text": s, "token_ids": ids, "embedding": [round(float(v), 7) for v in e]})
    json.dump({"model": "sentence-transformers/all-MiniLM-L6-v2",
               "made_by": "scripts/encoder_reference.py (numpy float64)",
               "sentences": out}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
