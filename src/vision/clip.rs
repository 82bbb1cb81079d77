//! The CLIP ViT vision tower, as transformers' `CLIPVisionModel` computes it up to the feature
//! layer: patch embedding (the stride-`patch` convolution, done as a matmul over unrolled
//! patches), class token, position embeddings, pre-layernorm, then pre-norm encoder blocks
//! (layernorm, multi-head attention with biases, layernorm, MLP with quick GELU or GELU). No
//! post-layernorm: LLaVA takes a hidden state, not the pooled output.
//!
//! Tensors (llama.cpp's names): `v.patch_embd.weight` [p, p, 3, d] (+ optional `.bias`),
//! `v.class_embd` [d], `v.position_embd.weight` [d, n_pos], `v.pre_ln.{weight,bias}`,
//! `v.blk.N.{ln1,ln2}.{weight,bias}`, `v.blk.N.attn_{q,k,v,out}.{weight,bias}`, and the MLP as
//! `v.blk.N.ffn_down` / `ffn_up`: llama.cpp's LLaVA files store CLIP's fc1 as `ffn_down` and fc2
//! as `ffn_up`; newer files name them the other way round. Which is fc1 is decided by shape
//! (fc1 maps d → n_ff).

use crate::gguf::GgufFile;
use crate::kernels::Kernels;
use crate::model_file::{self, ModelFileError, optional_vector_f32, vector_f32};
use crate::ops::{
    AttentionParams, KvRows, add_in_place, attention, gelu_in_place, layer_norm, linear,
    linear_into, quick_gelu_in_place,
};

use super::error::VisionError;
use super::hparams::ClipHparams;
use super::weights::WeightRef;

/// One encoder block's weights (matrices as references into the file, vectors as f32).
struct Block {
    ln1: (Vec<f32>, Vec<f32>),
    ln2: (Vec<f32>, Vec<f32>),
    q: (WeightRef, Vec<f32>),
    k: (WeightRef, Vec<f32>),
    v: (WeightRef, Vec<f32>),
    out: (WeightRef, Vec<f32>),
    fc1: (WeightRef, Vec<f32>),
    fc2: (WeightRef, Vec<f32>),
}

/// The tower's weights.
pub struct ClipTower {
    patch: WeightRef,
    patch_bias: Option<Vec<f32>>,
    class: Vec<f32>,
    positions: Vec<f32>,
    pre_ln: (Vec<f32>, Vec<f32>),
    blocks: Vec<Block>,
}

/// Consecutive `v.blk.N` blocks present in the file.
pub fn stored_blocks(file: &GgufFile) -> usize {
    (0..)
        .take_while(|n| file.tensor(&format!("v.blk.{n}.attn_q.weight")).is_some())
        .count()
}

fn norm(file: &GgufFile, name: &str, d: usize) -> Result<(Vec<f32>, Vec<f32>), ModelFileError> {
    Ok((
        vector_f32(file, &format!("{name}.weight"), d)?,
        vector_f32(file, &format!("{name}.bias"), d)?,
    ))
}

/// A linear layer `name` of `rows` outputs and `k` inputs; a missing bias reads as zeros.
fn dense(
    file: &GgufFile,
    name: &str,
    rows: usize,
    k: usize,
) -> Result<(WeightRef, Vec<f32>), ModelFileError> {
    let w = WeightRef::matrix(file, &format!("{name}.weight"), rows, k)?;
    let b = optional_vector_f32(file, &format!("{name}.bias"), rows)?
        .unwrap_or_else(|| vec![0.0; rows]);
    Ok((w, b))
}

