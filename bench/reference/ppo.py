#!/usr/bin/env python3
"""WORKLOAD.md `ppo` in plain PyTorch + transformers: one PPO iteration with TRL's PPO formulas.

The iteration is written out here (no TRL trainer class) following TRL's PPOTrainer.train() (the "PPOv2" trainer
that lived in trl/trainer/ppo_trainer.py and later trl/experimental/ppo/ppo_trainer.py; TRL 1.16.0 no longer ships
it). Same math, same order of operations, with no padding and no stop token, so every mask is all-true:

  generate        policy.generate(do_sample, temperature 0.7 + 1e-7, top_k 0, top_p 1, exactly 64 new tokens,
                  KV cache, output_scores) on 8 fresh 64-token prompts; old log-probs = log_softmax of the
                  sampling scores (the temperature-scaled logits) at the sampled ids
  ref_forward     ref(query_response).logits[:, ctx-1:-1] / (0.7 + 1e-7) -> log-probs of the response
  value_forward   value.score(value.trunk(query_response))[:, ctx-1:-1]  (value model = trunk + score head)
  reward_forward  reward.score(reward.trunk(query_response)) at the last token (reward model = trunk + score)
  gae             kl = logprobs - ref_logprobs (k1); rewards = -kl_coef * kl, + score at the last token;
                  GAE gamma 1, lambda 0.95 backwards over the response; returns = advantages + values;
                  advantages whitened (mean 0, unbiased var, rsqrt(var + 1e-8)); no reward whitening
  update          1 epoch, a random permutation split into 2 minibatches of 4; per minibatch: policy forward
                  (logits / temperature -> new log-probs) and value forward, ratio = exp(new - old),
                  pg_loss = mean(max(-A * ratio, -A * clamp(ratio, 0.8, 1.2))),
                  vf_loss = 0.5 * mean(max((v - R)^2, (clamp(v, v_old - 0.2, v_old + 0.2) - R)^2)),
                  loss = pg_loss + 0.1 * vf_loss, backward, AdamW(lr 3e-6) step over policy + value, zero_grad

Four separate models: policy and reference (two instances with the same weights, as TRL's create_reference_model
copies the policy), reward and value (two instances of one trunk + score head, as both usually start from the
reward model). Policy and value are trained; reference and reward are frozen.

With --device cuda the four models, the AdamW state and the prompts (drawn on the CPU, then moved) live on the GPU;
every phase ends with torch.cuda.synchronize() before its clock is read. Sampling then uses the CUDA generator (same
seed), so the sampled responses (and the minibatch permutation that follows) differ from the CPU run's.

  .venv/bin/python bench/reference/ppo.py [--model tiny-llama-8k|smollm2] [--threads N] [--attn sdpa|eager]
                                          [--device cpu|cuda] [--warmup 2] [--iters 8]
"""

from __future__ import annotations

import common  # noqa: I001  (first: sets OMP_WAIT_POLICY before torch loads libgomp)

import copy
import statistics
import time

import torch
from transformers import GenerationConfig

