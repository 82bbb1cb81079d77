//! CLIP ViT-L/14-336 + mlp2x_gelu (LLaVA-1.5-7B's mmproj shape) with random weights: load and
//! encode time at F16 and Q8_0. Ignored by default (writes ~0.6 GB, takes tens of seconds):
//! `cargo test --release --test vision_bench -- --ignored --nocapture`.

use std::time::Instant;

use llava::GgmlType;
use llava::gguf::GgufWriter;
use llava::quant;
use llava::vision::{ClipModel, DecodedImage};

const D: usize = 1024;
const FF: usize = 4096;
const BLOCKS: usize = 23;
const N_EMBD: usize = 4096;
const PATCH: usize = 14;
const SIZE: usize = 336;

fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn write_mmproj(path: &std::path::Path, matrix_type: GgmlType) {
    let n_pos = (SIZE / PATCH) * (SIZE / PATCH) + 1;
    let mut tensors: Vec<(String, Vec<u64>, GgmlType)> = vec![
        (
            "v.patch_embd.weight".into(),
            vec![14, 14, 3, D as u64],
            GgmlType::F16,
        ),
        ("v.class_embd".into(), vec![D as u64], GgmlType::F32),
        (
            "v.position_embd.weight".into(),
            vec![D as u64, n_pos as u64],
            GgmlType::F32,
        ),
        ("v.pre_ln.weight".into(), vec![D as u64], GgmlType::F32),
        ("v.pre_ln.bias".into(), vec![D as u64], GgmlType::F32),
    ];
    for n in 0..BLOCKS {
        for m in ["attn_q", "attn_k", "attn_v", "attn_out"] {
            tensors.push((
                format!("v.blk.{n}.{m}.weight"),
                vec![D as u64, D as u64],
                matrix_type,
            ));
            tensors.push((format!("v.blk.{n}.{m}.bias"), vec![D as u64], GgmlType::F32));
        }
        for ln in ["ln1", "ln2"] {
            tensors.push((
                format!("v.blk.{n}.{ln}.weight"),
                vec![D as u64],
                GgmlType::F32,
            ));
            tensors.push((
                format!("v.blk.{n}.{ln}.bias"),
                vec![D as u64],
                GgmlType::F32,
            ));
        }
        tensors.push((
            format!("v.blk.{n}.ffn_down.weight"),
            vec![D as u64, FF as u64],
            matrix_type,
        ));
        tensors.push((
            format!("v.blk.{n}.ffn_down.bias"),
            vec![FF as u64],
            GgmlType::F32,
        ));
        tensors.push((
            format!("v.blk.{n}.ffn_up.weight"),
            vec![FF as u64, D as u64],
            matrix_type,
        ));
        tensors.push((
            format!("v.blk.{n}.ffn_up.bias"),
            vec![D as u64],
            GgmlType::F32,
        ));
    }
    tensors.push((
        "mm.0.weight".into(),
        vec![D as u64, N_EMBD as u64],
        matrix_type,
    ));
    tensors.push(("mm.0.bias".into(), vec![N_EMBD as u64], GgmlType::F32));
    tensors.push((
        "mm.2.weight".into(),
        vec![N_EMBD as u64, N_EMBD as u64],
        matrix_type,
    ));
    tensors.push(("mm.2.bias".into(), vec![N_EMBD as u64], GgmlType::F32));

    let mut w = GgufWriter::new(path);
    w.add_metadata("general.architecture", "clip").unwrap();
    w.add_metadata("clip.has_vision_encoder", true).unwrap();
    w.add_metadata("clip.has_llava_projector", true).unwrap();
    w.add_metadata("clip.projector_type", "mlp").unwrap();
    w.add_metadata("clip.vision.image_size", SIZE as u32)
        .unwrap();
    w.add_metadata("clip.vision.patch_size", PATCH as u32)
        .unwrap();
    w.add_metadata("clip.vision.embedding_length", D as u32)
        .unwrap();
    w.add_metadata("clip.vision.feed_forward_length", FF as u32)
        .unwrap();
    w.add_metadata("clip.vision.projection_dim", 768u32)
        .unwrap();
    w.add_metadata("clip.vision.attention.head_count", 16u32)
        .unwrap();
    w.add_metadata("clip.vision.attention.layer_norm_epsilon", 1e-5f32)
        .unwrap();
    w.add_metadata("clip.vision.block_count", BLOCKS as u32)
        .unwrap();
    w.add_metadata("clip.use_gelu", false).unwrap();
    for (name, dims, ty) in &tensors {
        w.add_tensor(name.clone(), dims, *ty).unwrap();
    }
    let mut data = w.write_header().unwrap();
    for (i, (name, dims, ty)) in tensors.iter().enumerate() {
        let k = dims[0] as usize;
        let rows: usize = dims[1..].iter().product::<u64>() as usize;
        let v = values(k * rows, i as u64 + 1, 1.0 / (k as f32).sqrt());
        let row_bytes = quant::row_bytes(*ty, k).unwrap();
        let mut bytes = vec![0u8; rows * row_bytes];
        for (src, dst) in v.chunks(k).zip(bytes.chunks_mut(row_bytes)) {
            quant::quantize_row(*ty, src, dst).unwrap();
        }
        data.write_tensor(name, &bytes).unwrap();
    }
    data.finish().unwrap();
}

#[test]
#[ignore]
fn clip_vit_l_336_encode_time() {
    let dir = tempfile::tempdir().unwrap();
    let image = DecodedImage::open(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/images/wide-97x61.png"),
    )
    .unwrap();
    for ty in [GgmlType::F16, GgmlType::Q8_0] {
        let path = dir.path().join(format!("mmproj-{ty}.gguf"));
        write_mmproj(&path, ty);
        let t = Instant::now();
        let model = ClipModel::open(&path).unwrap();
        let load = t.elapsed();
        let _ = model.encode_image(&image).unwrap(); // warm the page cache
        let t = Instant::now();
        let e = model.encode_image(&image).unwrap();
        let encode = t.elapsed();
        assert_eq!((e.n_tokens, e.n_embd), (576, N_EMBD));
        assert!(e.data.iter().all(|v| v.is_finite()));
        eprintln!(
            "ViT-L/14-336 + mlp2x_gelu, {ty}: load {:.3} s, encode one image {:.2} s ({} threads)",
            load.as_secs_f64(),
            encode.as_secs_f64(),
            rayon::current_num_threads()
        );
        std::fs::remove_file(&path).unwrap();
    }
}
