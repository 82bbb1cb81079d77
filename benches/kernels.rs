//! Kernel benchmarks: ours (each supported tier) against ggml's (the oracle crate, ggml of
//! llama.cpp b2757 built by its build script with this host's AVX2/FMA/F16C flags and, in
//! bench builds, -O3), at LLaMA-7B shapes, plus a memory-bandwidth probe.
//!
//! `cargo bench --bench kernels` runs a modest default set: vec_dot per type and tier, matmul
//! n = 1 at every shape (best tier and ggml, 1 and 2 threads), n = 512 at 4096×4096 for Q4_K
//! and Q8_0, n = 1 from DRAM (`matmul_dram_*`, Q4_K and Q8_0 at 4096×11008, rotating through
//! ≥ 2 GiB of distinct matrices so the weights never stay in cache, as in decoding) and the
//! bandwidth probe. `LLAVA_BENCH_FULL=1` adds every tier, every type at n = 512 and every
//! shape. Filter with divan's arguments, e.g. `cargo bench --bench kernels -- matmul_n1`.
//! `LLAVA_CPU=avx2` (any tier name) runs our cases on that tier instead of the best one;
//! `tools/kernel_ratios.py` runs the tiers one after the other and prints the ratio tables.
//! `cargo bench --bench kernels -- --dram-paired` times the n = 1 DRAM cases and the bandwidth
//! probe interleaved, round by round, and prints their ratios (see [`dram_paired`]);
//! `-- --n1-paired` does the same for ours against ggml at n = 1 (see [`n1_paired`]).
//! `matmul_small_n_ours` / `matmul_small_n_one_by_one` sweep n = 2..12 on Q4_K and Q6_K
//! 4096×4096 at one thread, as one matmul or as n one-token matmuls.
//! `LLAVA_BENCH_TYPES` may also name Q2_K and Q3_K (not in the default set).
//! Our matmuls run on the weight layout the tier prefers (`kernels::repack`: Q4_K, Q6_K and
//! Q8_0 repacked to Q4_K×8, Q6_K×8 and Q8_0×8 on the x86 tiers, as the model loader does),
//! ggml's on ggml's bytes;
//! `LLAVA_BENCH_GGML_LAYOUT=1` runs ours on ggml's layout too (the path before repacking),
//! on ggml's very bytes unless `LLAVA_BENCH_OWN_COPY=1` gives ours a copy: the like-for-like
//! baseline for a repacked run, where ours and ggml read two matrices (at 25–37 MB, shared
//! bytes let each side find part of the matrix in the L3 after the other's call).
//!
//! Counters: weight bytes per matmul (so `matmul_dram_*` throughput compares with the bandwidth
//! probe; `matmul_n1_*` reuses one matrix, which stays in a large last-level cache) and bytes
//! summed by the probe.

use std::ffi::c_void;
use std::fmt;
use std::sync::OnceLock;

use divan::Bencher;
use divan::counter::{BytesCount, ItemsCount};
use ggml_sys_bleedingedge as ggml;
use llava::GgmlType;
use llava::kernels::repack::{preferred_layout, repack_in_place};
use llava::kernels::{
    Kernels, QuantMatrix, Tier, WeightLayout, activation_type, matmul, matmul_vec_many,
};
use llava::quant;
use rayon::ThreadPool;

fn main() {
    // `cargo bench --bench kernels -- --dram-paired`: its own loop and table, not divan's.
    if std::env::args().any(|a| a == "--dram-paired") {
        dram_paired();
        return;
    }
    if std::env::args().any(|a| a == "--n1-paired") {
        n1_paired();
        return;
    }
    divan::main();
}

fn full() -> bool {
    std::env::var_os("LLAVA_BENCH_FULL").is_some_and(|v| v != "0")
}

const TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
    GgmlType::F16,
];

/// (rows, k) of LLaMA-7B's projections: attention/wo, FFN up/gate, FFN down.
const SHAPES: [(usize, usize); 3] = [(4096, 4096), (11008, 4096), (4096, 11008)];

fn pool(threads: usize) -> &'static ThreadPool {
    static POOLS: [OnceLock<ThreadPool>; 2] = [OnceLock::new(), OnceLock::new()];
    POOLS[threads - 1].get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
    })
}

/// Deterministic pseudo-random floats (xorshift), roughly uniform in [-1, 1].
fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// A weight matrix: one quantized row repeated (timing does not depend on the values; this
/// avoids quantizing 45M elements per case).
fn weights(ty: GgmlType, rows: usize, k: usize) -> Vec<u8> {
    let row: Vec<f32> = floats(k, 7).iter().map(|v| v * 0.05).collect();
    let mut bytes = vec![0u8; quant::row_bytes(ty, k).expect("whole blocks")];
    quant::quantize_row(ty, &row, &mut bytes).expect("quantize");
    bytes.repeat(rows)
}

/// The layout our matmuls take a `ty` matrix in: the tier's preferred one (as the model
/// loader repacks), or ggml's with `LLAVA_BENCH_GGML_LAYOUT=1`.
fn bench_layout(kernels: &Kernels, ty: GgmlType, rows: usize, k: usize) -> WeightLayout {
    if std::env::var_os("LLAVA_BENCH_GGML_LAYOUT").is_some_and(|v| v != "0") {
        return WeightLayout::Ggml;
    }
    preferred_layout(kernels, ty, rows, k)
}

/// `w` (whole `rows × k` matrices of `ty` in ggml's layout, back to back) in `layout`: a
/// repacked copy, or `None` for ggml's layout (use `w` itself).
fn laid_out(
    ty: GgmlType,
    layout: WeightLayout,
    rows: usize,
    k: usize,
    w: &[u8],
) -> Option<Vec<u8>> {
    if layout == WeightLayout::Ggml {
        if std::env::var_os("LLAVA_BENCH_OWN_COPY").is_some_and(|v| v != "0") {
            return Some(w.to_vec());
        }
        return None;
    }
    let mut out = w.to_vec();
    let matrix_bytes = quant::row_bytes(ty, k).expect("whole blocks") * rows;
    for m in out.chunks_exact_mut(matrix_bytes) {
        repack_in_place(ty, layout, rows, k, m).expect("repack");
    }
    Some(out)
}

/// `rows × k` matrices of `ty` in `layout`, one per `rows × k` of `bytes`.
fn matrices<'a>(
    ty: GgmlType,
    layout: WeightLayout,
    rows: usize,
    k: usize,
    bytes: &'a [u8],
) -> Vec<QuantMatrix<'a>> {
    let matrix_bytes = quant::row_bytes(ty, k).expect("whole blocks") * rows;
    bytes
        .chunks_exact(matrix_bytes)
        .map(|w| QuantMatrix::with_layout(ty, rows, k, layout, w).expect("matrix"))
        .collect()
}

#[derive(Clone, Copy)]
struct Case {
    ty: GgmlType,
    rows: usize,
    k: usize,
    n: usize,
    threads: usize,
    tier: Tier,
    /// ggml's matmul instead of ours.
    ggml: bool,
    /// Ours without the tier's gemm tile for this type (one dot per weight row and token, as
    /// before the float tiles), for before/after comparisons.
    no_tile: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} n={} t={} {}{}",
            self.ty,
            self.rows,
            self.k,
            self.n,
            self.threads,
            if self.ggml { "ggml" } else { self.tier.name() },
            if self.no_tile { " dots" } else { "" }
        )
    }
}

/// The tier our cases run: `LLAVA_CPU`'s if it is set (e.g. `LLAVA_CPU=avx2` to measure the
/// AVX2 tier on an AVX-512 machine), else the best this CPU supports.
fn bench_tier() -> Tier {
    llava::kernels::try_kernels()
        .unwrap_or_else(|e| panic!("{e}"))
        .tier
}

