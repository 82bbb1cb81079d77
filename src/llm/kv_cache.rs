//! The key/value cache: per layer, the roped keys and the values of every position so far,
//! `n_ctx` rows of `n_head_kv · head_dim`, in f16 (llama.cpp's default, half the memory) or
//! f32 (exact: what the fixture tests compare with). Room for all `n_ctx` positions is reserved
//! at creation (a context the system cannot hold fails then), but memory is touched only as
//! positions are written: a job costs the positions it uses.

use half::f16;

use super::LlmError;
use crate::ops::KvRows;

/// Element type of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CacheType {
    #[default]
    F16,
    F32,
}

impl CacheType {
    pub fn parse(name: &str) -> Option<CacheType> {
        match name.to_ascii_lowercase().as_str() {
            "f16" => Some(CacheType::F16),
            "f32" => Some(CacheType::F32),
            _ => None,
        }
    }

    fn bytes(self) -> usize {
        match self {
            CacheType::F16 => 2,
            CacheType::F32 => 4,
        }
    }
}

/// One layer's keys or values: capacity for every position reserved up front, length (the
/// memory actually touched) grown as positions are written, so a cache costs the positions a
/// job uses, not the whole context.
#[derive(Debug)]
enum Buf {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// `n` values of room, none written; an allocation the system refuses is `None`, not an abort.
fn reserve<T>(n: usize) -> Option<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    Some(v)
}

/// Writes `src` at `at` of `buf`, appending what lies past its end (`at` is never past the
/// end: positions are written in order, or rewritten after a truncation). `convert` maps
/// each value to the element type.
fn write_at<T: Copy>(buf: &mut Vec<T>, at: usize, src: &[f32], convert: impl Fn(f32) -> T) {
    assert!(
        at <= buf.len() && at + src.len() <= buf.capacity(),
        "KV cache write of {} values at {at}: {} written, room for {}",
        src.len(),
        buf.len(),
        buf.capacity()
    );
    let overlap = (buf.len() - at).min(src.len());
    for (d, &s) in buf[at..at + overlap].iter_mut().zip(&src[..overlap]) {
        *d = convert(s);
    }
    // Within the reserved capacity: never reallocates.
    buf.extend(src[overlap..].iter().map(|&s| convert(s)));
}

impl Buf {
    fn new(ty: CacheType, n: usize) -> Option<Buf> {
        Some(match ty {
            CacheType::F16 => Buf::F16(reserve(n)?),
            CacheType::F32 => Buf::F32(reserve(n)?),
        })
    }

    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Buf::F16(b) => write_at(b, at, src, f16::from_f32),
            Buf::F32(b) => write_at(b, at, src, |s| s),
        }
    }

    fn rows(&self, n: usize) -> KvRows<'_> {
        match self {
            Buf::F16(b) => KvRows::F16(&b[..n]),
            Buf::F32(b) => KvRows::F32(&b[..n]),
        }
    }

    fn written(&self) -> usize {
        match self {
            Buf::F16(b) => b.len(),
            Buf::F32(b) => b.len(),
        }
    }
}

/// Keys and values of every layer.
#[derive(Debug)]
pub struct KvCache {
    n_ctx: usize,
    width: usize,
    ty: CacheType,
    layers: Vec<(Buf, Buf)>,
}

impl KvCache {
    /// A cache of `n_ctx` positions for `n_layer` layers of K/V rows `width` wide.
    pub fn new(
        n_layer: usize,
        n_ctx: usize,
        width: usize,
        ty: CacheType,
    ) -> Result<KvCache, LlmError> {
        let per_buf = n_ctx.checked_mul(width);
        let total = per_buf
            .and_then(|n| n.checked_mul(2 * n_layer))
            .and_then(|n| n.checked_mul(ty.bytes()));
        let (Some(per_buf), Some(total)) = (per_buf, total) else {
            return Err(LlmError::CacheTooLarge {
                n_ctx,
                detail: "would need more bytes than the address space holds".into(),
            });
        };
        let too_large = || LlmError::CacheTooLarge {
            n_ctx,
            detail: format!(
                "needs {:.1} GiB, which could not be allocated",
                total as f64 / (1u64 << 30) as f64
            ),
        };
        // Refuse what cannot exist rather than abort in the allocator. The whole cache is asked
        // for once (and given back untouched): the system refuses one request beyond its
        // memory (Linux's default overcommit heuristic), where the per-buffer ones, each small
        // enough, would all be granted and the job killed when it filled them.
        // (`black_box`: an allocation never used may otherwise be optimised away.)
        if total as u64 > (isize::MAX as u64) / 2
            || std::hint::black_box(reserve::<u8>(total)).is_none()
        {
            return Err(too_large());
        }
        let layers = (0..n_layer)
            .map(|_| Some((Buf::new(ty, per_buf)?, Buf::new(ty, per_buf)?)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(too_large)?;
        Ok(KvCache {
            n_ctx,
            width,
            ty,
            layers,
        })
    }

    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    pub fn cache_type(&self) -> CacheType {
        self.ty
    }

    /// Bytes reserved: room for all `n_ctx` positions.
    pub fn bytes(&self) -> usize {
        self.layers.len() * 2 * self.n_ctx * self.width * self.ty.bytes()
    }

    /// Bytes written so far (the memory touched): the positions stored, in every layer.
    pub fn bytes_written(&self) -> usize {
        let values: usize = self
            .layers
            .iter()
            .map(|(k, v)| k.written() + v.written())
            .sum();
        values * self.ty.bytes()
    }

    /// Positions stored so far (the furthest written, in the first layer; every evaluation
    /// writes all layers).
    pub fn positions_written(&self) -> usize {
        self.layers
            .first()
            .map_or(0, |(k, _)| k.written() / self.width.max(1))
    }

    /// Stores rows `k` and `v` ([n × width]) of `layer` at positions `pos ..`.
    pub(crate) fn write(&mut self, layer: usize, pos: usize, k: &[f32], v: &[f32]) {
        let (kb, vb) = &mut self.layers[layer];
        kb.write(pos * self.width, k);
        vb.write(pos * self.width, v);
    }

    /// The first `n` positions of `layer`'s keys and values.
    pub(crate) fn rows(&self, layer: usize, n: usize) -> (KvRows<'_>, KvRows<'_>) {
        let (kb, vb) = &self.layers[layer];
        (kb.rows(n * self.width), vb.rows(n * self.width))
    }
}
