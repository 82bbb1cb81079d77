//! The key/value cache: per layer, the roped keys and the values of every position so far,
//! `n_ctx` rows of `n_head_kv · head_dim`, in f16 (llama.cpp's default, half the memory) or
//! f32 (exact: what the fixture tests compare with).

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

#[derive(Clone, Debug)]
enum Buf {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

impl Buf {
    /// `n` zeros; an allocation the system refuses is an error, not an abort.
    fn new(ty: CacheType, n: usize) -> Option<Buf> {
        Some(match ty {
            CacheType::F16 => {
                let mut v = Vec::new();
                v.try_reserve_exact(n).ok()?;
                v.resize(n, f16::ZERO);
                Buf::F16(v)
            }
            CacheType::F32 => {
                let mut v = Vec::new();
                v.try_reserve_exact(n).ok()?;
                v.resize(n, 0.0);
                Buf::F32(v)
            }
        })
    }

    fn write(&mut self, at: usize, src: &[f32]) {
        match self {
            Buf::F16(b) => {
                for (d, &s) in b[at..at + src.len()].iter_mut().zip(src) {
                    *d = f16::from_f32(s);
                }
            }
            Buf::F32(b) => b[at..at + src.len()].copy_from_slice(src),
        }
    }

    fn rows(&self, n: usize) -> KvRows<'_> {
        match self {
            Buf::F16(b) => KvRows::F16(&b[..n]),
            Buf::F32(b) => KvRows::F32(&b[..n]),
        }
    }
}

/// Keys and values of every layer.
#[derive(Clone, Debug)]
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
        // Refuse what cannot exist rather than abort in the allocator.
        if total as u64 > (isize::MAX as u64) / 2 {
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

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.layers.len() * 2 * self.n_ctx * self.width * self.ty.bytes()
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