/// The tiers our matmul cases run: `LLAVA_BENCH_TIERS` (comma-separated names, e.g.
/// `avx2,avx512`) if set; else [`bench_tier`], or with `LLAVA_BENCH_FULL` and no `LLAVA_CPU`,
/// every supported tier.
fn tiers() -> Vec<Tier> {
    if let Ok(names) = std::env::var("LLAVA_BENCH_TIERS") {
        return names
            .split(',')
            .map(|name| Tier::parse(name.trim()).expect("a tier name"))
            .filter(|t| Tier::supported().contains(t))
            .collect();
    }
    let forced = std::env::var_os("LLAVA_CPU").is_some_and(|v| !v.is_empty());
    if full() && !forced {
        Tier::supported()
    } else {
        vec![bench_tier()]
    }
}

/// Types run only when `LLAVA_BENCH_TYPES` names them (kernels without a place in the default
/// set, measured when they change).
const NAMED_ONLY_TYPES: [GgmlType; 2] = [GgmlType::Q2_K, GgmlType::Q3_K];

/// The weight types to run: `LLAVA_BENCH_TYPES` (comma-separated, e.g. `Q4_K,F16`; also any
/// of [`NAMED_ONLY_TYPES`]) if set, else all of [`TYPES`].
fn types() -> Vec<GgmlType> {
    match std::env::var("LLAVA_BENCH_TYPES") {
        Ok(names) => TYPES
            .into_iter()
            .chain(NAMED_ONLY_TYPES)
            .filter(|t| names.split(',').any(|n| n.trim() == t.to_string()))
            .collect(),
        Err(_) => TYPES.to_vec(),
    }
}

fn cases(n: usize) -> Vec<Case> {
    let mut out = Vec::new();
    for tier in tiers() {
        for ty in types() {
            for (i, &(rows, k)) in SHAPES.iter().enumerate() {
                // Shape 0 for Q4_K and Q8_0, or for the types `LLAVA_BENCH_TYPES` names.
                let picked = std::env::var_os("LLAVA_BENCH_TYPES").is_some()
                    || matches!(ty, GgmlType::Q4_K | GgmlType::Q8_0);
                let default_set = n == 1 || (i == 0 && picked);
                if !(default_set || full()) {
                    continue;
                }
                for threads in [1, 2] {
                    out.push(Case {
                        ty,
                        rows,
                        k,
                        n,
                        threads,
                        tier,
                        ggml: false,
                        no_tile: false,
                    });
                }
            }
        }
    }
    out
}

/// The same cases for ggml (whose SIMD is whatever its build flags chose).
fn ggml_cases(n: usize) -> Vec<Case> {
    let ours = bench_tier();
    cases(n)
        .into_iter()
        .filter(|c| c.tier == ours)
        .map(|c| Case {
            tier: Tier::Scalar,
            ggml: true,
            ..c
        })
        .collect()
}

fn run_ours(bencher: Bencher, case: &Case) {
    run_ours_tokens(bencher, case, false);
}

/// [`run_ours`]; with `one_by_one`, the case's `n` tokens as `n` matmuls of one token (the
/// n = 1 path for each) instead of one matmul of `n`.
fn run_ours_tokens(bencher: Bencher, case: &Case, one_by_one: bool) {
    let mut kernels = *Kernels::for_tier(case.tier).expect("supported tier");
    if case.no_tile {
        match case.ty {
            GgmlType::F16 => (kernels.gemm.f16, kernels.packed.f16) = (None, None),
            GgmlType::BF16 => (kernels.gemm.bf16, kernels.packed.bf16) = (None, None),
            GgmlType::F32 => (kernels.gemm.f32, kernels.packed.f32) = (None, None),
            other => panic!("no_tile is for the float types, not {other}"),
        }
    }
    // Before/after comparisons of the packed tiles: `LLAVA_BENCH_NO_PACK=1` runs without them.
    if std::env::var_os("LLAVA_BENCH_NO_PACK").is_some_and(|v| v != "0") {
        kernels.packed = llava::kernels::GemmKernels::NONE;
    }
    let kernels = &kernels;
    let w = weights(case.ty, case.rows, case.k);
    let layout = bench_layout(kernels, case.ty, case.rows, case.k);
    let packed = laid_out(case.ty, layout, case.rows, case.k, &w);
    let matrix = matrices(
        case.ty,
        layout,
        case.rows,
        case.k,
        packed.as_deref().unwrap_or(&w),
    )[0];
    let x = floats(case.n * case.k, 11);
    let mut y = vec![0f32; case.n * case.rows];
    let pool = pool(case.threads);
    bencher.counter(BytesCount::new(w.len())).bench_local(|| {
        if one_by_one {
            let tokens = x.chunks_exact(case.k).zip(y.chunks_exact_mut(case.rows));
            for (x, y) in tokens {
                pool.install(|| matmul(kernels, &matrix, x, 1, y))
                    .expect("matmul");
            }
        } else {
            pool.install(|| matmul(kernels, &matrix, &x, case.n, &mut y))
                .expect("matmul");
        }
    });
}

/// ggml's `ggml_mul_mat` on one context, computed with `threads` threads: one graph per weight
/// matrix (`weights` holds them back to back), all reading the same activations and writing the
/// same output. The tensors' data live in the buffers owned here; the context holds only the
/// tensor headers and graphs.
struct GgmlMatmul {
    ctx: *mut ggml::ggml_context,
    graphs: Vec<*mut ggml::ggml_cgraph>,
    plan: std::cell::RefCell<ggml::ggml_cplan>,
    _work: Vec<u8>,
    weights: Vec<u8>,
    _x: Vec<f32>,
    _y: Vec<f32>,
}

impl GgmlMatmul {
    fn new(case: &Case, weights: Vec<u8>, x: Vec<f32>) -> GgmlMatmul {
        let matrix_bytes = quant::row_bytes(case.ty, case.k).expect("whole blocks") * case.rows;
        assert_eq!(weights.len() % matrix_bytes, 0, "whole matrices");
        let count = weights.len() / matrix_bytes;
        let mut y = vec![0f32; case.n * case.rows];
        // Each graph holds one node and two leaves.
        const GRAPH_SIZE: usize = 4;
        // SAFETY: plain size queries.
        let mem = unsafe {
            (2 * count + 1) * ggml::ggml_tensor_overhead()
                + count * ggml::ggml_graph_overhead_custom(GRAPH_SIZE, false)
        } + (1 << 20);
        let params = ggml::ggml_init_params {
            mem_size: mem,
            mem_buffer: std::ptr::null_mut(),
            no_alloc: true,
        };
        // SAFETY: FFI calls on a fresh no-alloc context sized for the tensor headers and graphs;
        // every tensor's data points into a buffer of exactly its size owned by the returned
        // value (moving a Vec does not move its heap buffer), which frees the context first.
        unsafe {
            let ctx = ggml::ggml_init(params);
            assert!(!ctx.is_null(), "ggml_init");
            let xt =
                ggml::ggml_new_tensor_2d(ctx, GgmlType::F32.id(), case.k as i64, case.n as i64);
            (*xt).data = x.as_ptr().cast_mut().cast::<c_void>();
            let mut graphs = Vec::with_capacity(count);
            for i in 0..count {
                let wt =
                    ggml::ggml_new_tensor_2d(ctx, case.ty.id(), case.k as i64, case.rows as i64);
                (*wt).data = weights[i * matrix_bytes..]
                    .as_ptr()
                    .cast_mut()
                    .cast::<c_void>();
                let yt = ggml::ggml_mul_mat(ctx, wt, xt);
                (*yt).data = y.as_mut_ptr().cast::<c_void>();
                let graph = ggml::ggml_new_graph_custom(ctx, GRAPH_SIZE, false);
                ggml::ggml_build_forward_expand(graph, yt);
                graphs.push(graph);
            }
            // Every graph is the same operation on the same shapes, so one plan fits all.
            let mut plan = ggml::ggml_graph_plan(graphs[0], case.threads as i32);
            let mut work = vec![0u8; plan.work_size.max(1)];
            plan.work_data = work.as_mut_ptr();
            GgmlMatmul {
                ctx,
                graphs,
                plan: std::cell::RefCell::new(plan),
                _work: work,
                weights,
                _x: x,
                _y: y,
            }
        }
    }

