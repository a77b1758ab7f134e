#!/usr/bin/env python3
"""Concurrent clients against a running `alignbox serve` (/v1/chat/completions, streamed): aggregate tokens/s,
and the median and p90 time to first token, for 1 and N clients. Standard library only.

  python3 bench/serve-clients.py --url http://127.0.0.1:PORT --key abx-... [--clients 16] [--tokens 64]

One key serves every client: start the server with `--api-per-key` at least the client count (default 8).
Each client sends the same number of requests (`--requests`), each a different prompt, greedy, `max_tokens`
tokens (answers can stop early at EOS: the tokens counted are the ones streamed). Prints one JSON line per
client count.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.error
import urllib.request

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a refrigerator works.",
    "List ten uses for a paperclip and explain each.",
    "Describe the water cycle for a child.",
    "What are the rules of chess? Explain them in detail.",
    "Write a poem about autumn leaves.",
    "Give a recipe for bread with every step.",
    "Explain the difference between weather and climate.",
]


def one(url: str, key: str, prompt: str, tokens: int) -> tuple[float, int, float]:
    """(seconds to the first content chunk, content chunks, total seconds) of one streamed request."""
    body = json.dumps(
        {"model": "current", "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
         "temperature": 0, "stream": True}
    ).encode()
    req = urllib.request.Request(
        url + "/v1/chat/completions", body, {"authorization": f"Bearer {key}", "content-type": "application/json"}
    )
    t0 = time.perf_counter()
    first, chunks = None, 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"]
            if delta.get("content"):
                chunks += 1
                if first is None:
                    first = time.perf_counter() - t0
    return (first if first is not None else float("nan"), chunks, time.perf_counter() - t0)


def run(url: str, key: str, clients: int, requests: int, tokens: int) -> dict:
    results: list[tuple[float, int, float]] = []
    lock = threading.Lock()

    refused = []

    def client(c: int) -> None:
        for i in range(requests):
            try:
                r = one(url, key, f"{PROMPTS[(c + i) % len(PROMPTS)]} (#{c}.{i})", tokens)
            except urllib.error.HTTPError as e:  # 429/503: admission refused it
                with lock:
                    refused.append(e.code)
                continue
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttft = sorted(r[0] for r in results)
    chunks = sum(r[1] for r in results)
    return {
        "bench": "serve_clients",
        "clients": clients,
        "requests": len(results),
        "refused": len(refused),
        "max_tokens": tokens,
        "wall_s": round(wall, 3),
        "streamed_chunks": chunks,
        "chunks_per_s": round(chunks / wall, 2),
        "ttft_p50_s": round(statistics.median(ttft), 3),
        "ttft_p90_s": round(ttft[int(0.9 * (len(ttft) - 1))], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    for n in (1, args.clients):
        print(json.dumps(run(args.url, args.key, n, args.requests, args.tokens)), flush=True)


if __name__ == "__main__":
    main()
