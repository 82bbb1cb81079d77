#!/usr/bin/env python3
"""llava-rs against llama.cpp, side by side on the same files and threads (issue 7).

Runs llama.cpp's `llama-bench` and `llava bench` on each language model (pp and tg tests), and
llama.cpp's `llama-mtmd-cli` and `llava bench --image-encode` on each mmproj, alternating the two
runtimes test by test so that both see the same machine state, and prints a Markdown table of
tokens/s (images/s for CLIP) with the ratio ours / llama.cpp. Nothing here builds llama.cpp:
give it a build you made yourself (see BENCHMARKS.md for the flags used on the dev machine).

    tools/bench_vs_llama_cpp.py --llama-cpp-bin LLAMA_CPP/build/bin \\
        --model models/local/llava-1.5-7b-random-q4_k_m.gguf --model models/local/llava-1.5-7b-random-q4_0.gguf \\
        --mmproj models/local/mmproj-llava-1.5-7b-random-f16.gguf --mmproj-llm models/local/llava-1.5-7b-random-q4_k_m.gguf \\
        -t 2 -r 5

Also prints the machine's two-thread memory read bandwidth bound for decode when --bandwidth-gbs
is given (measure it with `cargo bench --bench kernels -- bandwidth`).

With --next-mmproj (a LLaVA-NeXT mmproj, e.g. `tools/make_random_mmproj.py --next`) it also times
one whole NeXT job with each runtime's command-line tool: load, one 672 × 672 image (the 2 × 2
grid: 2928 image tokens), and a 32-token answer, wall time and peak RSS (GNU time). With
--startup it times load + a 1-token reply to a short text prompt. Rates are medians of the
repetitions' samples (llama-bench's `samples_ts`, ours alike).
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_ENCODE_RE = re.compile(r"(?:image slice encoded in|mtmd batch encoding done in)\s+(\d+)\s*ms")


def run(cmd):
    """Runs `cmd` under GNU time; returns (completed process, wall seconds, peak RSS in MiB)."""
    print("$ " + " ".join(str(c) for c in cmd), file=sys.stderr, flush=True)
    with tempfile.NamedTemporaryFile("r") as stats:
        out = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", stats.name, *map(str, cmd)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"failed ({out.returncode}): {' '.join(map(str, cmd))}\n{out.stderr[-4000:]}")
        wall, rss_kib = stats.read().split()[-2:]
    out.wall_s, out.rss_mib = float(wall), int(rss_kib) / 1024
    return out


def median_sd(samples):
    return statistics.median(samples), (statistics.stdev(samples) if len(samples) > 1 else 0.0)


def llama_bench(bin_dir, model, test, n, threads, reps, extra=()):
    p, g = (n, 0) if test == "pp" else (0, n)
    out = run([bin_dir / "llama-bench", "-m", model, "-p", str(p), "-n", str(g), "-t", str(threads),
               "-r", str(reps), "-o", "json", *extra])
    rows = json.loads(out.stdout)
    return (*median_sd(rows[0]["samples_ts"]), out.rss_mib)


def llava_bench(llava, model, test, n, threads, reps, load=()):
    p, g = (n, 0) if test == "pp" else (0, n)
    out = run([llava, "bench", "-m", model, "-p", str(p), "-n", str(g), "-t", str(threads),
               "-r", str(reps), "--json", *load])
    rows = json.loads(out.stdout)
    return (*median_sd(rows[0]["samples_ts"]), out.rss_mib)


def mtmd_image(bin_dir, llm, mmproj, image, threads, reps):
    rates, rss = [], 0.0
    for i in range(reps + 1):  # the first run warms up
        out = run([bin_dir / "llama-mtmd-cli", "-m", llm, "--mmproj", mmproj, "--image", image,
                   "-p", "Describe the image.", "-n", "1", "-t", str(threads), "--temp", "0",
                   "--chat-template", "vicuna"])
        m = IMAGE_ENCODE_RE.findall(out.stdout + out.stderr)
        if not m:
            sys.exit("llama-mtmd-cli printed no image encode time")
        if i > 0:
            rates.append(1000.0 / max(float(m[-1]), 0.5))  # llama.cpp prints whole ms
        rss = max(rss, out.rss_mib)
    return (*median_sd(rates), rss)


def llava_image(llava, mmproj, threads, reps):
    out = run([llava, "bench", "--mmproj", mmproj, "--image-encode", "-p", "0", "-n", "0",
               "-t", str(threads), "-r", str(reps), "--json"])
    row = [r for r in json.loads(out.stdout) if r["test"] == "image"][0]
    return (*median_sd(row["samples_ts"]), out.rss_mib)


LLAMA_EVAL_RE = re.compile(r"eval time =\s*[\d.]+ ms /\s*(\d+) runs")
LLAVA_GEN_RE = re.compile(r"generation (\d+) tokens")


def next_job(cmd, count_re, reps):
    """Median wall time (s) of `reps` runs of one whole job, its spread, peak RSS, and the
    tokens decoded one by one (llama.cpp counts "runs": the first token comes with the prompt)."""
    walls, rss, generated = [], 0.0, None
    for _ in range(reps):
        out = run(cmd)
        walls.append(out.wall_s)
        rss = max(rss, out.rss_mib)
        counts = count_re.findall(out.stdout + out.stderr)
        generated = int(counts[-1]) if counts else None
    return (*median_sd(walls), rss, generated)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp-bin", type=Path, required=True, help="llama.cpp's build/bin")
    ap.add_argument("--llava", type=Path, default=ROOT / "target" / "release" / "llava")
    ap.add_argument("--model", type=Path, action="append", default=[], help="language model GGUF (repeatable)")
    ap.add_argument("--mmproj", type=Path, action="append", default=[], help="mmproj GGUF (repeatable)")
    ap.add_argument("--mmproj-llm", type=Path, help="a language model matching the mmproj (llama-mtmd-cli needs one)")
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--repetitions", type=int, default=5)
    ap.add_argument("--bandwidth-gbs", type=float, help="two-thread read bandwidth, for the decode bound")
    ap.add_argument("--next-mmproj", type=Path, help="LLaVA-NeXT mmproj: time one 672x672 image + 32 tokens")
    ap.add_argument("--startup", action="store_true", help="time load + a 1-token reply per --model")
    ap.add_argument("--llava-load", choices=["auto", "memory", "mmap"],
                    help="llava's --load for the language model (default: llava's own, auto)")
    ap.add_argument("--no-repack", action="store_true",
                    help="both in ggml's weight layout: llava's --no-repack, llama-bench's --repack 0 "
                         "(llama-completion's --no-repack for --startup)")
    args = ap.parse_args()
    load = ["--load", args.llava_load] if args.llava_load else []
    load += ["--no-repack"] if args.no_repack else []
    theirs_extra = ["--repack", "0"] if args.no_repack else []
    if not args.llava.exists():
        sys.exit(f"{args.llava} is missing: cargo build --release")
    if args.mmproj and not args.mmproj_llm:
        sys.exit("--mmproj needs --mmproj-llm (llama-mtmd-cli loads a language model too)")

    rows = []
    for model in args.model:
        for test, n in (("pp", args.n_prompt), ("tg", args.n_gen)):
            if n == 0:  # e.g. -p 0 -n 0 with --next-mmproj: the NeXT job only
                continue
            theirs = llama_bench(args.llama_cpp_bin, model, test, n, args.threads, args.repetitions,
                                 theirs_extra)
            ours = llava_bench(args.llava, model, test, n, args.threads, args.repetitions, load)
            extra = ""
            if test == "tg" and args.bandwidth_gbs:
                bound = args.bandwidth_gbs * 1e9 / model.stat().st_size
                extra = f"{ours[0] / bound:.0%} of {bound:.2f} t/s"
            rows.append((model.name, f"{test}{n}", theirs, ours, extra))
    if args.mmproj:
        with tempfile.TemporaryDirectory() as tmp:
            image = Path(tmp) / "bench.png"
            from PIL import Image  # only needed for the image test

            Image.new("RGB", (336, 336), (120, 60, 200)).save(image)
            for mmproj in args.mmproj:
                theirs = mtmd_image(args.llama_cpp_bin, args.mmproj_llm, mmproj, image, args.threads, args.repetitions)
                ours = llava_image(args.llava, mmproj, args.threads, args.repetitions)
                rows.append((mmproj.name, "image", theirs, ours, ""))

    jobs = []
    if args.startup:
        for model in args.model:
            theirs = next_job([args.llama_cpp_bin / "llama-completion", "-m", model, "-p", "Hello", "-n", "1",
                               "-t", str(args.threads), "--temp", "0", "-no-cnv",
                               *(["--no-repack"] if args.no_repack else [])], LLAMA_EVAL_RE, args.repetitions)
            ours = next_job([args.llava, "-m", model, "-p", "Hello", "-n", "1", "-t", str(args.threads),
                             "--temp", "0", "--chat-template", "raw", *load], LLAVA_GEN_RE, args.repetitions)
            jobs.append((model.name, "start-up (load + 1 token)", theirs, ours))
    if args.next_mmproj:
        if not args.model:
            sys.exit("--next-mmproj needs a --model (the first is used)")
        with tempfile.TemporaryDirectory() as tmp:
            from PIL import Image

            image = Path(tmp) / "next-672.png"
            Image.radial_gradient("L").resize((672, 672)).convert("RGB").save(image)
            common = ["-m", args.model[0], "--mmproj", args.next_mmproj, "--image", image,
                      "-p", "Describe the image in detail.", "-n", "32", "-c", "4096",
                      "-t", str(args.threads), "--temp", "0", "--chat-template", "vicuna"]
            # -lv 4: llama-mtmd-cli prints libllama's eval counts only at that verbosity.
            theirs = next_job([args.llama_cpp_bin / "llama-mtmd-cli", *common, "-lv", "4"], LLAMA_EVAL_RE,
                              args.repetitions)
            ours = next_job([args.llava, *common], LLAVA_GEN_RE, args.repetitions)
            jobs.append((f"{args.model[0].name} + {args.next_mmproj.name}", "NeXT 672×672 + 32 tokens", theirs, ours))

    print("| file | test | llama.cpp | llava-rs | ours / llama.cpp | peak RSS llama.cpp / ours (MiB) | decode bound |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, test, (t_med, t_sd, t_rss), (o_med, o_sd, o_rss), extra in rows:
        print(f"| {name} | {test} | {t_med:.2f} ± {t_sd:.2f} | {o_med:.2f} ± {o_sd:.2f} | "
              f"{o_med / t_med:.2f}× | {t_rss:.0f} / {o_rss:.0f} ({o_rss / t_rss:.2f}×) | {extra} |")
    for name, test, (t_wall, t_sd, t_rss, t_gen), (o_wall, o_sd, o_rss, o_gen) in jobs:
        print(f"| {name} | {test}: wall s (tokens generated {t_gen} / {o_gen}) | {t_wall:.2f} ± {t_sd:.2f} | "
              f"{o_wall:.2f} ± {o_sd:.2f} | {t_wall / o_wall:.2f}× faster | {t_rss:.0f} / {o_rss:.0f} "
              f"({o_rss / t_rss:.2f}×) | |")
    print(f"\n{args.threads} threads, {args.repetitions} repetitions, medians ± standard deviation; "
          "pp/tg rows are tokens/s, image rows images/s.")

if __name__ == "__main__":
    main()
