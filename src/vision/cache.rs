//! Encoded images kept for reuse (the interactive chat's `/image PATH`): an image file already
//! encoded, and unchanged since (same canonical path, length and modification time), is not
//! encoded again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::error::VisionError;
use super::model::{ClipModel, ImageEmbeddings};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

/// Embeddings by image file.
#[derive(Default)]
pub struct ImageCache {
    entries: HashMap<Key, Arc<ImageEmbeddings>>,
}

impl ImageCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The embeddings of the image at `path`, encoded with `model` unless cached; the flag says
    /// whether they came from the cache.
    pub fn get_or_encode(
        &mut self,
        model: &ClipModel,
        path: impl AsRef<Path>,
    ) -> Result<(Arc<ImageEmbeddings>, bool), VisionError> {
        let path = path.as_ref();
        let io = |source| VisionError::Io {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let key = Key {
            path: std::fs::canonicalize(path).map_err(io)?,
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        if let Some(e) = self.entries.get(&key) {
            return Ok((Arc::clone(e), true));
        }
        let e = Arc::new(model.encode_file(path)?);
        self.entries.insert(key, Arc::clone(&e));
        Ok((e, false))
    }

    /// The embeddings of every file in `paths`, in order, and how many came from the cache.
    pub fn get_or_encode_all(
        &mut self,
        model: &ClipModel,
        paths: &[impl AsRef<Path>],
    ) -> Result<(Vec<Arc<ImageEmbeddings>>, usize), VisionError> {
        let mut out = Vec::with_capacity(paths.len());
        let mut cached = 0;
        for p in paths {
            let (e, hit) = self.get_or_encode(model, p)?;
            cached += usize::from(hit);
            out.push(e);
        }
        Ok((out, cached))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
