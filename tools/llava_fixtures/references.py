"""Reference outputs: transformers run on the saved checkpoints, with cross-checks."""

import os
import shutil
import sys

import numpy as np

from .common import LLAVA_DIR, N_GREEDY, dir_size, log, save_npy, write_json
from .definitions import IMAGE_QUESTION, TEXT_QUESTION, TWO_IMAGE_QUESTION
from .hf_checkpoint import model_class
from .images import expand2square, load_image

def prompt_for(processor, question, n_images):
    content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": question}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False)


def vision_tiles(model, inputs, is_next):
    """Every tile the vision tower sees, in order, as [n_tiles, 3, s, s]."""
    pv = inputs["pixel_values"]
    if not is_next:
        return pv
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    counts = [
        image_size_to_num_patches(
            image_size=sz, grid_pinpoints=model.config.image_grid_pinpoints, patch_size=model.config.vision_config.image_size
        )
        for sz in inputs["image_sizes"]
    ]
    return torch_cat([pv[i, :c] for i, c in enumerate(counts)])


def torch_cat(xs):
    import torch

    return torch.cat(xs, dim=0)


def processor_dir(processor):
    return processor.fixture_dir


def top_gap(logits_row):
    import torch

    top = torch.topk(logits_row, 2).values
    return float(top[0] - top[1])


def forward_full(model, inputs, ids):
    import torch

    kw = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids), **kw).logits[0, -1]


