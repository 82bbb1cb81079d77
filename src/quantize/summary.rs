//! What a quantization did: sizes, bits per weight, the type each tensor got, time taken.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::file_type::LlamaFileType;
use crate::dtype::GgmlType;

/// One tensor's conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSummary {
    pub name: String,
    pub dims: Vec<u64>,
    pub input_type: GgmlType,
    pub output_type: GgmlType,
    pub input_bytes: u64,
    pub output_bytes: u64,
    /// The mix's type did not divide the row length and a fallback type was used.
    pub fell_back: bool,
}

/// The result of [`super::quantize_file`]. Sizes are of the tensor data, without the header and
/// padding, as llama.cpp reports them; the file sizes are given separately.
#[derive(Clone, Debug)]
pub struct QuantizeSummary {
    pub file_type: LlamaFileType,
    /// In llama.cpp's order, which is also the output file's order.
    pub tensors: Vec<TensorSummary>,
    pub input_file_bytes: u64,
    pub output_file_bytes: u64,
    pub elapsed: Duration,
}

const MIB: f64 = 1024.0 * 1024.0;

impl QuantizeSummary {
    pub fn n_elements(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.dims.iter().product::<u64>())
            .sum()
    }

    pub fn input_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.input_bytes).sum()
    }

    pub fn output_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.output_bytes).sum()
    }

    pub fn input_mib(&self) -> f64 {
        self.input_bytes() as f64 / MIB
    }

    pub fn output_mib(&self) -> f64 {
        self.output_bytes() as f64 / MIB
    }

    fn bits_per_weight(&self, bytes: u64) -> f64 {
        match self.n_elements() {
            0 => 0.0,
            n => bytes as f64 * 8.0 / n as f64,
        }
    }

    pub fn input_bits_per_weight(&self) -> f64 {
        self.bits_per_weight(self.input_bytes())
    }

    pub fn output_bits_per_weight(&self) -> f64 {
        self.bits_per_weight(self.output_bytes())
    }

    /// How many tensors got each output type.
    pub fn type_counts(&self) -> BTreeMap<GgmlType, usize> {
        let mut counts = BTreeMap::new();
        for t in &self.tensors {
            *counts.entry(t.output_type).or_insert(0) += 1;
        }
        counts
    }

    pub fn n_fallbacks(&self) -> usize {
        self.tensors.iter().filter(|t| t.fell_back).count()
    }
}

impl fmt::Display for QuantizeSummary {
    /// The closing report of llava-quantize.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "file type:  {} (general.file_type = {})",
            self.file_type,
            self.file_type.id()
        )?;
        writeln!(
            f,
            "model size: {:10.2} MiB ({:.2} BPW)",
            self.input_mib(),
            self.input_bits_per_weight()
        )?;
        writeln!(
            f,
            "quant size: {:10.2} MiB ({:.2} BPW)",
            self.output_mib(),
            self.output_bits_per_weight()
        )?;
        writeln!(
            f,
            "files:      {:10.2} MiB -> {:.2} MiB",
            self.input_file_bytes as f64 / MIB,
            self.output_file_bytes as f64 / MIB
        )?;
        let counts: Vec<String> = self
            .type_counts()
            .iter()
            .map(|(ty, n)| format!("{ty}: {n}"))
            .collect();
        writeln!(
            f,
            "tensors:    {} ({})",
            self.tensors.len(),
            counts.join(", ")
        )?;
        if self.n_fallbacks() > 0 {
            writeln!(
                f,
                "warning:    {} tensor(s) needed a fallback type (row length not a multiple of the block size)",
                self.n_fallbacks()
            )?;
        }
        write!(f, "time:       {:.2} s", self.elapsed.as_secs_f64())
    }
}
