//! `--outtype`: the type of the weight matrices in both output files.

use std::fmt;
use std::str::FromStr;

use crate::GgmlType;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutType {
    F32,
    F16,
    BF16,
    Q8_0,
}

impl OutType {
    pub const ALL: [OutType; 4] = [OutType::F32, OutType::F16, OutType::BF16, OutType::Q8_0];

    /// The name used in file names and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
            OutType::Q8_0 => "q8_0",
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`): ALL_F32, MOSTLY_F16, MOSTLY_BF16, MOSTLY_Q8_0.
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
            OutType::Q8_0 => 7,
        }
    }

    /// The type of a weight matrix whose rows hold `row_len` elements: like gguf-py, a row that
    /// is not a whole number of Q8_0 blocks falls back to F16.
    pub fn matrix_type(self, row_len: usize) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 if row_len.is_multiple_of(GgmlType::Q8_0.block_size()) => GgmlType::Q8_0,
            OutType::Q8_0 => GgmlType::F16,
        }
    }
}

impl fmt::Display for OutType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OutType {
    type Err = String;

    fn from_str(s: &str) -> Result<OutType, String> {
        OutType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown output type {s:?}: expected f32, f16, bf16 or q8_0"))
    }
}