def run_case(model, processor, fx, case_name, image_names, ref_dir, pad_processor=None):
    """One reference case. With pad_processor (the original layout's CLIP image processor), the
    images are first converted to RGB and padded to a square with the mean colour, as the original
    LLaVA does for image_aspect_ratio = pad."""
    import torch
    from transformers import GenerationConfig

    is_next = fx["arch"] == "llava_next"
    question = {0: fx.get("text_question", TEXT_QUESTION), 1: IMAGE_QUESTION}.get(len(image_names), TWO_IMAGE_QUESTION)
    prompt = prompt_for(processor, question, len(image_names))
    images = [load_image(n) for n in image_names]
    pad_pixels = None
    if pad_processor is not None:
        background = tuple(int(x * 255) for x in pad_processor.image_mean)
        images = [expand2square(im.convert("RGB"), background) for im in images]
        pad_pixels = pad_processor(images=images, return_tensors="pt")["pixel_values"]
    inputs = processor(text=prompt, images=images or None, return_tensors="pt")
    if pad_pixels is not None:
        assert torch.equal(inputs["pixel_values"], pad_pixels), f"{case_name}: the two CLIP processors disagree"
    n_vocab = fx.get("n_vocab", model.config.text_config.vocab_size)
    ids = inputs["input_ids"]
    image_token = model.config.image_token_id
    if not images:
        # the Rust side tokenizes with SentencePiece rules from the GGUF vocab: the processor's
        # tokens must be exactly BOS + SentencePiece's for a text-only prompt
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=os.path.join(processor_dir(processor), "tokenizer.model"))
        want = [1] + sp.encode(prompt)
        assert ids[0].tolist() == want, f"{case_name}: transformers {ids[0].tolist()} != sentencepiece {want}"
    n_img_tok = int((ids == image_token).sum())

    captured = {}

    def grab(_mod, _args, kwargs):
        captured["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()

    hook = model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True)
    hook.remove()
    logits = out.logits[0]
    hidden = out.hidden_states[-1][0]
    # hidden must be the final RMSNorm output: the LM head applied to it gives the logits
    re_logits = model.lm_head(hidden)
    assert torch.allclose(re_logits, logits, atol=1e-4, rtol=1e-5), f"{case_name}: hidden is not the final norm output"
    files = {}

    def put(key, arr):
        fname = f"{case_name}.{key}.npy"
        save_npy(os.path.join(ref_dir, fname), arr)
        files[key] = fname

    put("input_ids", ids[0].numpy().astype(np.int32))
    entry = {"name": case_name, "prompt": prompt, "images": [f"images/{n}" for n in image_names]}
    if pad_pixels is not None:
        entry["preprocess"] = f"RGB, pad to square with {background} (image centred), then the CLIP processor"
    if images:
        pv = inputs["pixel_values"]
        put("pixel_values", pv.numpy().astype(np.float32))
        if is_next:
            put("image_sizes", inputs["image_sizes"].numpy().astype(np.int32))
        tiles = vision_tiles(model, inputs, is_next)
        with torch.no_grad():
            vout = model.model.vision_tower(tiles, output_hidden_states=True)
        feats = vout.hidden_states[model.config.vision_feature_layer][:, 1:]
        put("image_features", feats.numpy().astype(np.float32))
        emb = captured["inputs_embeds"][0]
        mask = ids[0] == image_token
        image_embeds = emb[mask]
        # cross-check with the model's own feature path
        with torch.no_grad():
            kw = {"image_sizes": inputs["image_sizes"]} if is_next else {}
            own = model.model.get_image_features(pixel_values=inputs["pixel_values"], **kw).pooler_output
        own = torch.cat([o.reshape(-1, o.shape[-1]) for o in own], dim=0)
        assert torch.equal(own, image_embeds), f"{case_name}: spliced embeddings differ from get_image_features"
        # projector applied to the stored features gives the base-tile rows
        with torch.no_grad():
            proj = model.model.multi_modal_projector(feats)
        assert torch.allclose(proj[0], image_embeds[: proj.shape[1]], atol=1e-5), f"{case_name}: projector mismatch"
        # re-run the language model from text embeddings + the stored image embeddings
        with torch.no_grad():
            rebuilt = model.get_input_embeddings()(ids[0]).clone()
            rebuilt[mask] = image_embeds
            lm = model.model.language_model(inputs_embeds=rebuilt[None])
            re2 = model.lm_head(lm.last_hidden_state[0])
        assert torch.allclose(re2, logits, atol=1e-4, rtol=1e-5), f"{case_name}: logits from image_embeds differ"
        put("image_embeds", image_embeds.numpy().astype(np.float32))
        put("logits", logits[-1:, :n_vocab].numpy().astype(np.float32))
        entry["n_image_tokens"] = n_img_tok
        entry["n_tiles"] = int(tiles.shape[0])
    else:
        put("logits", logits[:, :n_vocab].numpy().astype(np.float32))
    put("hidden", hidden.numpy().astype(np.float32))

    # greedy: argmax stepping on full re-computation (no cache), compared with generate()
    seq = ids
    gaps = []
    greedy = []
    for _ in range(N_GREEDY):
        last = forward_full(model, inputs, seq)
        gaps.append(top_gap(last))
        nxt = int(torch.argmax(last))
        greedy.append(nxt)
        seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    gc = GenerationConfig(do_sample=False, max_new_tokens=N_GREEDY, min_new_tokens=0, eos_token_id=None, pad_token_id=32001)
    with torch.no_grad():
        gen = model.generate(**inputs, generation_config=gc)
    gen_tokens = gen[0, ids.shape[1] :].tolist()
    assert gen_tokens == greedy, f"{case_name}: generate() {gen_tokens} != argmax stepping {greedy}"
    assert max(greedy) < 32000, f"{case_name}: greedy produced an added token: {greedy}"
    put("greedy", np.array(greedy, dtype=np.int32))
    entry.update(
        n_tokens=int(ids.shape[1]),
        greedy_text=processor.tokenizer.decode(greedy),
        greedy_min_top2_gap=round(min(gaps), 4),
        files=files,
    )
    log(
        f"  {case_name}: {ids.shape[1]} tokens ({n_img_tok} image), greedy {greedy}\n"
        f"    top1-top2 gaps {[round(g, 2) for g in gaps]}"
    )
    return entry


def make_references(name, fx, ckpt):
    import torch
    from transformers import AutoProcessor

    ref_dir = os.path.join(LLAVA_DIR, name + ".ref")
    if os.path.exists(ref_dir):
        shutil.rmtree(ref_dir)
    os.makedirs(ref_dir)
    model, info = model_class(fx).from_pretrained(ckpt, dtype=torch.float32, output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"{name}: loading the checkpoint back: {bad}"
    processor = AutoProcessor.from_pretrained(ckpt)
    processor.fixture_dir = ckpt
    assert type(processor.image_processor).__name__.endswith("Pil"), "references need the PIL image backend"
    torch.manual_seed(0)
    cases = [run_case(model, processor, fx, c, imgs, ref_dir) for c, imgs in fx["cases"]]
    write_json(
        os.path.join(ref_dir, "cases.json"),
        {"fixture": name, "checkpoint": f"llava/{name}", "generator": generator_versions(), "cases": cases},
    )
    log(f"{name}: references {dir_size(ref_dir) / 1e6:.2f} MB")
    return model, processor


def generator_versions():
    """Versions of what made the references, recorded in every cases.json."""
    import PIL
    import safetensors
    import sentencepiece
    import torch
    import transformers

    return {
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
        "safetensors": safetensors.__version__,
        "sentencepiece": sentencepiece.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