impl ClipTower {
    pub fn load(file: &GgufFile, h: &ClipHparams) -> Result<Self, ModelFileError> {
        let (d, p, n_pos) = (h.n_embd, h.patch_size, h.n_positions());
        // The convolution kernel [d][3][p][p] (torch order) is a d x 3p² matrix as stored.
        let patch = WeightRef::flattened(
            file,
            "v.patch_embd.weight",
            &[p as u64, p as u64, 3, d as u64],
            d,
            3 * p * p,
        )?;
        let patch_bias = optional_vector_f32(file, "v.patch_embd.bias", d)?;
        let class = vector_f32(file, "v.class_embd", d)?;
        let positions =
            model_file::tensor_f32(file, "v.position_embd.weight", &[d as u64, n_pos as u64])?;
        let pre_ln = norm(file, "v.pre_ln", d)?;
        let mut blocks = Vec::with_capacity(h.n_blocks);
        for n in 0..h.n_blocks {
            let b = format!("v.blk.{n}");
            // fc1 maps d -> n_ff: ggml dims [d, n_ff].
            let down_is_fc1 = file
                .tensor(&format!("{b}.ffn_down.weight"))
                .is_some_and(|t| t.dims.first() == Some(&(d as u64)) && d != h.n_ff);
            let (fc1_name, fc2_name) = if down_is_fc1 {
                ("ffn_down", "ffn_up")
            } else {
                ("ffn_up", "ffn_down")
            };
            blocks.push(Block {
                ln1: norm(file, &format!("{b}.ln1"), d)?,
                ln2: norm(file, &format!("{b}.ln2"), d)?,
                q: dense(file, &format!("{b}.attn_q"), d, d)?,
                k: dense(file, &format!("{b}.attn_k"), d, d)?,
                v: dense(file, &format!("{b}.attn_v"), d, d)?,
                out: dense(file, &format!("{b}.attn_out"), d, d)?,
                fc1: dense(file, &format!("{b}.{fc1_name}"), h.n_ff, d)?,
                fc2: dense(file, &format!("{b}.{fc2_name}"), d, h.n_ff)?,
            });
        }
        Ok(Self {
            patch,
            patch_bias,
            class,
            positions,
            pre_ln,
            blocks,
        })
    }

    /// Runs the tower on `n_tiles` normalised tiles (`[n_tiles][3][S][S]`) and returns the
    /// feature rows: for each tile, the positions kept (class token dropped or not) with the
    /// feature layers' hidden states concatenated, `[n_tiles][n_kept][d · n_layers]`.
    pub fn forward(
        &self,
        file: &GgufFile,
        kernels: &Kernels,
        h: &ClipHparams,
        pixels: &[f32],
        n_tiles: usize,
    ) -> Result<Vec<f32>, VisionError> {
        let (d, n_pos) = (h.n_embd, h.n_positions());
        let s = h.image_size;
        if pixels.len() != n_tiles * 3 * s * s {
            return Err(VisionError::Config(format!(
                "{} pixel values for {n_tiles} tiles of 3 x {s} x {s}",
                pixels.len()
            )));
        }
        let mut x = self.embed(file, kernels, h, pixels, n_tiles)?;
        let mut states: Vec<(usize, Vec<f32>)> = Vec::new();
        let mut keep = |i: usize, x: &Vec<f32>| {
            if h.feature_layers.contains(&i) {
                states.push((i, x.clone()));
            }
        };
        keep(0, &x);
        let mut buffers = BlockBuffers::new(x.len(), n_tiles * n_pos * h.n_ff);
        for (i, block) in self.blocks.iter().enumerate() {
            self.block(file, kernels, h, block, &mut x, &mut buffers, n_tiles)?;
            keep(i + 1, &x);
        }
        // Gather the kept positions of each feature layer, concatenated along features.
        let first = usize::from(h.drop_class_token);
        let n_layers = h.feature_layers.len();
        let width = d * n_layers;
        let mut out = Vec::with_capacity(n_tiles * (n_pos - first) * width);
        for t in 0..n_tiles {
            for pos in first..n_pos {
                for &layer in &h.feature_layers {
                    let (_, state) = states.iter().find(|(i, _)| *i == layer).ok_or_else(|| {
                        VisionError::Config(format!("feature layer {layer} not computed"))
                    })?;
                    let row = (t * n_pos + pos) * d;
                    out.extend_from_slice(&state[row..row + d]);
                }
            }
        }
        Ok(out)
    }

