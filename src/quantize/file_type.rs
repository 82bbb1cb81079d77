//! The file types (`llama_ftype`) llava-quantize produces: ids as written to `general.file_type`,
//! names as `llama-quantize` spells them, and each one's default tensor type.

use std::fmt;

use crate::dtype::GgmlType;

/// A llama.cpp file type, with its `general.file_type` id (`llama_ftype` in include/llama.h) as
/// discriminant. Only the types llava-quantize can produce are listed.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum LlamaFileType {
    AllF32 = 0,
    MostlyF16 = 1,
    MostlyQ4_0 = 2,
    MostlyQ4_1 = 3,
    MostlyQ8_0 = 7,
    MostlyQ5_0 = 8,
    MostlyQ5_1 = 9,
    MostlyQ2_K = 10,
    MostlyQ3_K_S = 11,
    MostlyQ3_K_M = 12,
    MostlyQ3_K_L = 13,
    MostlyQ4_K_S = 14,
    MostlyQ4_K_M = 15,
    MostlyQ5_K_S = 16,
    MostlyQ5_K_M = 17,
    MostlyQ6_K = 18,
    MostlyBF16 = 32,
}

/// llama-quantize's short aliases (`Q4_K` means Q4_K_M, ...).
const ALIASES: [(&str, LlamaFileType); 3] = [
    ("Q3_K", LlamaFileType::MostlyQ3_K_M),
    ("Q4_K", LlamaFileType::MostlyQ4_K_M),
    ("Q5_K", LlamaFileType::MostlyQ5_K_M),
];

impl LlamaFileType {
    /// Every supported file type, in the order llava-quantize lists them.
    pub const ALL: [LlamaFileType; 17] = {
        use LlamaFileType::*;
        [
            MostlyQ4_0,
            MostlyQ4_1,
            MostlyQ5_0,
            MostlyQ5_1,
            MostlyQ8_0,
            MostlyQ2_K,
            MostlyQ3_K_S,
            MostlyQ3_K_M,
            MostlyQ3_K_L,
            MostlyQ4_K_S,
            MostlyQ4_K_M,
            MostlyQ5_K_S,
            MostlyQ5_K_M,
            MostlyQ6_K,
            MostlyF16,
            MostlyBF16,
            AllF32,
        ]
    };

    /// The value stored in `general.file_type`.
    pub fn id(self) -> u32 {
        self as u32
    }

    pub fn from_id(id: u32) -> Option<LlamaFileType> {
        Self::ALL.iter().copied().find(|t| t.id() == id)
    }

    /// The name llama-quantize uses on its command line (`Q4_K_M`, `F16`, ...).
    pub fn name(self) -> &'static str {
        use LlamaFileType::*;
        match self {
            AllF32 => "F32",
            MostlyF16 => "F16",
            MostlyBF16 => "BF16",
            MostlyQ4_0 => "Q4_0",
            MostlyQ4_1 => "Q4_1",
            MostlyQ5_0 => "Q5_0",
            MostlyQ5_1 => "Q5_1",
            MostlyQ8_0 => "Q8_0",
            MostlyQ2_K => "Q2_K",
            MostlyQ3_K_S => "Q3_K_S",
            MostlyQ3_K_M => "Q3_K_M",
            MostlyQ3_K_L => "Q3_K_L",
            MostlyQ4_K_S => "Q4_K_S",
            MostlyQ4_K_M => "Q4_K_M",
            MostlyQ5_K_S => "Q5_K_S",
            MostlyQ5_K_M => "Q5_K_M",
            MostlyQ6_K => "Q6_K",
        }
    }

    /// Parses a file type name case-insensitively, accepting llama-quantize's aliases
    /// (`Q3_K`, `Q4_K`, `Q5_K` for the `_M` mixes).
    pub fn from_name(name: &str) -> Option<LlamaFileType> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
            .or_else(|| {
                ALIASES
                    .iter()
                    .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
                    .map(|&(_, t)| t)
            })
    }

    /// The tensor type a quantizable tensor gets unless a mix rule says otherwise
    /// (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        use LlamaFileType::*;
        match self {
            AllF32 => GgmlType::F32,
            MostlyF16 => GgmlType::F16,
            MostlyBF16 => GgmlType::BF16,
            MostlyQ4_0 => GgmlType::Q4_0,
            MostlyQ4_1 => GgmlType::Q4_1,
            MostlyQ5_0 => GgmlType::Q5_0,
            MostlyQ5_1 => GgmlType::Q5_1,
            MostlyQ8_0 => GgmlType::Q8_0,
            MostlyQ2_K => GgmlType::Q2_K,
            MostlyQ3_K_S | MostlyQ3_K_M | MostlyQ3_K_L => GgmlType::Q3_K,
            MostlyQ4_K_S | MostlyQ4_K_M => GgmlType::Q4_K,
            MostlyQ5_K_S | MostlyQ5_K_M => GgmlType::Q5_K,
            MostlyQ6_K => GgmlType::Q6_K,
        }
    }

    /// A comma-separated list of the accepted names, for usage and error messages.
    pub fn names_list() -> String {
        Self::ALL.map(|t| t.name()).join(", ")
    }
}

impl fmt::Display for LlamaFileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_llama_h() {
        // Values of `llama_ftype` in llama.cpp's include/llama.h.
        let expected = [
            ("F32", 0),
            ("F16", 1),
            ("Q4_0", 2),
            ("Q4_1", 3),
            ("Q8_0", 7),
            ("Q5_0", 8),
            ("Q5_1", 9),
            ("Q2_K", 10),
            ("Q3_K_S", 11),
            ("Q3_K_M", 12),
            ("Q3_K_L", 13),
            ("Q4_K_S", 14),
            ("Q4_K_M", 15),
            ("Q5_K_S", 16),
            ("Q5_K_M", 17),
            ("Q6_K", 18),
            ("BF16", 32),
        ];
        assert_eq!(expected.len(), LlamaFileType::ALL.len());
        for (name, id) in expected {
            let ft = LlamaFileType::from_name(name).unwrap();
            assert_eq!(ft.id(), id, "{name}");
            assert_eq!(LlamaFileType::from_id(id), Some(ft));
        }
    }

    #[test]
    fn names_are_case_insensitive_and_aliases_resolve() {
        assert_eq!(
            LlamaFileType::from_name("q4_k_m"),
            Some(LlamaFileType::MostlyQ4_K_M)
        );
        assert_eq!(
            LlamaFileType::from_name("q4_k"),
            Some(LlamaFileType::MostlyQ4_K_M)
        );
        assert_eq!(
            LlamaFileType::from_name("Q3_K"),
            Some(LlamaFileType::MostlyQ3_K_M)
        );
        assert_eq!(
            LlamaFileType::from_name("bf16"),
            Some(LlamaFileType::MostlyBF16)
        );
        assert_eq!(LlamaFileType::from_name("Q4_K_X"), None);
        assert_eq!(LlamaFileType::from_name("IQ2_XS"), None);
        assert_eq!(LlamaFileType::from_id(4), None);
    }
}
