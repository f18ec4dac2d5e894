"""Writes a tiny llama-architecture GGUF model (random weights, a byte-level SentencePiece
vocabulary) that llama.cpp loads and generates from in milliseconds: the tests' stand-in for
real weights, made at test time so that no model is downloaded or kept in the repository.

Usage: python tiny_gguf.py OUT.gguf
"""

import sys

import numpy as np
import gguf

EMBD, HEADS, LAYERS, FF, CTX = 32, 4, 2, 64, 512


def vocabulary():
    tokens = [b"<unk>", b"<s>", b"</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>".encode())
        types.append(gguf.TokenType.BYTE)
    words = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words += ["grid", "lease", "model", "token", "hello", "world", "market", "block"]
    for w in words:
        for piece in (w, "\u2581" + w):
            tokens.append(piece.encode())
            types.append(gguf.TokenType.NORMAL)
    scores = [0.0] * len(tokens)
    return tokens, scores, types


def main(out):
    rng = np.random.default_rng(7)
    tokens, scores, types = vocabulary()
    vocab = len(tokens)
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("gridlease-tiny-test-model")
    w.add_context_length(CTX)
    w.add_embedding_length(EMBD)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(EMBD // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def t(name, *shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    def ones(name):
        w.add_tensor(name, np.ones(EMBD, dtype=np.float32))

    t("token_embd.weight", vocab, EMBD)
    ones("output_norm.weight")
    t("output.weight", vocab, EMBD)
    for i in range(LAYERS):
        ones(f"blk.{i}.attn_norm.weight")
        for m in ("q", "k", "v", "output"):
            t(f"blk.{i}.attn_{m}.weight", EMBD, EMBD)
        ones(f"blk.{i}.ffn_norm.weight")
        t(f"blk.{i}.ffn_gate.weight", FF, EMBD)
        t(f"blk.{i}.ffn_up.weight", FF, EMBD)
        t(f"blk.{i}.ffn_down.weight", EMBD, FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])