    /// Patch embedding + class token + positions, then the pre-layernorm: [n_tiles · n_pos × d].
    fn embed(
        &self,
        file: &GgufFile,
        kernels: &Kernels,
        h: &ClipHparams,
        pixels: &[f32],
        n_tiles: usize,
    ) -> Result<Vec<f32>, VisionError> {
        let (d, p, s, side, n_pos) = (
            h.n_embd,
            h.patch_size,
            h.image_size,
            h.side(),
            h.n_positions(),
        );
        // Unroll every patch into (channel, row, column) order, the kernel's order.
        let k = 3 * p * p;
        let mut cols = Vec::with_capacity(n_tiles * side * side * k);
        for t in 0..n_tiles {
            let tile = &pixels[t * 3 * s * s..(t + 1) * 3 * s * s];
            for py in 0..side {
                for px in 0..side {
                    for c in 0..3 {
                        for ky in 0..p {
                            let at = c * s * s + (py * p + ky) * s + px * p;
                            cols.extend_from_slice(&tile[at..at + p]);
                        }
                    }
                }
            }
        }
        let patch = self
            .patch
            .view(file)
            .map_err(|e| VisionError::model(file, e))?;
        let patches = linear(kernels, &patch, self.patch_bias.as_deref(), &cols)?;
        let mut x = Vec::with_capacity(n_tiles * n_pos * d);
        for t in 0..n_tiles {
            x.extend_from_slice(&self.class);
            x.extend_from_slice(&patches[t * side * side * d..(t + 1) * side * side * d]);
        }
        for tile in x.chunks_exact_mut(n_pos * d) {
            add_in_place(tile, &self.positions)?;
        }
        let mut out = vec![0f32; x.len()];
        layer_norm(&x, &self.pre_ln.0, &self.pre_ln.1, h.eps, &mut out)?;
        Ok(out)
    }

    /// One pre-norm encoder block, in place on `x` [n_tiles · n_pos × d]; attention per tile.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        file: &GgufFile,
        kernels: &Kernels,
        h: &ClipHparams,
        b: &Block,
        x: &mut [f32],
        buffers: &mut BlockBuffers,
        n_tiles: usize,
    ) -> Result<(), VisionError> {
        let (d, n_pos) = (h.n_embd, h.n_positions());
        let view = |m: &WeightRef| m.view(file).map_err(|e| VisionError::model(file, e));
        let BlockBuffers {
            normed,
            q,
            k,
            v,
            attn,
            ff,
        } = buffers;
        layer_norm(x, &b.ln1.0, &b.ln1.1, h.eps, normed)?;
        linear_into(kernels, &view(&b.q.0)?, Some(b.q.1.as_slice()), normed, q)?;
        linear_into(kernels, &view(&b.k.0)?, Some(b.k.1.as_slice()), normed, k)?;
        linear_into(kernels, &view(&b.v.0)?, Some(b.v.1.as_slice()), normed, v)?;
        let params = AttentionParams::new(h.n_heads, h.n_heads, h.head_dim());
        let tile = n_pos * d;
        for t in 0..n_tiles {
            let r = t * tile..(t + 1) * tile;
            attention(
                &q[r.clone()],
                KvRows::F32(&k[r.clone()]),
                KvRows::F32(&v[r.clone()]),
                n_pos,
                &params,
                &mut attn[r],
            )?;
        }
        // The output projection into `q`, free again.
        linear_into(kernels, &view(&b.out.0)?, Some(b.out.1.as_slice()), attn, q)?;
        add_in_place(x, q)?;
        layer_norm(x, &b.ln2.0, &b.ln2.1, h.eps, normed)?;
        linear_into(
            kernels,
            &view(&b.fc1.0)?,
            Some(b.fc1.1.as_slice()),
            normed,
            ff,
        )?;
        if h.use_gelu {
            gelu_in_place(ff);
        } else {
            quick_gelu_in_place(ff);
        }
        linear_into(kernels, &view(&b.fc2.0)?, Some(b.fc2.1.as_slice()), ff, q)?;
        add_in_place(x, q)?;
        Ok(())
    }
}

/// A block's activations, allocated once per forward and reused by every block (fresh
/// buffers per block cost page faults and zero fills, a few percent of an encode).
struct BlockBuffers {
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    ff: Vec<f32>,
}

impl BlockBuffers {
    /// For `len` hidden-state elements and `ff_len` MLP ones.
    fn new(len: usize, ff_len: usize) -> Self {
        BlockBuffers {
            normed: vec![0.0; len],
            q: vec![0.0; len],
            k: vec![0.0; len],
            v: vec![0.0; len],
            attn: vec![0.0; len],
            ff: vec![0.0; ff_len],
        }
    }
}