    /// Computes the product with matrix `i`.
    fn compute(&self, i: usize) {
        let mut plan = self.plan.borrow_mut();
        // SAFETY: the graph and plan were built on this live context; the work buffer is
        // plan.work_size bytes and, like the tensors' data, outlives the call.
        unsafe { ggml::ggml_graph_compute(self.graphs[i], &mut *plan) };
    }

    /// The weight matrices, back to back: the paired benchmarks run ours on these same bytes,
    /// so that both sides read the same pages. (Two copies of one matrix, each its own fresh
    /// allocation on this VM, have read at speeds differing by up to 3× for a whole run.)
    fn weights(&self) -> &[u8] {
        &self.weights
    }
}

impl Drop for GgmlMatmul {
    fn drop(&mut self) {
        // SAFETY: the context was created by ggml_init and is freed once.
        unsafe { ggml::ggml_free(self.ctx) };
    }
}

fn run_ggml(bencher: Bencher, case: &Case) {
    let w = weights(case.ty, case.rows, case.k);
    let bytes = w.len();
    let m = GgmlMatmul::new(case, w, floats(case.n * case.k, 11));
    bencher
        .counter(BytesCount::new(bytes))
        .bench_local(|| m.compute(0));
}

#[divan::bench(args = cases(1))]
fn matmul_n1_ours(bencher: Bencher, case: &Case) {
    run_ours(bencher, case);
}

#[divan::bench(args = ggml_cases(1))]
fn matmul_n1_ggml(bencher: Bencher, case: &Case) {
    run_ggml(bencher, case);
}

#[divan::bench(args = cases(512), sample_count = 3, sample_size = 1)]
fn matmul_n512_ours(bencher: Bencher, case: &Case) {
    run_ours(bencher, case);
}

#[divan::bench(args = ggml_cases(512), sample_count = 3, sample_size = 1)]
fn matmul_n512_ggml(bencher: Bencher, case: &Case) {
    run_ggml(bencher, case);
}

/// A short prompt (16 tokens): per-call costs (packing, unpacking a repacked matrix) weigh
/// more than at n = 512.
#[divan::bench(args = cases(16), sample_count = 10, sample_size = 4)]
fn matmul_n16_ours(bencher: Bencher, case: &Case) {
    run_ours(bencher, case);
}

/// Few tokens (n = 2..12) on the types the x86 tiers repack (Q4_K, Q6_K; of those
/// `LLAVA_BENCH_TYPES` names), 4096×4096, one thread: where the n > 1 path of a repacked
/// matrix changes (`kernels::gemm::PACKED_MIN_TOKENS`) and what it costs beside
/// [`matmul_small_n_one_by_one`].
#[divan::bench(args = small_n_cases(), sample_count = 10, sample_size = 4)]
fn matmul_small_n_ours(bencher: Bencher, case: &Case) {
    run_ours(bencher, case);
}

/// The cases of [`matmul_small_n_ours`] as `n` matmuls of one token each (the group dots of a
/// repacked matrix, token by token).
#[divan::bench(args = small_n_cases(), sample_count = 10, sample_size = 4)]
fn matmul_small_n_one_by_one(bencher: Bencher, case: &Case) {
    run_ours_tokens(bencher, case, true);
}

/// [`matmul_small_n_ours`] from DRAM: each iteration the next of ≥ 2 GiB of distinct matrices
/// (as `matmul_dram_ours`), at 4096×4096 and 4096×11008 (FFN down, 37 MB in Q6_K: beyond
/// the L3, so that token by token rereads it from memory).
#[divan::bench(args = small_n_dram_cases(), sample_count = 10, sample_size = 4)]
fn matmul_small_n_dram_ours(bencher: Bencher, case: &Case) {
    run_dram_tokens(bencher, case, false);
}

/// [`matmul_small_n_dram_ours`] as `n` matmuls of one token each.
#[divan::bench(args = small_n_dram_cases(), sample_count = 10, sample_size = 4)]
fn matmul_small_n_dram_one_by_one(bencher: Bencher, case: &Case) {
    run_dram_tokens(bencher, case, true);
}

fn small_n_dram_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (rows, k) in [SHAPES[0], SHAPES[2]] {
        for case in small_n_cases() {
            if case.n <= 8 {
                out.push(Case { rows, k, ..case });
            }
        }
    }
    out
}

/// The weight set of the last [`run_dram_tokens`] case (type, shape, layout): the cases in a
/// row share it instead of each building and repacking 2 GiB.
type DramSet = (GgmlType, usize, usize, WeightLayout, Vec<u8>);

fn run_dram_tokens(bencher: Bencher, case: &Case, one_by_one: bool) {
    thread_local! {
        static SET: std::cell::RefCell<Option<DramSet>> = const { std::cell::RefCell::new(None) };
    }
    let kernels = Kernels::for_tier(case.tier).expect("supported tier");
    let layout = bench_layout(kernels, case.ty, case.rows, case.k);
    SET.with_borrow_mut(|cached| {
        let fresh = cached.as_ref().is_none_or(|(ty, rows, k, l, _)| {
            (*ty, *rows, *k, *l) != (case.ty, case.rows, case.k, layout)
        });
        if fresh {
            *cached = None;
            let (set, _) = weight_set(case.ty, case.rows, case.k);
            let set = laid_out(case.ty, layout, case.rows, case.k, &set).unwrap_or(set);
            *cached = Some((case.ty, case.rows, case.k, layout, set));
        }
        let set = &cached.as_ref().expect("filled above").4;
        let matrices = matrices(case.ty, layout, case.rows, case.k, set);
        let x = floats(case.n * case.k, 11);
        let mut y = vec![0f32; case.n * case.rows];
        let pool = pool(case.threads);
        let mut next = 0;
        bencher.bench_local(|| {
            let matrix = &matrices[next];
            next = (next + 1) % matrices.len();
            if one_by_one {
                let tokens = x.chunks_exact(case.k).zip(y.chunks_exact_mut(case.rows));
                for (x, y) in tokens {
                    pool.install(|| matmul(kernels, matrix, x, 1, y))
                        .expect("matmul");
                }
            } else {
                pool.install(|| matmul(kernels, matrix, &x, case.n, &mut y))
                    .expect("matmul");
            }
        });
    });
}

fn small_n_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for tier in tiers() {
        for ty in types() {
            if !matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K) {
                continue;
            }
            for n in [2, 3, 4, 6, 8, 12] {
                out.push(Case {
                    ty,
                    rows: 4096,
                    k: 4096,
                    n,
                    threads: 1,
                    tier,
                    ggml: false,
                    no_tile: false,
                });
            }
        }
    }
    out
}

/// Unpacking a Q4_K×8 matrix (4096×4096) back to ggml's layout, as n > 1 matmuls do chunk by
/// chunk on a repacked matrix: its cost beside `matmul_n512_ours` (one unpack per matmul).
#[divan::bench(sample_count = 20, sample_size = 1)]
fn unpack_q4_k_x8(bencher: Bencher) {
    unpack_4096(bencher, GgmlType::Q4_K, WeightLayout::Q4KX8);
}

