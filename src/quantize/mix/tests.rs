//! The expectations below were derived by hand from llama.cpp's src/llama-quant.cpp
//! (commit 0c1e57098), not by running this code; the derivations are in the comments.

use super::*;
use GgmlType::*;
use LlamaFileType::*;

struct Tensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
}

fn tensor(name: &str, dims: &[u64], ty: GgmlType) -> Tensor {
    Tensor {
        name: name.to_owned(),
        dims: dims.to_vec(),
        ty,
    }
}

fn descs(tensors: &[Tensor]) -> Vec<TensorDesc<'_>> {
    tensors
        .iter()
        .map(|t| TensorDesc {
            name: &t.name,
            dims: &t.dims,
            ty: t.ty,
        })
        .collect()
}

fn plan(ft: LlamaFileType, model: &ModelContext, tensors: &[Tensor]) -> Vec<GgmlType> {
    plan_types(ft, model, &descs(tensors)).unwrap().types
}

struct LlamaShape {
    n_layers: u32,
    n_embd: u64,
    n_ff: u64,
    n_head: u32,
    n_head_kv: u32,
    n_vocab: u64,
}

const LLAVA_7B: LlamaShape = LlamaShape {
    n_layers: 32,
    n_embd: 4096,
    n_ff: 11008,
    n_head: 32,
    n_head_kv: 32,
    n_vocab: 32000,
};
const MISTRAL_7B: LlamaShape = LlamaShape {
    n_layers: 32,
    n_embd: 4096,
    n_ff: 14336,
    n_head: 32,
    n_head_kv: 8,
    n_vocab: 32000,
};
const YI_34B: LlamaShape = LlamaShape {
    n_layers: 60,
    n_embd: 7168,
    n_ff: 20480,
    n_head: 56,
    n_head_kv: 8,
    n_vocab: 64000,
};
const LLAMA2_70B: LlamaShape = LlamaShape {
    n_layers: 80,
    n_embd: 8192,
    n_ff: 28672,
    n_head: 64,
    n_head_kv: 8,
    n_vocab: 32000,
};

impl LlamaShape {
    fn context(&self) -> ModelContext {
        ModelContext {
            arch: "llama".to_owned(),
            n_layers: self.n_layers,
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            n_expert: 0,
        }
    }

    /// The tensors of an F16 conversion (norms in F32), as convert_hf_to_gguf writes them.
    fn tensors(&self, with_output: bool) -> Vec<Tensor> {
        let (e, f) = (self.n_embd, self.n_ff);
        let kv = e / u64::from(self.n_head) * u64::from(self.n_head_kv);
        let mut out = vec![tensor("token_embd.weight", &[e, self.n_vocab], F16)];
        for i in 0..self.n_layers {
            let n = |s: &str| format!("blk.{i}.{s}");
            out.push(tensor(&n("attn_norm.weight"), &[e], F32));
            out.push(tensor(&n("attn_q.weight"), &[e, e], F16));
            out.push(tensor(&n("attn_k.weight"), &[e, kv], F16));
            out.push(tensor(&n("attn_v.weight"), &[e, kv], F16));
            out.push(tensor(&n("attn_output.weight"), &[e, e], F16));
            out.push(tensor(&n("ffn_norm.weight"), &[e], F32));
            out.push(tensor(&n("ffn_gate.weight"), &[e, f], F16));
            out.push(tensor(&n("ffn_up.weight"), &[e, f], F16));
            out.push(tensor(&n("ffn_down.weight"), &[f, e], F16));
        }
        out.push(tensor("output_norm.weight", &[e], F32));
        if with_output {
            out.push(tensor("output.weight", &[e, self.n_vocab], F16));
        }
        out
    }
}

/// `use_more_bits(i, 32)`: n/8 = 4, 7n/8 = 28; (i - 4) % 3 == 2 adds 6, 9, ..., 27.
const MORE_BITS_32: &[i64] = &[0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31];
/// `use_more_bits(i, 60)`: n/8 = 7, 7n/8 = 52; (i - 7) % 3 == 2 adds 9, 12, ..., 51.
const MORE_BITS_60: &[i64] = &[
    0, 1, 2, 3, 4, 5, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48, 51, 52, 53, 54, 55,
    56, 57, 58, 59,
];
/// `use_more_bits(i, 80)`: n/8 = 10, 7n/8 = 70; (i - 10) % 3 == 2 adds 12, 15, ..., 69.
const MORE_BITS_80: &[i64] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48, 51, 54, 57,
    60, 63, 66, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79,
];

