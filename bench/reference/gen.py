#!/usr/bin/env python3
"""WORKLOAD.md `gen` in PyTorch + transformers: sampling with the KV cache.

8 prompts x 64 tokens (ids uniform in [3, vocab), seeded), exactly 64 new tokens each (EOS ignored: no stop, no
suppression), do_sample, temperature 1, no top-k / top-p. Also "prefill + first token" alone (max_new_tokens=1).
Prints one JSON line per measurement: bench "gen" and "gen_prefill". With --device cuda the model and the prompts
(drawn on the CPU, then moved) live on the GPU; sampling then uses the CUDA generator (same seed), so the sampled
tokens differ from the CPU run's.

  .venv/bin/python bench/reference/gen.py [--model tiny-llama-8k|smollm2] [--threads N] [--attn sdpa|eager]
                                          [--device cpu|cuda] [--warmup 2] [--iters 10]
"""

from __future__ import annotations

import common  # noqa: I001  (first: sets OMP_WAIT_POLICY before torch loads libgomp)

import torch
from transformers import GenerationConfig

BATCH, PROMPT_LEN, NEW_TOKENS = 8, 64, 64


def main() -> None:
    ap = common.base_args(__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--prompt-len", type=int, default=PROMPT_LEN)
    ap.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    ap.add_argument("--skip-prefill", action="store_true", help="only the full `gen` measurement")
    args = ap.parse_args()
    threads = common.setup_threads(args.threads)
    dev = common.device(args)

    model = common.causal_lm(args.model, args.attn).to(dev)
    # generate() fills an unset eos_token_id from the model's generation_config (and then installs EOS-suppressing
    # min-length processors); clear it there too so EOS is simply an ordinary token.
    model.generation_config.eos_token_id = None
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(common.DATA_SEED)
    prompts = torch.randint(common.FIRST_ID, vocab, (args.batch, args.prompt_len), generator=gen).to(dev)
    attention_mask = torch.ones_like(prompts)
    torch.manual_seed(common.DATA_SEED)  # the sampling RNG (seeds the CUDA generators too)

    def gen_config(n: int) -> GenerationConfig:
        # eos_token_id=None: nothing stops generation and min_new_tokens' EOS suppression is not even installed
        # (it needs an eos id), so the distribution is the plain softmax of the logits.
        return GenerationConfig(
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            min_new_tokens=n,
            max_new_tokens=n,
            eos_token_id=None,
            pad_token_id=0,
            bos_token_id=None,
            use_cache=True,
        )

    @torch.inference_mode()
    def run(n: int) -> torch.Tensor:
        out = model.generate(input_ids=prompts, attention_mask=attention_mask, generation_config=gen_config(n))
        assert out.shape == (args.batch, args.prompt_len + n), out.shape
        return out

    measurements = [("gen", args.new_tokens)]
    if not args.skip_prefill:
        measurements.append(("gen_prefill", 1))
    for bench, n in measurements:
        for _ in range(args.warmup):
            run(n)
        times = [common.timed(lambda: run(n), dev)[0] for _ in range(args.iters)]
        s = common.summary(times)
        common.emit(
            {
                "bench": bench,
                **common.common_fields(args, threads),
                **s,
                **common.memory_fields(dev),
                "new_tokens_per_s": round(args.batch * n / s["median_s"], 3),
                "batch": args.batch,
                "prompt_len": args.prompt_len,
                "new_tokens": n,
                "warmup": args.warmup,
                "iters": args.iters,
                "times_s": [round(t, 6) for t in times],
                "kv_cache": True,
                "sampling": "do_sample temperature=1.0 top_k=0 top_p=1.0, eos ignored",
            }
        )


if __name__ == "__main__":
    main()