/// As [`unpack_q4_k_x8`], Q6_K×8.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn unpack_q6_k_x8(bencher: Bencher) {
    unpack_4096(bencher, GgmlType::Q6_K, WeightLayout::Q6KX8);
}

/// As [`unpack_q4_k_x8`], Q8_0×8.
#[divan::bench(sample_count = 20, sample_size = 1)]
fn unpack_q8_0_x8(bencher: Bencher) {
    unpack_4096(bencher, GgmlType::Q8_0, WeightLayout::Q8_0X8);
}

fn unpack_4096(bencher: Bencher, ty: GgmlType, layout: WeightLayout) {
    let (rows, k) = (4096, 4096);
    let packed = laid_out(ty, layout, rows, k, &weights(ty, rows, k)).expect("repacked");
    let matrix = matrices(ty, layout, rows, k, &packed)[0];
    let mut out = vec![0u8; packed.len()];
    bencher
        .counter(BytesCount::new(packed.len()))
        .bench_local(|| llava::kernels::repack::unpack_rows(&matrix, 0, &mut out).expect("unpack"));
}

/// (rows, k) of CLIP ViT-L/14's projections: attention (and out), FFN up, FFN down.
const CLIP_SHAPES: [(usize, usize); 3] = [(1024, 1024), (4096, 1024), (1024, 4096)];

/// CLIP ViT-L/14-336's 577 tokens through its F16 and Q8_0 matrices, 1 and 2 threads, on
/// `LLAVA_BENCH_TIERS` or [`bench_tier`]; F16 also without its tiles (`dots`: one dot per row
/// and token).
fn clip_cases() -> Vec<Case> {
    let mut out = Vec::new();
    // Every tier with LLAVA_BENCH_FULL would include the scalar one: minutes per case.
    let tiers = if std::env::var_os("LLAVA_BENCH_TIERS").is_some() {
        tiers()
    } else {
        vec![bench_tier()]
    };
    for tier in tiers {
        for ty in [GgmlType::F16, GgmlType::Q8_0] {
            for &(rows, k) in &CLIP_SHAPES {
                for threads in [1, 2] {
                    for no_tile in [false, true] {
                        if no_tile && ty != GgmlType::F16 {
                            continue;
                        }
                        out.push(Case {
                            ty,
                            rows,
                            k,
                            n: 577,
                            threads,
                            tier,
                            ggml: false,
                            no_tile,
                        });
                    }
                }
            }
        }
    }
    out
}

fn clip_ggml_cases() -> Vec<Case> {
    let cases = clip_cases();
    let first = cases.first().map(|c| c.tier);
    cases
        .into_iter()
        .filter(|c| !c.no_tile && Some(c.tier) == first)
        .map(|c| Case {
            tier: Tier::Scalar,
            ggml: true,
            ..c
        })
        .collect()
}

#[divan::bench(args = clip_cases(), sample_count = 3, sample_size = 1)]
fn matmul_clip_ours(bencher: Bencher, case: &Case) {
    run_ours(bencher, case);
}

#[divan::bench(args = clip_ggml_cases(), sample_count = 3, sample_size = 1)]
fn matmul_clip_ggml(bencher: Bencher, case: &Case) {
    run_ggml(bencher, case);
}

/// Bytes of distinct weights the DRAM-bound cases rotate through: far beyond any last-level
/// cache (32 MiB of L3 on dev-2c-zen4, 480 MiB on the older Intel VM), so every iteration
/// streams its matrix from memory, as decoding does (each layer's weights are read once per
/// token).
const DRAM_WORKING_SET: usize = 2 << 30;

/// `count` copies of one weight matrix back to back, totalling at least [`DRAM_WORKING_SET`].
fn weight_set(ty: GgmlType, rows: usize, k: usize) -> (Vec<u8>, usize) {
    let matrix = weights(ty, rows, k);
    let count = DRAM_WORKING_SET.div_ceil(matrix.len());
    (matrix.repeat(count), matrix.len())
}

/// n = 1 at 4096×4096·11008 (FFN down) for Q4_K and Q8_0 (or the types `LLAVA_BENCH_TYPES`
/// names, e.g. `Q4_0,Q6_K` for the rest of the bench models), best tier, 1 and 2 threads.
fn dram_cases() -> Vec<Case> {
    let (rows, k) = SHAPES[2];
    let mut out = Vec::new();
    let types: Vec<GgmlType> = if std::env::var_os("LLAVA_BENCH_TYPES").is_some() {
        types()
    } else {
        vec![GgmlType::Q4_K, GgmlType::Q8_0]
    };
    for ty in types {
        for threads in [1, 2] {
            out.push(Case {
                ty,
                rows,
                k,
                n: 1,
                threads,
                tier: bench_tier(),
                ggml: false,
                no_tile: false,
            });
        }
    }
    out
}

fn dram_ggml_cases() -> Vec<Case> {
    dram_cases()
        .into_iter()
        .map(|c| Case {
            tier: Tier::Scalar,
            ggml: true,
            ..c
        })
        .collect()
}

/// Decode matmul from DRAM: each iteration multiplies by the next of ≥ 2 GiB of distinct
/// matrices (round-robin), so throughput compares with `memory_bandwidth`.
#[divan::bench(args = dram_cases(), sample_count = 50, sample_size = 2)]
fn matmul_dram_ours(bencher: Bencher, case: &Case) {
    let kernels = Kernels::for_tier(case.tier).expect("supported tier");
    let (set, matrix_bytes) = weight_set(case.ty, case.rows, case.k);
    let layout = bench_layout(kernels, case.ty, case.rows, case.k);
    let set = laid_out(case.ty, layout, case.rows, case.k, &set).unwrap_or(set);
    let matrices = matrices(case.ty, layout, case.rows, case.k, &set);
    let x = floats(case.k, 11);
    let mut y = vec![0f32; case.rows];
    let pool = pool(case.threads);
    let mut next = 0;
    bencher
        .counter(BytesCount::new(matrix_bytes))
        .bench_local(|| {
            let matrix = &matrices[next];
            next = (next + 1) % matrices.len();
            pool.install(|| matmul(kernels, matrix, &x, 1, &mut y))
                .expect("matmul");
        });
}

#[divan::bench(args = dram_ggml_cases(), sample_count = 50, sample_size = 2)]
fn matmul_dram_ggml(bencher: Bencher, case: &Case) {
    let (set, matrix_bytes) = weight_set(case.ty, case.rows, case.k);
    let count = set.len() / matrix_bytes;
    let m = GgmlMatmul::new(case, set, floats(case.k, 11));
    let mut next = 0;
    bencher
        .counter(BytesCount::new(matrix_bytes))
        .bench_local(|| {
            m.compute(next);
            next = (next + 1) % count;
        });
}

#[derive(Clone, Copy)]
struct DotCase {
    ty: GgmlType,
    tier: Option<Tier>,
    /// ggml's layout (one row per call), or a repacked one (one group of rows per call).
    layout: WeightLayout,
}

impl fmt::Display for DotCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.tier, self.layout) {
            (None, _) => write!(f, "{} ggml", self.ty),
            (Some(t), WeightLayout::Ggml) => write!(f, "{} {}", self.ty, t),
            (Some(t), layout) => write!(
                f,
                "{layout} {t} ({} rows)",
                layout.group_rows() * x8_groups()
            ),
        }
    }
}

