#!/usr/bin/env python3
"""The `gen` workloads in llama.cpp (llama-cpp-python's bindings of libllama) on a GGUF file.

The prompts are the workload's synthetic ones: ids uniform in [3, vocab), seeded, 64 per prompt. Every call
starts from an empty KV cache, prefills its prompts in one batch and decodes `--new-tokens` tokens greedily
(argmax of the logits: llama.cpp's sampler chain is not what is measured). EOS does not stop a sequence. The timed
call includes the prefill, as `alignbox bench gen` times it.

Measurements, one JSON line each:
  gen_single     1 prompt, 64 new tokens (single-stream decode)
  gen            8 prompts decoded together, one 8-token batch per step (llama.cpp's batched decode)
  gen_prefill    8 prompts, prefill + first token

  .venv-llama/bin/python bench/reference/llamacpp_gen.py GGUF [--threads N] [--warmup 1] [--iters 3]

Needs `pip install llama-cpp-python` (built from source: ~7 min on 2 cores) and numpy. Do not run it under
OMP_WAIT_POLICY=PASSIVE: that slows llama.cpp about 4x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import time

import llama_cpp
import numpy as np

FIRST_ID = 3
DATA_SEED = 4321


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def first(*names):
    """The first of `names` this version of the bindings has (libllama renamed several functions)."""
    for n in names:
        if hasattr(llama_cpp, n):
            return getattr(llama_cpp, n)
    raise AttributeError(f"llama_cpp has none of {names}")


class Runner:
    """A model and a context for `n_seq` sequences, with a batch to fill."""

    def __init__(self, path: str, threads: int, n_seq: int, n_ctx: int):
        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        self.model = first("llama_model_load_from_file", "llama_load_model_from_file")(path.encode(), mp)
        assert self.model, f"cannot load {path}"
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_ctx
        cp.n_ubatch = min(n_ctx, 512)
        cp.n_seq_max = n_seq
        cp.n_threads = threads
        cp.n_threads_batch = threads
        self.ctx = first("llama_init_from_model", "llama_new_context_with_model")(self.model, cp)
        assert self.ctx, "cannot create the context"
        vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = first("llama_vocab_n_tokens", "llama_n_vocab")(vocab)
        self.batch = llama_cpp.llama_batch_init(n_ctx, 0, n_seq)

    def clear(self) -> None:
        if hasattr(llama_cpp, "llama_memory_clear"):
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        else:
            first("llama_kv_self_clear", "llama_kv_cache_clear")(self.ctx)

    def decode(self, rows: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode of rows (token, position, sequence, wants logits)."""
        b = self.batch
        for i, (tok, pos, seq, logits) in enumerate(rows):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = logits
        b.n_tokens = len(rows)
        rc = llama_cpp.llama_decode(self.ctx, b)
        assert rc == 0, f"llama_decode returned {rc}"

    def argmax(self, i: int) -> int:
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, i)
        return int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())

    def generate(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        self.clear()
        rows = []
        for s, p in enumerate(prompts):
            rows += [(t, j, s, j + 1 == len(p)) for j, t in enumerate(p)]
        self.decode(rows)
        # llama_get_logits_ith takes the row's index in the batch: each prompt's last token.
        ends = [i for i, r in enumerate(rows) if r[3]]
        nxt = [self.argmax(i) for i in ends]
        out = [[t] for t in nxt]
        for step in range(1, new_tokens):
            self.decode([(nxt[s], len(p) + step - 1, s, True) for s, p in enumerate(prompts)])
            nxt = [self.argmax(s) for s in range(len(prompts))]
            for s, t in enumerate(nxt):
                out[s].append(t)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf")
    ap.add_argument("--model", default="smollm2", help="the name printed in the results")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    args = ap.parse_args()
    assert os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE", "OMP_WAIT_POLICY=PASSIVE slows llama.cpp 4x"

    n_ctx = args.batch * (args.prompt_len + args.new_tokens) + 16
    r = Runner(args.gguf, args.threads, args.batch, n_ctx)
    rng = random.Random(DATA_SEED)
    prompts = [[rng.randrange(FIRST_ID, r.n_vocab) for _ in range(args.prompt_len)] for _ in range(args.batch)]
    runs = [
        ("gen_single", prompts[:1], args.new_tokens),
        ("gen", prompts, args.new_tokens),
        ("gen_prefill", prompts, 1),
    ]
    for bench, batch, n in runs:
        for _ in range(args.warmup):
            r.generate(batch, n)
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            out = r.generate(batch, n)
            times.append(time.perf_counter() - t0)
            assert all(len(o) == n for o in out)
        med = statistics.median(times)
        line = {
            "bench": bench,
            "impl": "llama.cpp",
            "llama_cpp_python": llama_cpp.__version__,
            "python": platform.python_version(),
            "model": args.model,
            "gguf": os.path.basename(args.gguf),
            "threads": args.threads,
            "median_s": round(med, 6),
            "min_s": round(min(times), 6),
            "max_s": round(max(times), 6),
            "shape": [len(batch), args.prompt_len, n],
            "new_tokens_per_s": round(len(batch) * n / med, 2),
            "peak_rss_mb": peak_rss_mb(),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
