//! Kernel benchmarks: ours (each supported tier) against ggml's (the oracle crate, ggml of
//! llama.cpp b2757 built by its build script with this host's AVX2/FMA/F16C flags and, in
//! bench builds, -O3), at LLaMA-7B shapes, plus a memory-bandwidth probe.
//!
//! `cargo bench --bench kernels` runs a modest default set: vec_dot per type and tier, matmul
//! n = 1 at every shape (best tier and ggml, 1 and 2 threads), n = 512 at 4096×4096 for Q4_K
//! and Q8_0, and the bandwidth probe. `LLAVA_BENCH_FULL=1` adds every tier, every type at
//! n = 512 and every shape. Filter with divan's arguments, e.g.
//! `cargo bench --bench kernels -- matmul_n1`.
//!
//! Counters: weight bytes per matmul (so n = 1 throughput compares with the bandwidth probe)
//! and bytes summed by the probe.

use std::ffi::c_void;
use std::fmt;
use std::sync::OnceLock;

use divan::Bencher;
use divan::counter::BytesCount;
use ggml_sys_bleedingedge as ggml;
use llava::GgmlType;
use llava::kernels::{Kernels, QuantMatrix, Tier, activation_type, matmul};
use llava::quant;
use rayon::ThreadPool;

fn main() {
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
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} n={} t={} {}",
            self.ty,
            self.rows,
            self.k,
            self.n,
            self.threads,
            if self.ggml { "ggml" } else { self.tier.name() }
        )
    }
}

fn tiers() -> Vec<Tier> {
    if full() {
        Tier::supported()
    } else {
        vec![Tier::best_supported()]
    }
}

fn cases(n: usize) -> Vec<Case> {
    let mut out = Vec::new();
    for tier in tiers() {
        for ty in TYPES {
            for (i, &(rows, k)) in SHAPES.iter().enumerate() {
                let default_set =
                    n == 1 || (i == 0 && matches!(ty, GgmlType::Q4_K | GgmlType::Q8_0));
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
                    });
                }
            }
        }
    }
    out
}

/// The same cases for ggml (whose SIMD is whatever its build flags chose).
fn ggml_cases(n: usize) -> Vec<Case> {
    let best = Tier::best_supported();
    cases(n)
        .into_iter()
        .filter(|c| c.tier == best)
        .map(|c| Case {
            tier: Tier::Scalar,
            ..c
        })
        .collect()
}

fn run_ours(bencher: Bencher, case: &Case) {
    let kernels = Kernels::for_tier(case.tier).expect("supported tier");
    let w = weights(case.ty, case.rows, case.k);
    let matrix = QuantMatrix::new(case.ty, case.rows, case.k, &w).expect("matrix");
    let x = floats(case.n * case.k, 11);
    let mut y = vec![0f32; case.n * case.rows];
    let pool = pool(case.threads);
    bencher.counter(BytesCount::new(w.len())).bench_local(|| {
        pool.install(|| matmul(kernels, &matrix, &x, case.n, &mut y))
            .expect("matmul");
    });
}

/// ggml's `ggml_mul_mat` on one context, computed with `threads` threads.
struct GgmlMatmul {
    ctx: *mut ggml::ggml_context,
    graph: *mut ggml::ggml_cgraph,
    plan: ggml::ggml_cplan,
    _work: Vec<u8>,
}

impl GgmlMatmul {
    fn new(case: &Case, w: &[u8], x: &[f32]) -> GgmlMatmul {
        let y_bytes = case.n * case.rows * 4;
        // The tensors, plus room for their headers and the graph.
        let mem = w.len() + x.len() * 4 + y_bytes + (4 << 20);
        let params = ggml::ggml_init_params {
            mem_size: mem,
            mem_buffer: std::ptr::null_mut(),
            no_alloc: false,
        };
        // SAFETY: FFI calls on a fresh context sized for its three tensors and a graph; the
        // copies write exactly the tensors' sizes.
        unsafe {
            let ctx = ggml::ggml_init(params);
            assert!(!ctx.is_null(), "ggml_init");
            let wt = ggml::ggml_new_tensor_2d(ctx, case.ty.id(), case.k as i64, case.rows as i64);
            std::ptr::copy_nonoverlapping(w.as_ptr(), (*wt).data.cast::<u8>(), w.len());
            let xt =
                ggml::ggml_new_tensor_2d(ctx, GgmlType::F32.id(), case.k as i64, case.n as i64);
            std::ptr::copy_nonoverlapping(x.as_ptr(), (*xt).data.cast::<f32>(), x.len());
            let yt = ggml::ggml_mul_mat(ctx, wt, xt);
            let graph = ggml::ggml_new_graph(ctx);
            ggml::ggml_build_forward_expand(graph, yt);
            let mut plan = ggml::ggml_graph_plan(graph, case.threads as i32);
            let mut work = vec![0u8; plan.work_size.max(1)];
            plan.work_data = work.as_mut_ptr();
            GgmlMatmul {
                ctx,
                graph,
                plan,
                _work: work,
            }
        }
    }

    fn compute(&mut self) {
        // SAFETY: the graph and plan were built on this live context; the work buffer is
        // plan.work_size bytes and outlives the call.
        unsafe { ggml::ggml_graph_compute(self.graph, &mut self.plan) };
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
    let x = floats(case.n * case.k, 11);
    let mut m = GgmlMatmul::new(case, &w, &x);
    bencher
        .counter(BytesCount::new(w.len()))
        .bench_local(|| m.compute());
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

#[derive(Clone, Copy)]
struct DotCase {
    ty: GgmlType,
    tier: Option<Tier>,
}

impl fmt::Display for DotCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tier {
            Some(t) => write!(f, "{} {}", self.ty, t),
            None => write!(f, "{} ggml", self.ty),
        }
    }
}

fn dot_cases() -> Vec<DotCase> {
    let mut out = Vec::new();
    for ty in TYPES {
        for tier in Tier::supported() {
            out.push(DotCase {
                ty,
                tier: Some(tier),
            });
        }
        out.push(DotCase { ty, tier: None });
    }
    out
}

/// One 4096-element dot product (weights and activations in L1/L2).
#[divan::bench(args = dot_cases())]
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
    let bencher = bencher.counter(BytesCount::new(w.len()));
    match case.tier {
        Some(tier) => {
            let dot = Kernels::for_tier(tier)
                .and_then(|k| k.vec_dot(case.ty))
                .expect("kernel");
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

/// Memory bandwidth: a parallel sum over 512 MiB (far larger than any cache).
#[divan::bench(args = [1, 2], sample_count = 10, sample_size = 1)]
fn memory_bandwidth(bencher: Bencher, threads: usize) {
    use rayon::prelude::*;
    let buffer = floats(128 << 20, 5);
    let pool = pool(threads);
    bencher
        .counter(BytesCount::new(buffer.len() * 4))
        .bench_local(|| {
            pool.install(|| {
                buffer
                    .par_chunks(1 << 18)
                    .map(|chunk| {
                        let mut lanes = [0f32; 16];
                        for c in chunk.as_chunks::<16>().0 {
                            for l in 0..16 {
                                lanes[l] += c[l];
                            }
                        }
                        lanes.iter().sum::<f32>()
                    })
                    .sum::<f32>()
            })
        });
}
