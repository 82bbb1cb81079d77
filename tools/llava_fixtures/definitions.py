"""What each fixture is: configs, chat templates, prompts and cases."""

from .common import N_IMAGE_EXTRA_ROWS

# ---------------------------------------------------------------------------------------------
# Chat templates (jinja, as transformers saves them). Simplified forms of llava-hf's templates:
# images first in each user turn, then the text.
VICUNA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
MISTRAL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] }}{% endfor %}"
    "{{ ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ ' ' + content['text'] + eos_token }}{% endfor %}"
    "{% endif %}{% endfor %}"
)


def clip_vision_config(image_size, hidden, layers, heads, intermediate):
    return dict(
        model_type="clip_vision_model",
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=8,
        projection_dim=hidden,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
        num_channels=3,
    )


def llama_text_config(hidden, layers, heads, kv_heads, intermediate):
    return dict(
        model_type="llama",
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=32000 + N_IMAGE_EXTRA_ROWS,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=32001,
    )


def mistral_text_config(hidden, layers, heads, kv_heads, intermediate):
    return dict(
        model_type="mistral",
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        vocab_size=32000 + N_IMAGE_EXTRA_ROWS,
        max_position_embeddings=32768,
        rms_norm_eps=1e-5,
        rope_theta=1000000.0,
        sliding_window=None,
        hidden_act="silu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=32001,
    )


TEXT_QUESTION = "Name three colours of the rainbow."
IMAGE_QUESTION = "What is shown in this picture?"
TWO_IMAGE_QUESTION = "How do these two pictures differ?"
SHORT_TEXT_QUESTION = "Count from one to five."  # text-only logits are [n, 32064] f32: kept short

FIXTURES_DEF = {
    "llava15-hf": dict(
        arch="llava",
        seed=101,
        dtype="float16",
        text=("llama", llama_text_config(hidden=32, layers=2, heads=4, kv_heads=4, intermediate=80)),
        vision=clip_vision_config(image_size=40, hidden=32, layers=3, heads=4, intermediate=64),
        tokenizer="llama",
        template=VICUNA_TEMPLATE,
        cases=[
            ("text", []),
            ("wide", ["wide-97x61.png"]),
            ("tall_rgba", ["tall-50x80-rgba.png"]),
            ("small_palette", ["small-30x20-palette.png"]),
        ],
    ),
    "next-mistral-hf": dict(
        arch="llava_next",
        seed=202,
        dtype="bfloat16",
        shards=2,
        text=("mistral", mistral_text_config(hidden=40, layers=2, heads=4, kv_heads=2, intermediate=96)),
        vision=clip_vision_config(image_size=48, hidden=40, layers=3, heads=4, intermediate=80),
        tokenizer="mistral",
        template=MISTRAL_TEMPLATE,
        text_question=SHORT_TEXT_QUESTION,
        cases=[
            ("text", []),
            ("wide", ["wide-97x61.png"]),
            ("small_palette", ["small-30x20-palette.png"]),
            ("banner_tall", ["banner-150x40.png", "tall-50x80-rgba.png"]),
        ],
    ),
    "next-vicuna-hf": dict(
        arch="llava_next",
        seed=303,
        dtype="float16",
        text=("llama", llama_text_config(hidden=32, layers=2, heads=4, kv_heads=4, intermediate=96)),
        vision=clip_vision_config(image_size=48, hidden=32, layers=3, heads=4, intermediate=96),
        tokenizer="llama",
        template=VICUNA_TEMPLATE,
        sparse_config=True,
        text_question=SHORT_TEXT_QUESTION,
        cases=[
            ("text", []),
            ("square_jpeg", ["square-72x72.jpg"]),
            ("tall_banner", ["tall-50x80-rgba.png", "banner-150x40.png"]),
        ],
    ),
    # The original layout of llava15-hf's weights; references from the llava15-hf model on
    # pad-to-square pixels. No text-only case: it would equal llava15-hf's (same weights).
    "llava15-orig": dict(
        arch="llava",
        base="llava15-hf",
        seed=404,
        tokenizer="llama",
        template=VICUNA_TEMPLATE,
        n_vocab=32000,
        cases=[
            ("wide", ["wide-97x61.png"]),
            ("tall_rgba", ["tall-50x80-rgba.png"]),
            ("small_palette", ["small-30x20-palette.png"]),
        ],
    ),
}