/// Every supported tier and ggml, for the types of [`types`] (`LLAVA_BENCH_TYPES` applies),
/// and each tier's repacked layout for the type where it prefers one.
fn dot_cases() -> Vec<DotCase> {
    let mut out = Vec::new();
    for ty in types() {
        for tier in Tier::supported() {
            let kernels = Kernels::for_tier(tier).expect("supported tier");
            let repacked = preferred_layout(kernels, ty, 8, 4096);
            for layout in [WeightLayout::Ggml, repacked] {
                out.push(DotCase {
                    ty,
                    tier: Some(tier),
                    layout,
                });
                if repacked == WeightLayout::Ggml {
                    break;
                }
            }
        }
        out.push(DotCase {
            ty,
            tier: None,
            layout: WeightLayout::Ggml,
        });
    }
    out
}

/// Groups of rows per call of a repacked case of [`vec_dot_4096`]: 2, as an n = 1 matmul task
/// at k = 4096 holds.
fn x8_groups() -> usize {
    2
}

/// One 4096-element dot product (weights and activations in L1/L2): a tier's prepared decode
/// dot where it has one (`Kernels::decode_dot`), its activation row prepared outside the
/// timing as ggml's activation quantization is outside its `vec_dot`. A fixed sample size: left
/// to divan, a slow first call (ggml initialising) made it time single calls, below the
/// timer's precision.
#[divan::bench(args = dot_cases(), sample_size = 512)]
fn vec_dot_4096(bencher: Bencher, case: &DotCase) {
    const K: usize = 4096;
    let act = activation_type(case.ty).expect("paired");
    let w = weights(case.ty, 1, K);
    let mut a = vec![0u8; quant::row_bytes(act, K).expect("whole blocks")];
    let x = floats(K, 3);
    let scalar = Kernels::for_tier(Tier::Scalar).expect("scalar");
    scalar
        .quantize_activations(act, &x, &mut a)
        .expect("activations");
    if let (Some(tier), WeightLayout::Q4KX8 | WeightLayout::Q6KX8 | WeightLayout::Q8_0X8) =
        (case.tier, case.layout)
    {
        // Groups of 8 rows per call: divan's rows/s (items) compare with the others'.
        let kernels = Kernels::for_tier(tier).expect("supported tier");
        let group = kernels.repacked.get(case.layout).expect("a group dot");
        let rows = case.layout.group_rows() * x8_groups();
        let w =
            laid_out(case.ty, case.layout, rows, K, &weights(case.ty, rows, K)).expect("repacked");
        let mut prepared = vec![0u8; (group.prepared_bytes)(K)];
        (group.prepare)(K, &a, &mut prepared);
        let mut out = vec![0f32; rows];
        bencher
            .counter(BytesCount::new(w.len()))
            .counter(ItemsCount::new(rows))
            .bench_local(|| {
                (group.dot)(
                    K,
                    divan::black_box(&w),
                    divan::black_box(&prepared),
                    &mut out,
                );
                divan::black_box(&out);
            });
        return;
    }
    let bencher = bencher
        .counter(BytesCount::new(w.len()))
        .counter(ItemsCount::new(1usize));
    match case.tier {
        Some(tier) => {
            let kernels = Kernels::for_tier(tier).expect("supported tier");
            // A tier's prepared decode dot where it has one, its activation row prepared
            // outside the timing (as ggml's activation quantization is outside its vec_dot).
            let (dot, a) = match kernels.decode_dot(case.ty) {
                Some(prepared) => {
                    let mut out = vec![0u8; (prepared.prepared_bytes)(K)];
                    (prepared.prepare)(K, &a, &mut out);
                    (prepared.dot, out)
                }
                None => (kernels.vec_dot(case.ty).expect("kernel"), a),
            };
            bencher.bench_local(|| dot(K, divan::black_box(&w), divan::black_box(&a)));
        }
        None => {
            // SAFETY: returns a struct by value for a valid type id.
            let traits = unsafe { ggml::ggml_internal_get_type_traits(case.ty.id()) };
            let vec_dot = traits.vec_dot.expect("ggml vec_dot");
            bencher.bench_local(|| {
                let mut s = 0f32;
                // SAFETY: both rows hold K elements of their types; one float is written.
                unsafe {
                    vec_dot(
                        K as i32,
                        &mut s,
                        0,
                        divan::black_box(w.as_ptr()).cast::<c_void>(),
                        0,
                        divan::black_box(a.as_ptr()).cast::<c_void>(),
                        0,
                        1,
                    )
                };
                s
            });
        }
    }
}

/// Memory read bandwidth, the reference for `matmul_dram_*`: a buffer far beyond the
/// last-level cache ([`DRAM_WORKING_SET`]; L3 is 32 MiB on dev-2c-zen4), its pages written
/// first, read in windows of [`PROBE_WINDOW`] bytes, each iteration the next window (as
/// `matmul_dram_*` takes the next matrix), split evenly among the 1 or 2 threads of the rayon
/// pool (`broadcast`). Short iterations make the median robust to a preempted sample on a
/// shared machine. [`read_sum`] adds 64-byte lines with 512-bit (or
/// 256-bit) aligned loads into 8 independent accumulators: `memory_bandwidth_in_cache` runs
/// the same loop on an L2-resident buffer, several times faster, so here memory is the bound.
#[divan::bench(args = [1, 2], sample_count = 200, sample_size = 1)]
fn memory_bandwidth(bencher: Bencher, threads: usize) {
    probe_windows(bencher, threads, read_sum);
}

/// [`memory_bandwidth`] with each thread reading its part as [`PROBE_STREAMS`] sequential
/// streams at once (its quarters, line by line in turn), as a decode matmul's threads read
/// several rows' streams: one stream per thread leaves DRAM bandwidth unused on dev-2c-zen4
/// (llama.cpp's Q4_K_M decode implied ≈ 33 GB/s against the one-stream probe's 30).
#[divan::bench(args = [1, 2], sample_count = 200, sample_size = 1)]
fn memory_bandwidth_streams(bencher: Bencher, threads: usize) {
    probe_windows(bencher, threads, read_sum_streams);
}

/// The DRAM probes' loop: each iteration `read`s the next [`PROBE_WINDOW`] of a
/// [`DRAM_WORKING_SET`] buffer, split evenly among the pool's `threads`.
fn probe_windows(bencher: Bencher, threads: usize, read: fn(&[Line]) -> u64) {
    let buffer = probe_buffer(DRAM_WORKING_SET);
    let windows: Vec<&[Line]> = buffer.chunks_exact(PROBE_WINDOW / 64).collect();
    let pool = pool(threads);
    let mut next = 0;
    bencher
        .counter(BytesCount::new(PROBE_WINDOW))
        .bench_local(|| {
            let window = windows[next];
            next = (next + 1) % windows.len();
            let part = window.len().div_ceil(threads);
            pool.broadcast(|ctx| read(window.chunks(part).nth(ctx.index()).unwrap_or(&[])))
                .into_iter()
                .fold(0, u64::wrapping_add)
        });
}

/// Sequential streams per thread of [`memory_bandwidth_streams`] (x86-64 only: elsewhere the
/// probe reads one stream).
#[cfg(target_arch = "x86_64")]
const PROBE_STREAMS: usize = 4;

/// The wrapping sum of every word of `lines`, read as [`PROBE_STREAMS`] streams (the first
/// `PROBE_STREAMS` equal parts, two lines of each in turn) and then the rest.
fn read_sum_streams(lines: &[Line]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            let per_stream = lines.len() / (2 * PROBE_STREAMS) * 2;
            let (body, rest) = lines.split_at(per_stream * PROBE_STREAMS);
            // SAFETY: AVX-512 F was detected just above.
            let sum = unsafe { read_streams_avx512(body, per_stream) };
            return rest.iter().flat_map(|l| l.0).fold(sum, u64::wrapping_add);
        }
    }
    lines.iter().flat_map(|l| l.0).fold(0, u64::wrapping_add)
}

