//! Capturing named intermediate tensors during evaluation, with llama.cpp's names
//! (`attn_norm-0`, `Qcur-0`, `Kcur-0`, `Vcur-0`, `kqv_out-0`, `attn_out-0`, `ffn_inp-0`,
//! `ffn_norm-0`, `ffn_out-0`, `l_out-0`, …, `inp_embd`, `result_norm`, `result_output`), so
//! a layer's output can be dumped and compared with another implementation's.

/// One captured tensor: `rows` positions (starting at `first_pos`) × `cols` values.
#[derive(Clone, Debug, PartialEq)]
pub struct TracedTensor {
    pub name: String,
    pub first_pos: usize,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// Which tensors to capture and what was captured. A prompt evaluated in several batches
/// gives one entry per batch for each name.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Names to capture (exact, e.g. `l_out-1`); empty captures everything.
    pub names: Vec<String>,
    pub tensors: Vec<TracedTensor>,
}

impl Trace {
    /// A trace of the tensors named in `names` (all if empty).
    pub fn new(names: Vec<String>) -> Trace {
        Trace {
            names,
            tensors: Vec::new(),
        }
    }

    pub(crate) fn wants(&self, name: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|n| n == name)
    }

    pub(crate) fn record(&mut self, name: &str, first_pos: usize, cols: usize, data: &[f32]) {
        if self.wants(name) && cols > 0 {
            self.tensors.push(TracedTensor {
                name: name.to_owned(),
                first_pos,
                rows: data.len() / cols,
                cols,
                data: data.to_vec(),
            });
        }
    }

    /// All captured rows of `name`, batches concatenated in order: ([rows × cols] data, cols).
    pub fn get(&self, name: &str) -> Option<(Vec<f32>, usize)> {
        let mut found = self.tensors.iter().filter(|t| t.name == name).peekable();
        let cols = found.peek()?.cols;
        Some((found.flat_map(|t| t.data.iter().copied()).collect(), cols))
    }
}

/// Records into an optional trace, building the name only when it is wanted.
pub(crate) fn record(
    trace: &mut Option<&mut Trace>,
    name: impl FnOnce() -> String,
    first_pos: usize,
    cols: usize,
    data: &[f32],
) {
    if let Some(t) = trace.as_deref_mut() {
        let name = name();
        t.record(&name, first_pos, cols, data);
    }
}