BATCH, PROMPT_LEN, RESPONSE_LEN = 8, 64, 64
TEMPERATURE = 0.7
KL_COEF = 0.05
CLIPRANGE = 0.2
CLIPRANGE_VALUE = 0.2
VF_COEF = 0.1
GAMMA = 1.0
LAM = 0.95
LR = 3e-6
NUM_MINI_BATCHES = 2
PHASES = ("generate", "ref_forward", "value_forward", "reward_forward", "gae", "update")


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """log_softmax(logits)[..., index] (TRL's selective_log_softmax for float32)."""
    return torch.gather(logits, -1, index.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def whiten(values: torch.Tensor) -> torch.Tensor:
    """TRL's masked_whiten with an all-true mask: unbiased variance, shift_mean=True."""
    mean = values.mean()
    var = ((values - mean) ** 2).mean() * (values.numel() / (values.numel() - 1))
    return (values - mean) * torch.rsqrt(var + 1e-8)


def trl_version() -> str | None:
    try:
        import trl  # noqa: PLC0415

        return trl.__version__
    except ImportError:
        return None


def main() -> None:
    ap = common.base_args(__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=8)
    args = ap.parse_args()
    threads = common.setup_threads(args.threads)
    dev = common.device(args)

    policy = common.causal_lm(args.model, args.attn, seed=common.WEIGHT_SEED).to(dev)
    policy.generation_config.eos_token_id = None  # no stop token, no EOS suppression (see gen.py)
    ref = copy.deepcopy(policy)
    reward = common.score_model(args.model, args.attn, seed=common.WEIGHT_SEED + 1).to(dev)
    value = copy.deepcopy(reward)
    for m in (ref, reward):
        m.eval().requires_grad_(False)
    policy.train()
    value.train()
    opt = torch.optim.AdamW(
        list(policy.parameters()) + list(value.parameters()), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
    )
    temp = TEMPERATURE + 1e-7
    gen_cfg = GenerationConfig(
        do_sample=True,
        temperature=temp,
        top_k=0,
        top_p=1.0,
        min_new_tokens=RESPONSE_LEN,
        max_new_tokens=RESPONSE_LEN,
        eos_token_id=None,
        pad_token_id=0,
        bos_token_id=None,
        use_cache=True,
    )
    vocab = policy.config.vocab_size
    data_gen = torch.Generator().manual_seed(common.DATA_SEED)
    torch.manual_seed(common.DATA_SEED)  # sampling + minibatch permutation
    ctx = PROMPT_LEN
    mini = BATCH // NUM_MINI_BATCHES

    def value_of(model, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] scalar head output at every position (TRL: score(backbone(...).hidden_states[-1]))."""
        hidden = model.model(input_ids=ids).last_hidden_state
        return model.score(hidden).squeeze(-1)

    def iteration() -> tuple[dict, dict]:
        t = {}
        diag = {}
        queries = torch.randint(common.FIRST_ID, vocab, (BATCH, PROMPT_LEN), generator=data_gen).to(dev)

        common.sync(dev)
        t0 = time.perf_counter()
        with torch.no_grad():
            out = policy.generate(
                input_ids=queries,
                attention_mask=torch.ones_like(queries),
                generation_config=gen_cfg,
                return_dict_in_generate=True,
                output_scores=True,
            )
            query_responses = out.sequences
            responses = query_responses[:, ctx:]
            assert responses.shape == (BATCH, RESPONSE_LEN), responses.shape
            logprobs = selective_log_softmax(torch.stack(out.scores, 1), responses)
            del out
        common.sync(dev)
        t["generate"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with torch.no_grad():
            ref_logits = ref(input_ids=query_responses).logits[:, ctx - 1 : -1]
            ref_logits /= temp
            ref_logprobs = selective_log_softmax(ref_logits, responses)
            del ref_logits
        common.sync(dev)
        t["ref_forward"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with torch.no_grad():
            values = value_of(value, query_responses)[:, ctx - 1 : -1]
        common.sync(dev)
        t["value_forward"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with torch.no_grad():
            scores = value_of(reward, query_responses)[:, -1]  # no padding: the last token is the last non-pad
        common.sync(dev)
        t["reward_forward"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        with torch.no_grad():
            kl = logprobs - ref_logprobs  # k1: -(ref - logprob)
            non_score_reward = -KL_COEF * kl
            rewards = non_score_reward.clone()
            rewards[:, -1] += scores
            lastgaelam = 0.0
            advantages_reversed = []
            for i in reversed(range(RESPONSE_LEN)):
                nextvalues = values[:, i + 1] if i < RESPONSE_LEN - 1 else 0.0
                delta = rewards[:, i] + GAMMA * nextvalues - values[:, i]
                lastgaelam = delta + GAMMA * LAM * lastgaelam
                advantages_reversed.append(lastgaelam)
            advantages = torch.stack(advantages_reversed[::-1], dim=1)
            returns = advantages + values
            advantages = whiten(advantages)
        common.sync(dev)
        t["gae"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        perm = torch.randperm(BATCH).to(dev)  # drawn on the CPU (global generator), as before
        stats = []
        for start in range(0, BATCH, mini):
            idx = perm[start : start + mini]
            mb_qr, mb_resp = query_responses[idx], responses[idx]
            mb_adv, mb_logprobs, mb_ret, mb_values = advantages[idx], logprobs[idx], returns[idx], values[idx]
            logits = policy(input_ids=mb_qr).logits[:, ctx - 1 : -1]
            logits = logits / temp
            new_logprobs = selective_log_softmax(logits, mb_resp)
            vpred = value_of(value, mb_qr)[:, ctx - 1 : -1]
            vpredclipped = torch.clamp(vpred, mb_values - CLIPRANGE_VALUE, mb_values + CLIPRANGE_VALUE)
            vf_losses1 = torch.square(vpred - mb_ret)
            vf_losses2 = torch.square(vpredclipped - mb_ret)
            vf_loss = 0.5 * torch.max(vf_losses1, vf_losses2).mean()
            logprobs_diff = new_logprobs - mb_logprobs
            ratio = torch.exp(logprobs_diff)
            pg_losses = -mb_adv * ratio
            pg_losses2 = -mb_adv * torch.clamp(ratio, 1.0 - CLIPRANGE, 1.0 + CLIPRANGE)
            pg_loss = torch.max(pg_losses, pg_losses2).mean()
            loss = pg_loss + VF_COEF * vf_loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            stats.append((pg_loss.item(), vf_loss.item(), logprobs_diff.detach().abs().max().item()))
        common.sync(dev)
        t["update"] = time.perf_counter() - t0

        diag["score_mean"] = scores.mean().item()
        diag["kl_mean"] = kl.sum(1).mean().item()
        diag["max_abs_old_minus_ref_logprob"] = kl.abs().max().item()
        diag["pg_loss"] = statistics.fmean(s[0] for s in stats)
        diag["vf_loss"] = statistics.fmean(s[1] for s in stats)
        # minibatch 1 runs before any optimizer step: its new log-probs must equal the sampling log-probs
        diag["first_minibatch_max_abs_logratio"] = stats[0][2]
        return t, diag

    totals, phases, diags = [], {p: [] for p in PHASES}, []
    for it in range(args.warmup + args.iters):
        t0 = time.perf_counter()
        t, diag = iteration()
        common.sync(dev)
        dt = time.perf_counter() - t0
        diags.append(diag)
        if it >= args.warmup:
            totals.append(dt)
            for p in PHASES:
                phases[p].append(t[p])

    first, last = diags[0], diags[-1]
    # iteration 0: policy == reference, so the old (sampling) and reference log-probs must agree closely, and the
    # first minibatch's recomputed log-probs must match the sampling ones (no update has happened yet)
    assert first["max_abs_old_minus_ref_logprob"] < 1e-3, first
    assert first["first_minibatch_max_abs_logratio"] < 1e-3, first
    s = common.summary(totals)
    common.emit(
        {
            "bench": "ppo",
            **common.common_fields(args, threads),
            **s,
            **common.memory_fields(dev),
            "episodes_per_s": round(BATCH / s["median_s"], 4),
            "phases_s": {p: round(statistics.median(v), 6) for p, v in phases.items()},
            "batch": BATCH,
            "prompt_len": PROMPT_LEN,
            "new_tokens": RESPONSE_LEN,
            "warmup": args.warmup,
            "iters": args.iters,
            "times_s": [round(x, 6) for x in totals],
            "hparams": {
                "temperature": TEMPERATURE,
                "kl_coef": KL_COEF,
                "kl_estimator": "k1",
                "cliprange": CLIPRANGE,
                "cliprange_value": CLIPRANGE_VALUE,
                "vf_coef": VF_COEF,
                "gamma": GAMMA,
                "lam": LAM,
                "lr": LR,
                "num_ppo_epochs": 1,
                "num_mini_batches": NUM_MINI_BATCHES,
                "whiten_rewards": False,
            },
            "formulas": "TRL PPOTrainer.train() (trl/experimental/ppo/ppo_trainer.py), reimplemented",
            "trl": trl_version(),
            "check_iter0": {k: first[k] for k in ("max_abs_old_minus_ref_logprob", "first_minibatch_max_abs_logratio")},
            "last_iter": {k: round(v, 6) for k, v in last.items()},
        }
    )


if __name__ == "__main__":
    main()