/// [`read_sum_streams`]'s body: `body` holds [`PROBE_STREAMS`] streams of `per_stream` (even)
/// lines; each step adds two lines of every stream (8 accumulators, one 512-bit load a line).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn read_streams_avx512(body: &[Line], per_stream: usize) -> u64 {
    use std::arch::x86_64::*;
    let streams: [&[Line]; PROBE_STREAMS] =
        std::array::from_fn(|s| &body[s * per_stream..(s + 1) * per_stream]);
    let mut acc = [_mm512_setzero_si512(); 2 * PROBE_STREAMS];
    for step in (0..per_stream).step_by(2) {
        for (s, stream) in streams.iter().enumerate() {
            for k in 0..2 {
                let line = &stream[step + k];
                // SAFETY: a whole, 64-byte-aligned line of the slice.
                let v = unsafe { _mm512_load_si512(line.0.as_ptr().cast()) };
                acc[2 * s + k] = _mm512_add_epi64(acc[2 * s + k], v);
            }
        }
    }
    let total = acc
        .iter()
        .fold(_mm512_setzero_si512(), |s, &a| _mm512_add_epi64(s, a));
    _mm512_reduce_add_epi64(total) as u64
}

/// Bytes the probe reads per iteration: about one 4096×11008 Q4_K matrix (25 MB).
const PROBE_WINDOW: usize = 32 << 20;

/// The probe's loop on 512 KiB per thread (each core's own buffer, in its L2), read 64 times
/// per iteration: how fast the loop itself goes when memory is not the bound.
#[divan::bench(args = [1, 2], sample_count = 10, sample_size = 1)]
fn memory_bandwidth_in_cache(bencher: Bencher, threads: usize) {
    const PER_THREAD: usize = 512 << 10;
    const PASSES: usize = 64;
    let buffers: Vec<Vec<Line>> = (0..threads).map(|_| probe_buffer(PER_THREAD)).collect();
    let pool = pool(threads);
    bencher
        .counter(BytesCount::new(PER_THREAD * PASSES * threads))
        .bench_local(|| {
            pool.broadcast(|ctx| {
                let lines = &buffers[ctx.index()];
                (0..PASSES).fold(0u64, |s, _| s.wrapping_add(read_sum(lines)))
            })
        });
}

/// One 64-byte cache line (aligned, so every vector load of the probe is aligned).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// `bytes` (a multiple of 64) of distinct values: written, not zeroed, so every page is
/// touched and none is a shared zero page.
fn probe_buffer(bytes: usize) -> Vec<Line> {
    (0..bytes as u64 / 64)
        .map(|i| {
            Line(std::array::from_fn(|j| {
                (8 * i + j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            }))
        })
        .collect()
}

/// The wrapping sum of every word of `lines`, with the widest loads this CPU has.
fn read_sum(lines: &[Line]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512 F was detected just above.
            return unsafe { read_sum_avx512(lines) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected just above.
            return unsafe { read_sum_avx2(lines) };
        }
    }
    lines.iter().flat_map(|l| l.0).fold(0, u64::wrapping_add)
}

/// [`read_sum`] with one 512-bit load per line, 8 lines (8 accumulators) per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn read_sum_avx512(lines: &[Line]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_si512(); 8];
    let steps = lines.chunks_exact(8);
    let rest = steps.remainder();
    for step in steps {
        for (a, line) in acc.iter_mut().zip(step) {
            // SAFETY: a whole, 64-byte-aligned line of the slice.
            *a = _mm512_add_epi64(*a, unsafe { _mm512_load_si512(line.0.as_ptr().cast()) });
        }
    }
    let total = acc
        .iter()
        .fold(_mm512_setzero_si512(), |s, &a| _mm512_add_epi64(s, a));
    rest.iter()
        .flat_map(|l| l.0)
        .fold(_mm512_reduce_add_epi64(total) as u64, u64::wrapping_add)
}

/// [`read_sum`] with two 256-bit loads per line, 4 lines (8 accumulators) per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_sum_avx2(lines: &[Line]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 8];
    let steps = lines.chunks_exact(4);
    let rest = steps.remainder();
    for step in steps {
        for (i, line) in step.iter().enumerate() {
            let p = line.0.as_ptr().cast::<__m256i>();
            // SAFETY: the two aligned halves of a whole line of the slice.
            unsafe {
                acc[2 * i] = _mm256_add_epi64(acc[2 * i], _mm256_load_si256(p));
                acc[2 * i + 1] = _mm256_add_epi64(acc[2 * i + 1], _mm256_load_si256(p.add(1)));
            }
        }
    }
    let mut words = [0u64; 4];
    let total = acc
        .iter()
        .fold(_mm256_setzero_si256(), |s, &a| _mm256_add_epi64(s, a));
    // SAFETY: 32 writable bytes; storeu has no alignment requirement.
    unsafe { _mm256_storeu_si256(words.as_mut_ptr().cast(), total) };
    rest.iter()
        .flat_map(|l| l.0)
        .chain(words)
        .fold(0, u64::wrapping_add)
}

/// FMA steps per thread and call of [`fma_peak`].
const FMA_STEPS: usize = 1 << 18;
/// Independent accumulators of [`fma_peak`]'s loop: more than FMA latency × FMA ports.
const FMA_CHAINS: usize = 12;

/// The f32 FMA peak of the widest vectors, on 1 and 2 threads: register-only FMA chains, the
/// counter in flops (an FMA is two), so "item/s" reads as FLOP/s. The bound of the float GEMMs
/// (CLIP with an F16 mmproj): an encode cannot beat its FLOP count divided by this.
#[divan::bench(args = [1, 2], sample_count = 20, sample_size = 1)]
fn fma_peak(bencher: Bencher, threads: usize) {
    let pool = pool(threads);
    let lanes = if cfg!(target_arch = "x86_64") && is_avx512() {
        16
    } else {
        8
    };
    let flops = FMA_STEPS * FMA_CHAINS * lanes * 2 * threads;
    bencher.counter(ItemsCount::new(flops)).bench_local(|| {
        pool.broadcast(|_| fma_chains(divan::black_box(1.0 + 1e-7)))
            .into_iter()
            .sum::<f32>()
    });
}

