"""all-MiniLM-L6-v2 sentence embeddings computed in plain numpy, as a reference the gateway's
candle implementation is checked against. It follows sentence-transformers' pipeline for the
model: BERT WordPiece tokens (at most 256 with [CLS] and [SEP]), the six-layer encoder, the mean
of the token vectors, L2 normalisation.

    reference = MiniLM("~/.cache/caravan/models/all-MiniLM-L6-v2")
    vectors = reference.embed(["a sentence", "another"])
"""

import json
import math
import os
import struct

import numpy as np
from tokenizers import Tokenizer


def read_safetensors(path):
    """Every F32 tensor of a safetensors file, by name."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype="<f4").reshape(info["shape"])
    return tensors


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


class MiniLM:
    def __init__(self, folder):
        folder = os.path.expanduser(folder)
        with open(os.path.join(folder, "config.json")) as f:
            self.config = json.load(f)
        with open(os.path.join(folder, "sentence_bert_config.json")) as f:
            self.max_tokens = json.load(f)["max_seq_length"]
        self.weights = read_safetensors(os.path.join(folder, "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)

    def tokens(self, text):
        return self.tokenizer.encode(text).ids

    def embed_ids(self, ids):
        w = self.weights
        eps = self.config["layer_norm_eps"]
        heads = self.config["num_attention_heads"]
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        dense = lambda v, p: v @ w[p + ".weight"].T + w[p + ".bias"]
        for layer in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{layer}."
            size = x.shape[1] // heads
            split = lambda v: v.reshape(n, heads, size).transpose(1, 0, 2)
            q = split(dense(x, p + "attention.self.query"))
            k = split(dense(x, p + "attention.self.key"))
            v = split(dense(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(size)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, heads * size)
            x = layer_norm(
                dense(context, p + "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                eps,
            )
            inner = gelu(dense(x, p + "intermediate.dense"))
            x = layer_norm(
                dense(inner, p + "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                eps,
            )
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)

    def embed(self, texts):
        return [self.embed_ids(self.tokens(t)) for t in texts]
