#!/usr/bin/env python3
"""WORKLOAD.md `rm` through TRL's RewardTrainer (the tool users would otherwise pick): reward-model training steps.

The same model as rm.py (LlamaForSequenceClassification, num_labels=1, WORKLOAD.md's seeded init) and the same
batches (8 pairs = 16 sequences x 128 tokens, no padding), handed to `trl.RewardTrainer` as a tokenized dataset
(`chosen_ids` / `rejected_ids`). RewardConfig: per-device batch 8 pairs, AdamW (torch) lr 1e-5, betas
(0.9, 0.999), eps 1e-8, weight decay 0, constant LR, max_grad_norm 1.0, float32, no logging, no saving,
no evaluation. Each optimizer step (data collation + forward + backward + clip + AdamW step, TRL's own loss
-log sigmoid(r_chosen - r_rejected)) is timed from `on_step_begin` to `on_step_end` of a TrainerCallback.

--device cpu (the default) runs the trainer with use_cpu=True; --device cuda leaves the device to the Trainer (it
takes the visible CUDA device and moves the model and each batch there itself; the model is also moved before the
Trainer is built) and synchronizes at both ends of each timed step. With several GPUs visible the Trainer would
switch to DataParallel, so the script refuses that: set CUDA_VISIBLE_DEVICES to one card.

  .venv/bin/python bench/reference/rm_trl.py [--variant full|lora] [--model tiny-llama-8k|smollm2] [--threads N]
                                             [--attn sdpa|eager] [--device cpu|cuda] [--warmup 3] [--iters 20]
"""

from __future__ import annotations

import common  # noqa: I001  (first: sets OMP_WAIT_POLICY before torch loads libgomp)

import contextlib
import sys
import tempfile
import time

import datasets
import tokenizers
import torch
import trl
from transformers import PreTrainedTokenizerFast, TrainerCallback

from rm import BENCH_NAME, PAIRS, PROMPT_LEN, ANSWER_LEN, make_batches


def word_tokenizer(vocab: int) -> PreTrainedTokenizerFast:
    """A tokenizer over the synthetic ids (RewardTrainer wants one for its pad and eos tokens)."""
    words = {"<pad>": 0, "</s>": 1, "<s>": 2, **{f"t{i}": i for i in range(common.FIRST_ID, vocab)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(words, unk_token="<pad>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", bos_token="<s>")


class StepTimes(TrainerCallback):
    def __init__(self, dev: torch.device) -> None:
        self.times: list[float] = []
        self._t0 = 0.0
        self._dev = dev

    def on_step_begin(self, args, state, control, **kwargs):
        common.sync(self._dev)
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        common.sync(self._dev)
        self.times.append(time.perf_counter() - self._t0)


def main() -> None:
    ap = common.base_args(__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=("full", "lora"), default="full")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    threads = common.setup_threads(args.threads)
    dev = common.device(args)
    if dev.type == "cuda" and torch.cuda.device_count() > 1:
        sys.exit(
            f"--device cuda: {torch.cuda.device_count()} GPUs visible and the Trainer would use DataParallel over "
            "them; set CUDA_VISIBLE_DEVICES to one card"
        )

    model = common.score_model(args.model, args.attn).to(dev)
    vocab = model.config.vocab_size
    steps = args.warmup + args.iters
    rows = [b for b in make_batches(steps, vocab, PAIRS, common.DATA_SEED)]
    chosen = [r.tolist() for b in rows for r in b[:PAIRS]]
    rejected = [r.tolist() for b in rows for r in b[PAIRS:]]
    data = datasets.Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected})

    peft_config = None
    extra = {}
    if args.variant == "lora":
        import peft

        peft_config = peft.LoraConfig(
            task_type=peft.TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]
        )
        extra["peft"] = peft.__version__

    timer = StepTimes(dev)
    with tempfile.TemporaryDirectory() as out:
        cfg = trl.RewardConfig(
            output_dir=out,
            per_device_train_batch_size=PAIRS,
            max_steps=steps,
            learning_rate=1e-5,
            adam_beta1=0.9,
            adam_beta2=0.999,
            adam_epsilon=1e-8,
            weight_decay=0.0,
            lr_scheduler_type="constant",
            warmup_steps=0,
            max_grad_norm=1.0,
            optim="adamw_torch",
            use_cpu=dev.type == "cpu",
            bf16=False,
            fp16=False,
            report_to="none",
            logging_strategy="no",
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            max_length=None,
            seed=common.DATA_SEED,
        )
        trainer = trl.RewardTrainer(
            model=model,
            args=cfg,
            train_dataset=data,
            processing_class=word_tokenizer(vocab),
            peft_config=peft_config,
            callbacks=[timer],
        )
        layer0 = {
            n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad and ".layers.0." in n
        }
        with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its summary: keep stdout JSON lines
            trainer.train()
        named = dict(trainer.model.named_parameters())
        changed = sorted(n for n, p0 in layer0.items() if not torch.equal(named[n].detach(), p0))
        assert changed, f"training did not change any of {sorted(layer0)}"

    assert len(timer.times) == steps, f"{len(timer.times)} steps timed, expected {steps}"
    times = timer.times[args.warmup :]
    s = common.summary(times)
    common.emit(
        {
            "bench": BENCH_NAME[args.variant],
            **common.common_fields(args, threads),
            "impl": "trl",
            "trl": trl.__version__,
            **s,
            **common.memory_fields(dev),
            "pairs_per_s": round(PAIRS / s["median_s"], 4),
            "tokens_per_s": round(2 * PAIRS * (PROMPT_LEN + ANSWER_LEN) / s["median_s"], 2),
            "variant": args.variant,
            "warmup": args.warmup,
            "iters": args.iters,
            "times_s": [round(t, 6) for t in times],
            **extra,
        }
    )


if __name__ == "__main__":
    main()
