#!/usr/bin/env python3
"""alignbox's `sft` workload in PyTorch + transformers (+ peft for LoRA): supervised fine-tuning steps.

Model: tiny-llama-8k as a causal LM. Batch: 8 demonstrations x 128 tokens (prompt 64 + answer 64, no padding), a
fresh seeded batch every step; loss = mean next-token cross-entropy over the 64 answer tokens only (prompt labels
set to -100, as TRL's SFTTrainer does with completion-only loss). AdamW lr 1e-5, betas (0.9, 0.999), eps 1e-8,
weight decay 0, grad-norm clip 1.0, float32. A step = forward + backward + clip + optimizer step (+ zero_grad).

Variants: full (bench "sft"), lora (bench "sft_lora": peft LoRA r 8, alpha 16, dropout 0 on q_proj and v_proj).

With --device cuda the model (moved after the LoRA setup), the AdamW state and each batch (drawn on the CPU, then
moved, outside the timed step) live on the GPU.

  .venv/bin/python bench/reference/sft.py [--variant full|lora] [--threads N] [--attn sdpa|eager]
                                          [--device cpu|cuda] [--warmup 3] [--iters 20]
"""

from __future__ import annotations

import common  # noqa: I001  (first: sets OMP_WAIT_POLICY before torch loads libgomp)

import torch
import torch.nn.functional as F

EXAMPLES, PROMPT_LEN, ANSWER_LEN = 8, 64, 64
BENCH_NAME = {"full": "sft", "lora": "sft_lora"}


def main() -> None:
    ap = common.base_args(__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=tuple(BENCH_NAME), default="full")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    threads = common.setup_threads(args.threads)
    dev = common.device(args)

    model = common.causal_lm(args.model, args.attn)
    extra = {}
    if args.variant == "lora":
        import peft
        from peft import LoraConfig, TaskType, get_peft_model

        lcfg = LoraConfig(task_type=TaskType.CAUSAL_LM, r=8, lora_alpha=16, lora_dropout=0.0,
                          target_modules=["q_proj", "v_proj"], bias="none")
        model = get_peft_model(model, lcfg)
        extra["peft"] = peft.__version__
    model.to(dev)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(common.DATA_SEED)
    losses: list[float] = []

    def step(ids: torch.Tensor) -> None:
        logits = model(input_ids=ids).logits[:, :-1]  # position t predicts token t + 1
        labels = ids[:, 1:].clone()
        labels[:, : PROMPT_LEN - 1] = -100  # targets inside the prompt are not trained
        loss = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1), ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    times = []
    for i in range(args.warmup + args.iters):
        ids = torch.randint(common.FIRST_ID, vocab, (EXAMPLES, PROMPT_LEN + ANSWER_LEN), generator=gen).to(dev)
        dt, _ = common.timed(lambda: step(ids), dev)
        if i >= args.warmup:
            times.append(dt)
    s = common.summary(times)
    common.emit(
        {
            "bench": BENCH_NAME[args.variant],
            **common.common_fields(args, threads),
            **s,
            **common.memory_fields(dev),
            "examples_per_s": round(EXAMPLES / s["median_s"], 4),
            "tokens_per_s": round(EXAMPLES * (PROMPT_LEN + ANSWER_LEN) / s["median_s"], 2),
            "variant": args.variant,
            "warmup": args.warmup,
            "iters": args.iters,
            "loss_first": round(losses[0], 6),
            "loss_last": round(losses[-1], 6),
            **extra,
        }
    )


if __name__ == "__main__":
    main()
