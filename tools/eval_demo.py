#!/usr/bin/env python3
"""Accuracy of the demo model's greedy answers in transformers, on held-out scenes.

    /work/venv/bin/python tools/eval_demo.py [--ckpt models/local/demo-hf] [--dtype float32]
        [--seed 20261206] [--count 100] [--system] [--json answers.json]

The held-out scenes are generated here (tools/demo/scenes.py) with a seed that training never
uses (training draws its scenes from seeds 1001 and 1002, see train_demo.py), and are never
written to disk unless --images-dir asks. Each scene gets one canonical question of every kind;
an answer counts as right when the decoded greedy text equals the expected answer exactly.
Prints the accuracy per question kind and overall; --json writes every question with the
expected and the transformers answer (the reference the Rust runtime's test compares with).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo"))

import model as demo  # noqa: E402
import scenes  # noqa: E402

HELD_OUT_SEED = 20261206


def evaluate(args):
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "float16": torch.float16}[args.dtype]
    model = LlavaForConditionalGeneration.from_pretrained(args.ckpt, dtype=dtype).eval()
    processor = AutoProcessor.from_pretrained(args.ckpt)
    items = []
    t0 = time.time()
    for i in range(args.count):
        scene = scenes.make_scene(args.seed, i)
        image = scenes.render(scene)
        name = f"scene-{i:03d}.png"
        if args.images_dir:
            os.makedirs(args.images_dir, exist_ok=True)
            image.save(os.path.join(args.images_dir, name))
        for kind, question, expected in scenes.eval_questions(scene):
            msgs = []
            if args.system:
                msgs.append({"role": "system", "content": [{"type": "text", "text": demo.SYSTEM_PROMPT}]})
            msgs.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]})
            prompt = processor.apply_chat_template(msgs, add_generation_prompt=True)
            assert prompt == demo.prompt_for(question, args.system), prompt
            inputs = processor(text=prompt, images=image, return_tensors="pt")
            record = {"image": name, "kind": kind, "question": question, "answer": expected}
            items.append((record, inputs["input_ids"][0], inputs["pixel_values"][0]))
    # Prompts of equal token count run as one batch: no padding, so each answer is the one the
    # model gives to that prompt alone.
    by_len = {}
    for it in items:
        by_len.setdefault(len(it[1]), []).append(it)
    eos = processor.tokenizer.eos_token_id
    for n, group in sorted(by_len.items()):
        for k in range(0, len(group), args.batch):
            chunk = group[k : k + args.batch]
            ids = torch.stack([c[1] for c in chunk])
            pixels = torch.stack([c[2] for c in chunk]).to(dtype)
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    pixel_values=pixels,
                    do_sample=False,
                    max_new_tokens=32,
                    pad_token_id=demo.PAD_TOKEN_ID,
                )
            for (record, _, _), row in zip(chunk, out[:, n:].tolist()):
                new = row[: row.index(eos) + 1] if eos in row else row
                record["transformers"] = processor.tokenizer.decode(new, skip_special_tokens=True).strip()
                record["transformers_ids"] = new
    records = [it[0] for it in items]
    per_kind = {}
    for r in records:
        ok = r["transformers"] == r["answer"]
        right, total = per_kind.get(r["kind"], (0, 0))
        per_kind[r["kind"]] = (right + ok, total + 1)
        if not ok and args.verbose:
            print(f"  {r['image']} {r['question']!r}: expected {r['answer']!r}, got {r['transformers']!r}")
    right = sum(r for r, _ in per_kind.values())
    total = sum(t for _, t in per_kind.values())
    print(f"checkpoint {args.ckpt}, {args.dtype}, held-out seed {args.seed}, {args.count} scenes, "
          f"system prompt {'on' if args.system else 'off'}, {time.time() - t0:.0f} s")
    for kind in scenes.KINDS:
        r, t = per_kind[kind]
        print(f"  {kind:<11} {r:4d}/{t:<4d} {100 * r / t:6.1f}%")
    print(f"  {'overall':<11} {right:4d}/{total:<4d} {100 * right / total:6.1f}%")
    if args.json:
        summary = {
            "checkpoint": os.path.basename(os.path.normpath(args.ckpt)),
            "dtype": args.dtype,
            "seed": args.seed,
            "count": args.count,
            "system_prompt": args.system,
            "accuracy": {k: per_kind[k][0] / per_kind[k][1] for k in scenes.KINDS} | {"overall": right / total},
            "questions": records,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
    return right / total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default=demo.DEFAULT_OUT)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    ap.add_argument("--count", type=int, default=100, help="number of held-out scenes (6 questions each)")
    ap.add_argument("--system", action="store_true", help="put LLaVA's system prompt before the question")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64, help="questions per generate call")
    ap.add_argument("--json", help="write every question with the transformers answer here")
    ap.add_argument("--images-dir", help="also save the held-out images here (never commit them)")
    ap.add_argument("--verbose", action="store_true", help="print every wrong answer")
    evaluate(ap.parse_args())


if __name__ == "__main__":
    main()
