#!/usr/bin/env python3
"""What a 7B judge costs on a GPU: a causal LM with Qwen2.5-7B's shape and RANDOM weights (no 7B weights needed;
the cost at fixed prompt and answer lengths does not depend on the weights), timed on the judge workloads.

    python bench/bench_judge_gpu.py [--out gpu.json]

Answer lengths are forced (min_new_tokens = max_new_tokens); each workload is run twice and the second is timed.
The figures in docs/benchmarks.md ("A 7B-shaped judge on a GPU") come from this script on one H200.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768,
                         eos_token_id=151643, pad_token_id=151643)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()
    print(f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters", flush=True)

    def run(batch: int, prompt: int, new: int, repeats: int = 2) -> float:
        ids = torch.randint(0, 150000, (batch, prompt), device="cuda")
        mask = torch.ones_like(ids)
        for _ in range(repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.inference_mode():
                if new:
                    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new,
                                   do_sample=False)
                else:
                    model(input_ids=ids, attention_mask=mask, logits_to_keep=1)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        return seconds

    results = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    for name, batch, prompt, new, passes in (("clair", 32, 260, 64, 1), ("attribute_extraction", 32, 230, 128, 1),
                                             ("pairwise", 32, 380, 4, 1), ("fleur_lm_part", 16, 1800, 0, 2),
                                             ("clair_b1", 1, 260, 64, 1)):
        seconds = run(batch, prompt, new) * passes
        results[name] = {"batch": batch, "prompt_tokens": prompt, "new_tokens": new, "passes": passes,
                         "s_per_1000": round(1000 * seconds / batch, 2)}
        print(name, results[name], flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