#[cfg(target_arch = "x86_64")]
fn is_avx512() -> bool {
    is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn is_avx512() -> bool {
    false
}

/// [`FMA_CHAINS`] accumulators, each `acc = acc · m + m` [`FMA_STEPS`] times.
fn fma_chains(m: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_avx512() {
            // SAFETY: AVX-512 F was detected just above.
            return unsafe { fma_chains_avx512(m) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA were detected just above.
            return unsafe { fma_chains_avx2(m) };
        }
    }
    // Eight scalar lanes per chain: the portable fallback's figure is a scalar FMA rate.
    let mut acc = [[0f32; 8]; FMA_CHAINS];
    for _ in 0..FMA_STEPS {
        for a in acc.iter_mut().flatten() {
            *a = a.mul_add(m, m);
        }
    }
    acc.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_avx512(m: f32) -> f32 {
    use std::arch::x86_64::*;
    let mv = _mm512_set1_ps(m);
    let mut acc = [_mm512_setzero_ps(); FMA_CHAINS];
    for _ in 0..FMA_STEPS {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, mv, mv);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_avx2(m: f32) -> f32 {
    use std::arch::x86_64::*;
    let mv = _mm256_set1_ps(m);
    let mut acc = [_mm256_setzero_ps(); FMA_CHAINS];
    for _ in 0..FMA_STEPS {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, mv, mv);
        }
    }
    let mut lanes = [0f32; 8];
    let total = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
    // SAFETY: 32 writable bytes; storeu has no alignment requirement.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), total) };
    lanes.iter().sum()
}

/// The decode loop's projections of one layer for one token (Q4_K, LLaMA-7B: Q, K, V of
/// 4096×4096 then FFN gate and up of 11008×4096), one `matmul` per matrix (`separate`) or one
/// `matmul_vec_many` per group (`fused`: one activation quantization and one fork-join per
/// group), 1 and 2 threads, best tier.
#[divan::bench(args = [(false, 1), (true, 1), (false, 2), (true, 2)])]
fn decode_projections(bencher: Bencher, (fused, threads): (bool, usize)) {
    let kernels = Kernels::for_tier(bench_tier()).expect("supported tier");
    let ty = GgmlType::Q4_K;
    let (d, ff) = (4096, 11008);
    let attn = weights(ty, d, d);
    let ffn = weights(ty, ff, d);
    let layout = bench_layout(kernels, ty, d, d);
    let packed = [
        laid_out(ty, layout, d, d, &attn),
        laid_out(ty, layout, ff, d, &ffn),
    ];
    let attn_m = matrices(ty, layout, d, d, packed[0].as_deref().unwrap_or(&attn))[0];
    let ffn_m = matrices(ty, layout, ff, d, packed[1].as_deref().unwrap_or(&ffn))[0];
    let groups: [Vec<QuantMatrix>; 2] = [vec![attn_m; 3], vec![ffn_m; 2]];
    let x = floats(d, 11);
    let mut outs: Vec<Vec<Vec<f32>>> = groups
        .iter()
        .map(|g| g.iter().map(|m| vec![0f32; m.rows()]).collect())
        .collect();
    let pool = pool(threads);
    bencher
        .counter(BytesCount::new(3 * attn.len() + 2 * ffn.len()))
        .bench_local(|| {
            pool.install(|| {
                for (group, out) in groups.iter().zip(outs.iter_mut()) {
                    if fused {
                        let mut views: Vec<&mut [f32]> =
                            out.iter_mut().map(|v| &mut v[..]).collect();
                        matmul_vec_many(kernels, group, &x, &mut views).expect("matmul");
                    } else {
                        for (m, y) in group.iter().zip(out.iter_mut()) {
                            matmul(kernels, m, &x, 1, y).expect("matmul");
                        }
                    }
                }
            })
        });
}

/// Attention of one query over a 7B layer's f16 cache (32 heads of 128) at 1, 64 and 128
/// positions, 2 threads: the decode loop's per-layer cost beside the matmuls (tg128 averages
/// 64 positions; ×32 layers per token).
#[divan::bench(args = [1, 64, 128])]
fn decode_attention(bencher: Bencher, n_kv: usize) {
    use half::f16;
    use llava::ops::{AttentionParams, KvRows, attention};
    let (heads, d) = (32, 128);
    let cache: Vec<f16> = floats(n_kv * heads * d, 5)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let q = floats(heads * d, 6);
    let mut out = vec![0f32; heads * d];
    let params = AttentionParams::new(heads, heads, d).causal();
    let pool = pool(2);
    bencher.bench_local(|| {
        pool.install(|| {
            attention(
                &q,
                KvRows::F16(&cache),
                KvRows::F16(&cache),
                n_kv,
                &params,
                &mut out,
            )
        })
        .expect("attention")
    });
}

/// Prompt attention over a 7B layer's f16 cache (32 heads of 128), causal, `n` queries over
/// `n` keys, 2 threads: pp512, pp2048 and the LLaVA-NeXT job's 2928-token prompt.
#[divan::bench(args = [512, 2048, 2928])]
fn prefill_attention(bencher: Bencher, n: usize) {
    use half::f16;
    use llava::ops::{AttentionParams, KvRows, attention};
    let (heads, d) = (32, 128);
    let cache: Vec<f16> = floats(n * heads * d, 5)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let q = floats(n * heads * d, 6);
    let mut out = vec![0f32; n * heads * d];
    let params = AttentionParams::new(heads, heads, d).causal();
    let pool = pool(2);
    bencher.bench_local(|| {
        pool.install(|| {
            attention(
                &q,
                KvRows::F16(&cache),
                KvRows::F16(&cache),
                n,
                &params,
                &mut out,
            )
        })
        .expect("attention")
    });
}

/// CLIP ViT-L/14-336's attention: 577 tokens, 16 heads of 64, f32, not causal, 2 threads.
#[divan::bench]
fn clip_attention(bencher: Bencher) {
    use llava::ops::{AttentionParams, KvRows, attention};
    let (n, heads, d) = (577, 16, 64);
    let k = floats(n * heads * d, 7);
    let v = floats(n * heads * d, 8);
    let q = floats(n * heads * d, 9);
    let mut out = vec![0f32; n * heads * d];
    let params = AttentionParams::new(heads, heads, d);
    let pool = pool(2);
    bencher.bench_local(|| {
        pool.install(|| attention(&q, KvRows::F32(&k), KvRows::F32(&v), n, &params, &mut out))
            .expect("attention")
    });
}

/// Rounds of [`dram_paired`]: each times one probe window, one of our matmuls and one of ggml's.
const PAIRED_ROUNDS: usize = 60;

/// Decode matmul from DRAM against the bandwidth probe, **interleaved**: each round times one
/// probe window ([`memory_bandwidth_streams`]' read), one of our n = 1 matmuls and one of
/// ggml's, each on the next matrix of its own ≥ 2 GiB set, in an order that rotates by round.
/// Run one after the other (divan's `matmul_dram_*` and `memory_bandwidth`), the three saw
/// this VM's memory bandwidth at different moments: it moved by a third within minutes, so
/// the "% of the probe" swung from 72% to 92% between runs. Paired by round, each ratio
/// compares two figures taken a fraction of a second apart; the table gives the medians of
/// the per-round ratios. Cases: [`dram_cases`] (`LLAVA_BENCH_TYPES`, `LLAVA_CPU` apply).
fn dram_paired() {
    println!(
        "n = 1 from DRAM, interleaved with the probe ({PAIRED_ROUNDS} rounds; GB/s of weight \
         bytes, medians; ours and ggml as % of the same round's probe, median over rounds)\n"
    );
    println!(
        "| case | threads | probe GB/s | ours GB/s | ggml GB/s | ours % of probe | ggml % of probe | ggml / ours time |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let probe = probe_buffer(DRAM_WORKING_SET);
    let windows: Vec<&[Line]> = probe.chunks_exact(PROBE_WINDOW / 64).collect();
    for case in dram_cases() {
        let kernels = Kernels::for_tier(case.tier).expect("supported tier");
        let (set, matrix_bytes) = weight_set(case.ty, case.rows, case.k);
        let count = set.len() / matrix_bytes;
        let ggml_case = Case { ggml: true, ..case };
        // One set for both (the same pages); ggml half the set away from ours each round, so
        // neither finds the matrix the other just read in the last-level cache.
        let theirs = GgmlMatmul::new(&ggml_case, set, floats(case.k, 11));
        // Ours on a repacked copy where the tier prefers it (2 GiB more), else the same bytes.
        let layout = bench_layout(kernels, case.ty, case.rows, case.k);
        let packed = laid_out(case.ty, layout, case.rows, case.k, theirs.weights());
        let ours_bytes = packed.as_deref().unwrap_or(theirs.weights());
        let matrices = matrices(case.ty, layout, case.rows, case.k, ours_bytes);
        let x = floats(case.k, 11);
        let mut y = vec![0f32; case.rows];
        let pool = pool(case.threads);
        let threads = case.threads;
        let gbs = |bytes: usize, t: std::time::Duration| bytes as f64 / t.as_secs_f64() / 1e9;
        let (mut p, mut o, mut g) = (Vec::new(), Vec::new(), Vec::new());
        // One untimed round first: thread pools started, code and activations in cache.
        for round in 0..=PAIRED_ROUNDS {
            let (mut tp, mut to, mut tg) = (0.0, 0.0, 0.0);
            for step in 0..3 {
                let start = std::time::Instant::now();
                match (round + step) % 3 {
                    0 => {
                        let window = windows[round % windows.len()];
                        let part = window.len().div_ceil(threads);
                        let sum = pool
                            .broadcast(|ctx| {
                                read_sum_streams(
                                    window.chunks(part).nth(ctx.index()).unwrap_or(&[]),
                                )
                            })
                            .into_iter()
                            .fold(0, u64::wrapping_add);
                        divan::black_box(sum);
                        tp = gbs(PROBE_WINDOW, start.elapsed());
                    }
                    1 => {
                        pool.install(|| matmul(kernels, &matrices[round % count], &x, 1, &mut y))
                            .expect("matmul");
                        divan::black_box(&y);
                        to = gbs(matrix_bytes, start.elapsed());
                    }
                    _ => {
                        theirs.compute((round + count / 2) % count);
                        tg = gbs(matrix_bytes, start.elapsed());
                    }
                }
            }
            if round > 0 {
                p.push(tp);
                o.push(to);
                g.push(tg);
            }
        }
        let ours_pct: Vec<f64> = o.iter().zip(&p).map(|(a, b)| 100.0 * a / b).collect();
        let ggml_pct: Vec<f64> = g.iter().zip(&p).map(|(a, b)| 100.0 * a / b).collect();
        let speedup: Vec<f64> = o.iter().zip(&g).map(|(a, b)| a / b).collect();
        println!(
            "| {} {}×{}{} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} |",
            case.ty,
            case.rows,
            case.k,
            ours_layout_note(layout),
            threads,
            median(p),
            median(o),
            median(g),
            median(ours_pct),
            median(ggml_pct),
            median(speedup)
        );
    }
}

/// What the tables add after our case where ours ran on a repacked layout.
fn ours_layout_note(layout: WeightLayout) -> String {
    match layout {
        WeightLayout::Ggml => String::new(),
        other => format!(" (ours: {other} repacked)"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Rounds of [`n1_paired`]; each times a batch of our matmuls and a batch of ggml's.
const N1_ROUNDS: usize = 61;

/// Wall time a batch of [`n1_paired`] aims at, so a round spans several calls of a fast case.
const N1_BATCH: std::time::Duration = std::time::Duration::from_millis(3);

/// The n = 1 matmul cases (`matmul_n1_*`: one matrix, reused) with ours and ggml's
/// **interleaved** on the same bytes: each round times a batch of our calls and a batch of
/// ggml's, the one first that was second the round before. The table gives each side's
/// fastest and median batch, the ratio ggml / ours of the fastest batches, and the median of
/// the per-round ratios with their 10th–90th percentile. Timed one after the other by divan,
/// the two sides of a cell saw this VM at moments seconds apart, and single cells moved by
/// ±30% between runs; on a busy host single batches still move by 2–3×, which the fastest
/// batches (as divan's "fastest") filter out. Where the tier prefers a repacked layout
/// (Q4_K×8) ours runs on a repacked copy, and each batch follows one untimed call of its side
/// (the two copies need not fit the last-level cache together). Cases: [`cases`]`(1)` (`LLAVA_BENCH_TYPES`,
/// `LLAVA_BENCH_TIERS` and `LLAVA_CPU` apply); ggml's SIMD is its build's (AVX2) whatever our
/// tier.
fn n1_paired() {
    println!(
        "n = 1, one matrix reused, ours and ggml interleaved on the same bytes (ours on a \
         repacked copy where marked; {N1_ROUNDS} rounds of ≈ {} ms batches, each after one \
         untimed call; µs per matmul, fastest / median batch; ratios ggml / ours: \
         of the fastest batches, and the per-round median with its 10th–90th percentile)\n",
        N1_BATCH.as_millis()
    );
    println!(
        "| type | rows × k | threads | tier | ours µs | ggml µs | fastest ratio | median ratio | p10–p90 |"
    );
    println!("|---|---|---:|---|---:|---:|---:|---:|---|");
    for case in cases(1) {
        let kernels = Kernels::for_tier(case.tier).expect("supported tier");
        let ggml_case = Case {
            tier: Tier::Scalar,
            ggml: true,
            ..case
        };
        let w = weights(case.ty, case.rows, case.k);
        let theirs = GgmlMatmul::new(&ggml_case, w, floats(case.k, 11));
        // Ours on ggml's bytes (both sides read the same pages), or on a repacked copy where
        // the tier prefers it.
        let layout = bench_layout(kernels, case.ty, case.rows, case.k);
        let packed = laid_out(case.ty, layout, case.rows, case.k, theirs.weights());
        let ours_bytes = packed.as_deref().unwrap_or(theirs.weights());
        let matrix = matrices(case.ty, layout, case.rows, case.k, ours_bytes)[0];
        let x = floats(case.k, 11);
        let mut y = vec![0f32; case.rows];
        let pool = pool(case.threads);
        let mut ours = || {
            pool.install(|| matmul(kernels, &matrix, &x, 1, &mut y))
                .expect("matmul");
            divan::black_box(&y);
        };
        let mut ggml = || theirs.compute(0);
        // Untimed warm-up, which also sizes each side's batch.
        let calls = |f: &mut dyn FnMut()| {
            let start = std::time::Instant::now();
            let mut n = 0u32;
            while n < 3 || start.elapsed() < N1_BATCH {
                f();
                n += 1;
            }
            n
        };
        let (ours_calls, ggml_calls) = (calls(&mut ours), calls(&mut ggml));
        let timed = |f: &mut dyn FnMut(), n: u32| {
            // One untimed call first: a repacked copy (ours) and ggml's bytes are two matrices,
            // and at 4096×11008 the two (2 × 25 MB) do not share the last-level cache, so each
            // batch would otherwise start from memory after the other side's.
            f();
            let start = std::time::Instant::now();
            for _ in 0..n {
                f();
            }
            start.elapsed().as_secs_f64() / f64::from(n)
        };
        let (mut o, mut g) = (Vec::new(), Vec::new());
        for round in 0..N1_ROUNDS {
            if round % 2 == 0 {
                o.push(timed(&mut ours, ours_calls));
                g.push(timed(&mut ggml, ggml_calls));
            } else {
                g.push(timed(&mut ggml, ggml_calls));
                o.push(timed(&mut ours, ours_calls));
            }
        }
        let mut ratios: Vec<f64> = g.iter().zip(&o).map(|(g, o)| g / o).collect();
        ratios.sort_by(f64::total_cmp);
        let (p10, p90) = (
            ratios[N1_ROUNDS / 10],
            ratios[N1_ROUNDS - 1 - N1_ROUNDS / 10],
        );
        let fastest = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let (o_min, g_min) = (fastest(&o), fastest(&g));
        println!(
            "| {} | {}×{} | {} | {}{} | {:.0} / {:.0} | {:.0} / {:.0} | **{:.2}** | {:.2} | {:.2}–{:.2} |",
            case.ty,
            case.rows,
            case.k,
            case.threads,
            case.tier.name(),
            ours_layout_note(layout),
            1e6 * o_min,
            1e6 * median(o),
            1e6 * g_min,
            1e6 * median(g),
            g_min / o_min,
            median(ratios),
            p10,
            p90
        );
    }
}