/// A per-layer expectation: `more` for the listed layers, `rest` elsewhere.
#[derive(Clone, Copy)]
struct Layered {
    more: GgmlType,
    layers: &'static [i64],
    rest: GgmlType,
}

const fn all(ty: GgmlType) -> Layered {
    Layered {
        more: ty,
        layers: &[],
        rest: ty,
    }
}

static FIRST_LAYERS: [i64; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// `more` for layers `0..n`, `rest` for the others.
fn first(n: usize, more: GgmlType, rest: GgmlType) -> Layered {
    Layered {
        more,
        layers: &FIRST_LAYERS[..n],
        rest,
    }
}

impl Layered {
    fn at(&self, layer: i64) -> GgmlType {
        if self.layers.contains(&layer) {
            self.more
        } else {
            self.rest
        }
    }
}

/// Expected types of a LLaMA-family model, by tensor role.
#[derive(Clone, Copy)]
struct Mix {
    token_embd: GgmlType,
    output: GgmlType,
    /// attn_q, attn_k, ffn_gate, ffn_up
    plain: GgmlType,
    attn_output: GgmlType,
    attn_v: Layered,
    ffn_down: Layered,
}

/// A mix where every quantizable tensor gets `ty` and output.weight gets `output`.
const fn uniform(ty: GgmlType, output: GgmlType) -> Mix {
    Mix {
        token_embd: ty,
        output,
        plain: ty,
        attn_output: ty,
        attn_v: all(ty),
        ffn_down: all(ty),
    }
}

fn expected_llama(t: &Tensor, mix: &Mix) -> GgmlType {
    if t.dims.len() == 1 {
        return t.ty; // norms keep their type
    }
    if t.name == "token_embd.weight" {
        return mix.token_embd;
    }
    if t.name == "output.weight" {
        return mix.output;
    }
    let layer: i64 = t.name.split('.').nth(1).unwrap().parse().unwrap();
    let role = t.name.split('.').nth(2).unwrap();
    match role {
        "attn_q" | "attn_k" | "ffn_gate" | "ffn_up" => mix.plain,
        "attn_output" => mix.attn_output,
        "attn_v" => mix.attn_v.at(layer),
        "ffn_down" => mix.ffn_down.at(layer),
        _ => panic!("unexpected tensor {}", t.name),
    }
}

fn check_llama(shape: &LlamaShape, ft: LlamaFileType, mix: Mix) {
    let tensors = shape.tensors(true);
    let types = plan(ft, &shape.context(), &tensors);
    for (t, &got) in tensors.iter().zip(&types) {
        assert_eq!(got, expected_llama(t, &mix), "{ft}: {}", t.name);
    }
}

/// LLaVA-1.5-7B / Vicuna: 32 layers, no GQA, output.weight present, all rows multiples of 256.
fn llava_7b_mix(ft: LlamaFileType) -> Mix {
    match ft {
        AllF32 => uniform(F32, F32),
        MostlyF16 => uniform(F16, F16),
        MostlyBF16 => uniform(BF16, BF16),
        // output.weight: default type not Q8_0 -> Q6_K.
        MostlyQ4_0 => uniform(Q4_0, Q6_K),
        MostlyQ4_1 => uniform(Q4_1, Q6_K),
        MostlyQ5_0 => uniform(Q5_0, Q6_K),
        MostlyQ5_1 => uniform(Q5_1, Q6_K),
        MostlyQ8_0 => uniform(Q8_0, Q8_0),
        // attn_v: n_gqa 1 < 4 -> Q3_K; ffn_down -> Q3_K; attn_output -> Q3_K.
        MostlyQ2_K => Mix {
            attn_v: all(Q3_K),
            ffn_down: all(Q3_K),
            attn_output: Q3_K,
            ..uniform(Q2_K, Q6_K)
        },
        MostlyQ3_K_S => uniform(Q3_K, Q6_K),
        // attn_v: i_attention_wv < 2 -> Q5_K else Q4_K; ffn_down: i < 32/16 -> Q5_K, else
        // (not falcon) Q4_K; attn_output -> Q4_K.
        MostlyQ3_K_M => Mix {
            attn_v: first(2, Q5_K, Q4_K),
            ffn_down: first(2, Q5_K, Q4_K),
            attn_output: Q4_K,
            ..uniform(Q3_K, Q6_K)
        },
        MostlyQ3_K_L => Mix {
            attn_v: all(Q5_K),
            ffn_down: all(Q5_K),
            attn_output: Q5_K,
            ..uniform(Q3_K, Q6_K)
        },
        // attn_v: i_attention_wv < 4 -> Q5_K; ffn_down: i < 32/8 -> Q5_K.
        MostlyQ4_K_S => Mix {
            attn_v: first(4, Q5_K, Q4_K),
            ffn_down: first(4, Q5_K, Q4_K),
            ..uniform(Q4_K, Q6_K)
        },
        MostlyQ4_K_M => Mix {
            attn_v: Layered {
                more: Q6_K,
                layers: MORE_BITS_32,
                rest: Q4_K,
            },
            ffn_down: Layered {
                more: Q6_K,
                layers: MORE_BITS_32,
                rest: Q4_K,
            },
            ..uniform(Q4_K, Q6_K)
        },
        MostlyQ5_K_S => uniform(Q5_K, Q6_K),
        MostlyQ5_K_M => Mix {
            attn_v: Layered {
                more: Q6_K,
                layers: MORE_BITS_32,
                rest: Q5_K,
            },
            ffn_down: Layered {
                more: Q6_K,
                layers: MORE_BITS_32,
                rest: Q5_K,
            },
            ..uniform(Q5_K, Q6_K)
        },
        MostlyQ6_K => uniform(Q6_K, Q6_K),
    }
}

#[test]
fn use_more_bits_matches_hand_derived_layer_sets() {
    for (n, set) in [(32, MORE_BITS_32), (60, MORE_BITS_60), (80, MORE_BITS_80)] {
        let got: Vec<i64> = (0..n).filter(|&i| use_more_bits(i, n)).collect();
        assert_eq!(got, set, "n_layers = {n}");
    }
}

#[test]
fn llava_7b_every_file_type() {
    for ft in LlamaFileType::ALL {
        check_llama(&LLAVA_7B, ft, llava_7b_mix(ft));
    }
}

#[test]
fn input_order_does_not_change_the_choice() {
    let mut tensors = LLAVA_7B.tensors(true);
    tensors.reverse();
    let types = plan(MostlyQ4_K_M, &LLAVA_7B.context(), &tensors);
    let mix = llava_7b_mix(MostlyQ4_K_M);
    for (t, &got) in tensors.iter().zip(&types) {
        assert_eq!(got, expected_llama(t, &mix), "{}", t.name);
    }
}

#[test]
fn mistral_7b_gqa_gives_attn_v_more_bits_in_q2_k() {
    // 32 heads / 8 KV heads: n_gqa = 4 >= 4, so Q2_K's attn_v becomes Q4_K.
    check_llama(
        &MISTRAL_7B,
        MostlyQ2_K,
        Mix {
            attn_v: all(Q4_K),
            ..llava_7b_mix(MostlyQ2_K)
        },
    );
    // The other mixes do not look at n_gqa: same as the 7B without GQA.
    for ft in [
        MostlyQ3_K_M,
        MostlyQ4_K_S,
        MostlyQ4_K_M,
        MostlyQ5_K_M,
        MostlyQ4_0,
    ] {
        check_llama(&MISTRAL_7B, ft, llava_7b_mix(ft));
    }
}

#[test]
fn yi_34b_mixes() {
    let more_bits = |more, rest| Layered {
        more,
        layers: MORE_BITS_60,
        rest,
    };
    // 56 / 8 = 7 >= 4; 60 layers is LLM_TYPE_30B, not 70B, so no attn_v bump.
    check_llama(
        &YI_34B,
        MostlyQ2_K,
        Mix {
            attn_v: all(Q4_K),
            ffn_down: all(Q3_K),
            attn_output: Q3_K,
            ..uniform(Q2_K, Q6_K)
        },
    );
    // ffn_down: i < 60/16 = 3 -> Q5_K.
    check_llama(
        &YI_34B,
        MostlyQ3_K_M,
        Mix {
            attn_v: first(2, Q5_K, Q4_K),
            ffn_down: first(3, Q5_K, Q4_K),
            attn_output: Q4_K,
            ..uniform(Q3_K, Q6_K)
        },
    );
    // ffn_down: i < 60/8 = 7 -> Q5_K.
    check_llama(
        &YI_34B,
        MostlyQ4_K_S,
        Mix {
            attn_v: first(4, Q5_K, Q4_K),
            ffn_down: first(7, Q5_K, Q4_K),
            ..uniform(Q4_K, Q6_K)
        },
    );
    check_llama(
        &YI_34B,
        MostlyQ4_K_M,
        Mix {
            attn_v: more_bits(Q6_K, Q4_K),
            ffn_down: more_bits(Q6_K, Q4_K),
            ..uniform(Q4_K, Q6_K)
        },
    );
    check_llama(
        &YI_34B,
        MostlyQ5_K_M,
        Mix {
            attn_v: more_bits(Q6_K, Q5_K),
            ffn_down: more_bits(Q6_K, Q5_K),
            ..uniform(Q5_K, Q6_K)
        },
    );
    check_llama(&YI_34B, MostlyQ6_K, uniform(Q6_K, Q6_K));
}

#[test]
fn llama_70b_bumps_q3_k_and_q4_k_attn_v_to_q5_k() {
    let tensors = LLAMA2_70B.tensors(true);
    let model = LLAMA2_70B.context();
    let attn_v_types = |ft| -> Vec<GgmlType> {
        let types = plan(ft, &model, &tensors);
        tensors
            .iter()
            .zip(types)
            .filter(|(t, _)| t.name.ends_with("attn_v.weight"))
            .map(|(_, ty)| ty)
            .collect()
    };
    // Q3_K_S: Q3_K -> Q5_K. Q2_K: n_gqa 8 -> Q4_K -> Q5_K. Q3_K_M: Q5_K / Q4_K -> all Q5_K.
    for ft in [MostlyQ3_K_S, MostlyQ2_K, MostlyQ3_K_M] {
        assert_eq!(attn_v_types(ft), vec![Q5_K; 80], "{ft}");
    }
    // Q4_K_M: Q6_K on the more-bits layers, the Q4_K ones become Q5_K.
    let expected: Vec<GgmlType> = (0..80)
        .map(|i| {
            if MORE_BITS_80.contains(&i) {
                Q6_K
            } else {
                Q5_K
            }
        })
        .collect();
    assert_eq!(attn_v_types(MostlyQ4_K_M), expected);
    // Q5_K_S is not bumped (only Q3_K and Q4_K are).
    assert_eq!(attn_v_types(MostlyQ5_K_S), vec![Q5_K; 80]);
}

#[test]
fn tied_embeddings_take_the_output_rule() {
    let tensors = LLAVA_7B.tensors(false);
    let model = LLAVA_7B.context();
    let token_embd = |ft| plan(ft, &model, &tensors)[0];
    assert_eq!(tensors[0].name, "token_embd.weight");
    assert_eq!(token_embd(MostlyQ4_K_M), Q6_K);
    assert_eq!(token_embd(MostlyQ4_0), Q6_K);
    assert_eq!(token_embd(MostlyQ8_0), Q8_0);
    assert_eq!(token_embd(MostlyQ2_K), Q6_K);
    assert_eq!(token_embd(MostlyF16), F16);
}

#[test]
fn output_rows_that_do_not_fit_the_default_type_go_to_q8_0() {
    let model = LLAVA_7B.context();
    // 4128 = 129 * 32: Q4_K's 256 does not divide it -> Q8_0 (fits 32).
    let tensors = vec![tensor("output.weight", &[4128, 100], F16)];
    assert_eq!(plan(MostlyQ4_K_M, &model, &tensors), vec![Q8_0]);
    // Q4_0's 32 divides it -> Q6_K, which then falls back to Q8_0.
    let plan_q4_0 = plan_types(MostlyQ4_0, &model, &descs(&tensors)).unwrap();
    assert_eq!(plan_q4_0.types, vec![Q8_0]);
    assert_eq!(plan_q4_0.fallbacks, vec![0]);
    // 100 is not a multiple of 32: Q8_0 has no smaller block -> F16.
    let tensors = vec![tensor("output.weight", &[100, 100], F32)];
    assert_eq!(plan(MostlyQ4_K_M, &model, &tensors), vec![F16]);
}

#[test]
fn rows_not_a_multiple_of_256_fall_back() {
    let model = LlamaShape {
        n_layers: 2,
        ..LLAVA_7B
    }
    .context();
    // attn_q has no mix rule for these file types, so the default type is the target.
    let q = |row: u64, ft| plan(ft, &model, &[tensor("blk.0.attn_q.weight", &[row, 8], F16)])[0];
    assert_eq!(q(288, MostlyQ4_K_S), Q5_0);
    assert_eq!(q(288, MostlyQ5_K_S), Q5_1);
    assert_eq!(q(288, MostlyQ6_K), Q8_0);
    assert_eq!(q(288, MostlyQ3_K_S), Q4_0);
    assert_eq!(q(288, MostlyQ2_K), Q4_0);
    assert_eq!(q(288, MostlyQ4_0), Q4_0);
    for ft in [MostlyQ2_K, MostlyQ4_K_M, MostlyQ6_K, MostlyQ4_0, MostlyQ8_0] {
        assert_eq!(q(100, ft), F16, "{ft}");
    }
    assert_eq!(q(100, MostlyBF16), BF16);
    assert_eq!(q(512, MostlyQ4_K_S), Q4_K);
}

#[test]
fn fallback_table() {
    assert_eq!(fallback_type(Q4_K, 512), Some(Q4_K));
    assert_eq!(fallback_type(Q4_K, 96), Some(Q5_0));
    assert_eq!(fallback_type(Q5_K, 96), Some(Q5_1));
    assert_eq!(fallback_type(Q6_K, 96), Some(Q8_0));
    assert_eq!(fallback_type(Q2_K, 96), Some(Q4_0));
    assert_eq!(fallback_type(Q3_K, 96), Some(Q4_0));
    assert_eq!(fallback_type(IQ3_S, 96), Some(IQ4_NL));
    assert_eq!(fallback_type(Q3_K, 72), Some(F16));
    assert_eq!(fallback_type(Q8_0, 72), Some(F16));
    assert_eq!(fallback_type(Q8_K, 96), None);
}

#[test]
fn only_named_weights_of_two_or_more_dims_are_quantized() {
    let model = LLAVA_7B.context();
    let tensors = vec![
        tensor("blk.0.attn_norm.weight", &[256], F32),
        tensor("blk.0.attn_q_norm.weight", &[256, 4], F16),
        tensor("blk.0.attn_q.bias", &[256, 4], F16),
        tensor("blk.0.attn_q.weight", &[256, 1], F16),
        tensor("blk.0.ffn_gate_inp.weight", &[256, 8], F32),
        tensor("position_embd.weight", &[256, 8], F16),
        tensor("rope_freqs.weight", &[64], F32),
        tensor("blk.0.attn_k.weight", &[256, 4], F32),
    ];
    let types = plan(MostlyQ4_K_M, &model, &tensors);
    assert_eq!(types, vec![F32, F16, F16, F16, F32, F16, F32, Q4_K]);
    // Even a plain-float file type leaves them alone.
    let types = plan(MostlyF16, &model, &tensors);
    assert_eq!(types, vec![F32, F16, F16, F16, F32, F16, F32, F16]);
}

#[test]
fn processing_order_is_llama_cpp_weight_order() {
    let tensors = vec![
        tensor("blk.10.attn_q.weight", &[256, 2], F16),
        tensor("output.weight", &[256, 2], F16),
        tensor("blk.2.ffn_up.weight", &[256, 2], F16),
        tensor("blk.2.attn_q.weight", &[256, 2], F16),
        tensor("token_embd.weight", &[256, 2], F16),
    ];
    let plan = plan_types(MostlyQ4_0, &LLAVA_7B.context(), &descs(&tensors)).unwrap();
    // Outside blk.N. first (by name), then layer 2 (by name), then layer 10.
    assert_eq!(plan.order, vec![1, 4, 3, 2, 0]);
}

/// Mixtral-like: 32 layers, 8 experts with 3-D expert tensors, 32 heads / 8 KV heads.
fn moe_tensors() -> Vec<Tensor> {
    let mut out = vec![
        tensor("token_embd.weight", &[4096, 32000], F16),
        tensor("output.weight", &[4096, 32000], F16),
    ];
    // Descending layers: the layer must come from the name, not from a counter.
    for i in (0..32).rev() {
        let n = |s: &str| format!("blk.{i}.{s}");
        out.push(tensor(&n("attn_q.weight"), &[4096, 4096], F16));
        out.push(tensor(&n("attn_k.weight"), &[4096, 1024], F16));
        out.push(tensor(&n("attn_v.weight"), &[4096, 1024], F16));
        out.push(tensor(&n("attn_output.weight"), &[4096, 4096], F16));
        out.push(tensor(&n("ffn_gate_inp.weight"), &[4096, 8], F32));
        out.push(tensor(&n("ffn_gate_exps.weight"), &[4096, 14336, 8], F16));
        out.push(tensor(&n("ffn_up_exps.weight"), &[4096, 14336, 8], F16));
        out.push(tensor(&n("ffn_down_exps.weight"), &[14336, 4096, 8], F16));
    }
    out
}

fn moe_context() -> ModelContext {
    ModelContext {
        n_expert: 8,
        ..MISTRAL_7B.context()
    }
}

#[test]
fn eight_expert_models() {
    let tensors = moe_tensors();
    let types = plan(MostlyQ4_K_M, &moe_context(), &tensors);
    for (t, got) in tensors.iter().zip(types) {
        let layer: Option<i64> = t.name.split('.').nth(1).and_then(|s| s.parse().ok());
        let role = t.name.split('.').nth(2).unwrap_or(&t.name);
        let expected = match role {
            "output.weight" => Q6_K,
            "token_embd.weight" => Q4_K,
            // n_expert == 8: attn_v and attn_k -> Q8_0, attn_output -> Q5_K for Q4_K_M.
            "attn_v" | "attn_k" => Q8_0,
            "attn_output" => Q5_K,
            "ffn_gate_inp" => F32,
            "ffn_down_exps" if MORE_BITS_32.contains(&layer.unwrap()) => Q6_K,
            _ => Q4_K,
        };
        assert_eq!(got, expected, "{}", t.name);
    }
}

#[test]
fn expert_layers_must_be_named() {
    let model = moe_context();
    let unnamed = vec![tensor("enc.ffn_down_exps.weight", &[256, 4, 8], F16)];
    assert!(matches!(
        plan_types(MostlyQ4_K_M, &model, &descs(&unnamed)),
        Err(MixError::NoLayerInName { .. })
    ));
    let out_of_range = vec![tensor("blk.32.ffn_up_exps.weight", &[256, 4, 8], F16)];
    assert!(matches!(
        plan_types(MostlyQ4_K_M, &model, &descs(&out_of_range)),
        Err(MixError::LayerOutOfRange { layer: 32, .. })
    ));
}

/// The LLaVA-1.5 mmproj (23 CLIP blocks, mlp2x projector), as the legacy converter writes it.
fn llava_mmproj_tensors() -> Vec<Tensor> {
    let mut out = vec![
        tensor("mm.0.weight", &[1024, 4096], F16),
        tensor("mm.0.bias", &[4096], F32),
        tensor("mm.2.weight", &[4096, 4096], F16),
        tensor("mm.2.bias", &[4096], F32),
        tensor("v.class_embd", &[1024], F32),
        tensor("v.patch_embd.weight", &[14, 14, 3, 1024], F16),
        tensor("v.position_embd.weight", &[1024, 577], F16),
        tensor("v.pre_ln.weight", &[1024], F32),
        tensor("v.pre_ln.bias", &[1024], F32),
    ];
    for i in 0..23 {
        let n = |s: &str| format!("v.blk.{i}.{s}");
        for proj in ["attn_q", "attn_k", "attn_v", "attn_out"] {
            out.push(tensor(&n(&format!("{proj}.weight")), &[1024, 1024], F16));
            out.push(tensor(&n(&format!("{proj}.bias")), &[1024], F32));
        }
        for ln in ["ln1", "ln2"] {
            out.push(tensor(&n(&format!("{ln}.weight")), &[1024], F32));
            out.push(tensor(&n(&format!("{ln}.bias")), &[1024], F32));
        }
        out.push(tensor(&n("ffn_down.weight"), &[1024, 4096], F16));
        out.push(tensor(&n("ffn_down.bias"), &[4096], F32));
        out.push(tensor(&n("ffn_up.weight"), &[4096, 1024], F16));
        out.push(tensor(&n("ffn_up.bias"), &[1024], F32));
    }
    out
}

/// Expected mmproj types: what stays (anything not a 2-D `.weight`, the patch and position
/// embeddings), attn_v and ffn_down by block, everything else `plain`.
fn check_mmproj(ft: LlamaFileType, plain: GgmlType, attn_v: Layered, ffn_down: GgmlType) {
    let tensors = llava_mmproj_tensors();
    let types = plan(ft, &ModelContext::clip(), &tensors);
    for (t, got) in tensors.iter().zip(types) {
        let expected = if !t.name.ends_with(".weight")
            || t.dims.len() != 2
            || t.name == "v.position_embd.weight"
        {
            t.ty
        } else if t.name.ends_with("attn_v.weight") {
            attn_v.at(t.name.split('.').nth(2).unwrap().parse().unwrap())
        } else if t.name.ends_with("ffn_down.weight") {
            ffn_down
        } else {
            plain
        };
        assert_eq!(got, expected, "{ft}: {}", t.name);
    }
}

/// CLIP names are not `blk.N.`, so llama.cpp visits `v.blk.*` by name: 0, 1, 10, 11, ..., 19, 2,
/// 20, 21, 22, 3, 4, ..., 9. The attn_v counter runs in that order.
/// `use_more_bits(idx, 23)`: 23/8 = 2, 7*23/8 = 20; idx 0, 1, 4, 7, 10, 13, 16, 19, 20, 21, 22,
/// which are blocks 0, 1, 12, 15, 18, 20, 3, 6, 7, 8, 9.
const MMPROJ_MORE_BITS: &[i64] = &[0, 1, 3, 6, 7, 8, 9, 12, 15, 18, 20];

#[test]
fn llava_mmproj_follows_llama_cpp_clip_rules() {
    // clip: n_layer = 0, so for ffn_down use_more_bits(i, 0) is always true (i >= 0) and
    // i < 0/16 never; `attn_out` is not "attn_output", so it gets the default type.
    check_mmproj(
        MostlyQ4_K_M,
        Q4_K,
        Layered {
            more: Q6_K,
            layers: MMPROJ_MORE_BITS,
            rest: Q4_K,
        },
        Q6_K,
    );
    check_mmproj(
        MostlyQ5_K_M,
        Q5_K,
        Layered {
            more: Q6_K,
            layers: MMPROJ_MORE_BITS,
            rest: Q5_K,
        },
        Q6_K,
    );
    // Q4_K_S: attn_v visit index < 4 -> blocks 0, 1, 10, 11; ffn_down i < 0/8 never.
    check_mmproj(
        MostlyQ4_K_S,
        Q4_K,
        Layered {
            more: Q5_K,
            layers: &[0, 1, 10, 11],
            rest: Q4_K,
        },
        Q4_K,
    );
    // Q3_K_M: attn_v visit index < 2 -> blocks 0, 1; ffn_down not falcon -> Q4_K.
    check_mmproj(MostlyQ3_K_M, Q3_K, first(2, Q5_K, Q4_K), Q4_K);
    // Q2_K: n_gqa = 0 -> attn_v Q3_K; ffn_down Q3_K.
    check_mmproj(MostlyQ2_K, Q2_K, all(Q3_K), Q3_K);
    check_mmproj(MostlyQ8_0, Q8_0, all(Q8_0), Q8_0);
    check_mmproj(MostlyQ4_0, Q4_0, all(Q4_0), Q4_0);
    check_mmproj(MostlyF16, F16, all(F16), F16);
}
