#!/usr/bin/env python3
"""WORKLOAD.md `rm` in PyTorch + transformers (+ peft for the LoRA variant): reward-model training steps.

Model: the trunk (LlamaModel) + `score` Linear(d_model -> 1, no bias) read at the last token, i.e.
LlamaForSequenceClassification(num_labels=1) as TRL's RewardTrainer builds it. Batch: 8 pairs = 16 sequences x 128
tokens (prompt 64 + answer 64, no padding; chosen half first, rejected half second), a fresh seeded batch every
step. Loss mean -log sigmoid(r_chosen - r_rejected). AdamW lr 1e-5, betas (0.9, 0.999), eps 1e-8, weight decay 0,
constant LR, grad-norm clip 1.0, float32. A step = forward + backward + clip + optimizer step (+ zero_grad).

Variants: full (bench "rm"), lora (bench "rm_lora": peft LoRA r 8, alpha 16, dropout 0 on q_proj and v_proj; the
score head fully trainable via modules_to_save), checkpointing (bench "rm_ckpt": full fine-tuning with
model.gradient_checkpointing_enable()).

With --device cuda the model (moved after the LoRA / checkpointing setup, so its initial values are the CPU run's),
the AdamW state and the batches (drawn on the CPU, then moved) live on the GPU.

  .venv/bin/python bench/reference/rm.py [--variant full|lora|checkpointing] [--model tiny-llama-8k|smollm2]
                                         [--threads N] [--attn sdpa|eager] [--device cpu|cuda]
                                         [--warmup 3] [--iters 20]
"""

from __future__ import annotations

import common  # noqa: I001  (first: sets OMP_WAIT_POLICY before torch loads libgomp)

import torch
import torch.nn.functional as F

PAIRS, PROMPT_LEN, ANSWER_LEN = 8, 64, 64
BENCH_NAME = {"full": "rm", "lora": "rm_lora", "checkpointing": "rm_ckpt"}


def make_batches(n: int, vocab: int, pairs: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        prompt = torch.randint(common.FIRST_ID, vocab, (pairs, PROMPT_LEN), generator=gen)
        chosen = torch.randint(common.FIRST_ID, vocab, (pairs, ANSWER_LEN), generator=gen)
        rejected = torch.randint(common.FIRST_ID, vocab, (pairs, ANSWER_LEN), generator=gen)
        out.append(torch.cat([torch.cat([prompt, chosen], 1), torch.cat([prompt, rejected], 1)], 0))
    return out


def main() -> None:
    ap = common.base_args(__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=tuple(BENCH_NAME), default="full")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=PAIRS)
    args = ap.parse_args()
    threads = common.setup_threads(args.threads)
    dev = common.device(args)

    model = common.score_model(args.model, args.attn)
    extra = {}
    if args.variant == "lora":
        import peft
        from peft import LoraConfig, TaskType, get_peft_model

        lcfg = LoraConfig(
            task_type=TaskType.SEQ_CLS,  # puts the `score` head in modules_to_save: trained in full
            r=8,
            lora_alpha=16,
            lora_dropout=0.0,
            target_modules=["q_proj", "v_proj"],
            bias="none",
        )
        model = get_peft_model(model, lcfg)
        extra["peft"] = peft.__version__
    elif args.variant == "checkpointing":
        model.gradient_checkpointing_enable()
        assert model.is_gradient_checkpointing
        extra["gradient_checkpointing"] = True
    model.to(dev)
    model.train()  # no dropout anywhere; train() is what enables gradient checkpointing

    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    n_total = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)

    vocab = model.config.vocab_size
    batches = [b.to(dev) for b in make_batches(args.warmup + args.iters, vocab, args.pairs, common.DATA_SEED)]
    losses: list[float] = []

    def step(ids: torch.Tensor) -> None:
        rewards = model(input_ids=ids).logits.squeeze(-1)  # [2 * pairs], read at the last token
        loss = -F.logsigmoid(rewards[: args.pairs] - rewards[args.pairs :]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())

    # snapshot of the first layer's trainable tensors: a broken checkpointing / LoRA setup would leave them unchanged
    layer0 = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad and ".layers.0." in n}
    assert layer0, "no trainable parameter in layer 0"

    times = []
    for i, ids in enumerate(batches):
        dt, _ = common.timed(lambda: step(ids), dev)
        if i >= args.warmup:
            times.append(dt)

    named = dict(model.named_parameters())
    changed = sorted(n for n, p0 in layer0.items() if not torch.equal(named[n].detach(), p0))
    assert changed, f"training did not change any of {sorted(layer0)}"
    s = common.summary(times)
    tokens = 2 * args.pairs * (PROMPT_LEN + ANSWER_LEN)
    common.emit(
        {
            "bench": BENCH_NAME[args.variant],
            **common.common_fields(args, threads),
            **s,
            **common.memory_fields(dev),
            "pairs_per_s": round(args.pairs / s["median_s"], 4),
            "tokens_per_s": round(tokens / s["median_s"], 2),
            "variant": args.variant,
            "pairs": args.pairs,
            "seq_len": PROMPT_LEN + ANSWER_LEN,
            "warmup": args.warmup,
            "iters": args.iters,
            "trainable_params": n_trainable,
            "total_params": n_total,
            "loss_first": round(losses[0], 6),
            "loss_last": round(losses[-1], 6),
            "times_s": [round(t, 6) for t in times],
            **extra,
        }
    )


if __name__ == "__main__":
    main()
