//! GGUF metadata values: the thirteen value types and typed access to them.

use std::fmt;

/// A GGUF metadata value type, with its id as stored in the file as discriminant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgufValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl GgufValueType {
    /// Every value type, in id order.
    pub const ALL: [GgufValueType; 13] = {
        use GgufValueType::*;
        [
            U8, I8, U16, I16, U32, I32, F32, Bool, String, Array, U64, I64, F64,
        ]
    };

    /// The type with file id `id`, or `None` for an id GGUF does not define.
    pub fn from_id(id: u32) -> Option<GgufValueType> {
        Self::ALL.get(usize::try_from(id).ok()?).copied()
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// Short lowercase name (`u8`, `str`, `arr`, ...), as used by `llava inspect`.
    pub fn name(self) -> &'static str {
        use GgufValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "str",
            Array => "arr",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// The smallest number of bytes one value of this type takes in a file. Used to refuse
    /// element counts that cannot fit in what is left of the file before allocating anything.
    pub fn min_encoded_size(self) -> u64 {
        use GgufValueType::*;
        match self {
            U8 | I8 | Bool => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
            // u64 length, possibly empty.
            String => 8,
            // u32 element type + u64 count, possibly empty.
            Array => 12,
        }
    }
}

impl fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A homogeneous array: every item has `elem_type`, which an empty array still records. Items
/// may themselves be arrays (with element types of their own).
#[derive(Clone, Debug, PartialEq)]
pub struct GgufArray {
    elem_type: GgufValueType,
    items: Vec<GgufValue>,
}

/// An array item whose type differs from the array's element type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("array of {expected} holds an item of type {found} at index {index}")]
pub struct MixedArrayError {
    pub expected: GgufValueType,
    pub found: GgufValueType,
    pub index: usize,
}

impl GgufArray {
    /// An array of `items`, all of which must have type `elem_type`.
    pub fn new(
        elem_type: GgufValueType,
        items: Vec<GgufValue>,
    ) -> Result<GgufArray, MixedArrayError> {
        if let Some((index, item)) = items
            .iter()
            .enumerate()
            .find(|(_, item)| item.value_type() != elem_type)
        {
            return Err(MixedArrayError {
                expected: elem_type,
                found: item.value_type(),
                index,
            });
        }
        Ok(GgufArray { elem_type, items })
    }

    /// An array of strings.
    pub fn from_strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> GgufArray {
        GgufArray {
            elem_type: GgufValueType::String,
            items: items
                .into_iter()
                .map(|s| GgufValue::String(s.into()))
                .collect(),
        }
    }

    pub fn elem_type(&self) -> GgufValueType {
        self.elem_type
    }

    pub fn items(&self) -> &[GgufValue] {
        &self.items
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Arrays of plain values: `GgufValue::from(vec![1u32, 2, 3])`.
macro_rules! scalar_conversions {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl From<$ty> for GgufValue {
            fn from(v: $ty) -> GgufValue {
                GgufValue::$variant(v)
            }
        }
        impl From<Vec<$ty>> for GgufValue {
            fn from(items: Vec<$ty>) -> GgufValue {
                GgufValue::Array(GgufArray {
                    elem_type: GgufValueType::$variant,
                    items: items.into_iter().map(GgufValue::$variant).collect(),
                })
            }
        }
    )*};
}

scalar_conversions!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, u64 => U64, i64 => I64, f64 => F64, String => String,
);

impl From<&str> for GgufValue {
    fn from(v: &str) -> GgufValue {
        GgufValue::String(v.to_owned())
    }
}

impl From<Vec<&str>> for GgufValue {
    fn from(items: Vec<&str>) -> GgufValue {
        GgufValue::Array(GgufArray::from_strings(items))
    }
}

impl From<GgufArray> for GgufValue {
    fn from(v: GgufArray) -> GgufValue {
        GgufValue::Array(v)
    }
}

impl GgufValue {
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array(_) => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// Any integer value, widened to i128 so that every GGUF integer type fits.
    fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            GgufValue::U8(v) => v.into(),
            GgufValue::I8(v) => v.into(),
            GgufValue::U16(v) => v.into(),
            GgufValue::I16(v) => v.into(),
            GgufValue::U32(v) => v.into(),
            GgufValue::I32(v) => v.into(),
            GgufValue::U64(v) => v.into(),
            GgufValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// An integer of any GGUF integer type whose value fits in u32.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_integer().and_then(|v| u32::try_from(v).ok())
    }

    /// An integer of any GGUF integer type whose value fits in i32.
    pub fn as_i32(&self) -> Option<i32> {
        self.as_integer().and_then(|v| i32::try_from(v).ok())
    }

    /// An integer of any GGUF integer type whose value fits in u64.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// An integer of any GGUF integer type whose value fits in i64.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }

    /// An integer of any GGUF integer type whose value fits in usize.
    pub fn as_usize(&self) -> Option<usize> {
        self.as_integer().and_then(|v| usize::try_from(v).ok())
    }

    /// An f32 value (f64 values are not narrowed silently).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            GgufValue::F32(v) => Some(v),
            _ => None,
        }
    }

    /// An f32 or f64 value, as f64.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(v) => Some(v),
            _ => None,
        }
    }

    /// An array of strings, borrowed.
    pub fn as_string_array(&self) -> Option<Vec<&str>> {
        let array = self.as_array()?;
        array.items.iter().map(GgufValue::as_str).collect()
    }

    /// An array of f32.
    pub fn as_f32_array(&self) -> Option<Vec<f32>> {
        let array = self.as_array()?;
        array.items.iter().map(GgufValue::as_f32).collect()
    }

    /// An array of integers (any integer element type) whose values all fit in i32.
    pub fn as_i32_array(&self) -> Option<Vec<i32>> {
        let array = self.as_array()?;
        array.items.iter().map(GgufValue::as_i32).collect()
    }

    /// An array of integers (any integer element type) whose values all fit in u32.
    pub fn as_u32_array(&self) -> Option<Vec<u32>> {
        let array = self.as_array()?;
        array.items.iter().map(GgufValue::as_u32).collect()
    }

    /// An array of integers (any integer element type) whose values all fit in u64.
    pub fn as_u64_array(&self) -> Option<Vec<u64>> {
        let array = self.as_array()?;
        array.items.iter().map(GgufValue::as_u64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_type_ids_match_the_gguf_spec() {
        // Ids from the GGUF specification (ggml/docs/gguf.md, gguf_type).
        let expected = [
            (GgufValueType::U8, 0),
            (GgufValueType::I8, 1),
            (GgufValueType::U16, 2),
            (GgufValueType::I16, 3),
            (GgufValueType::U32, 4),
            (GgufValueType::I32, 5),
            (GgufValueType::F32, 6),
            (GgufValueType::Bool, 7),
            (GgufValueType::String, 8),
            (GgufValueType::Array, 9),
            (GgufValueType::U64, 10),
            (GgufValueType::I64, 11),
            (GgufValueType::F64, 12),
        ];
        for (ty, id) in expected {
            assert_eq!(ty.id(), id);
            assert_eq!(GgufValueType::from_id(id), Some(ty));
        }
        assert_eq!(GgufValueType::from_id(13), None);
        assert_eq!(GgufValueType::from_id(u32::MAX), None);
    }

    #[test]
    fn integer_getters_accept_any_integer_type_that_fits() {
        assert_eq!(GgufValue::U8(7).as_u32(), Some(7));
        assert_eq!(GgufValue::I64(7).as_u32(), Some(7));
        assert_eq!(GgufValue::I32(-1).as_u32(), None);
        assert_eq!(GgufValue::U64(u64::MAX).as_u32(), None);
        assert_eq!(GgufValue::U64(u64::MAX).as_i64(), None);
        assert_eq!(GgufValue::I8(-3).as_i64(), Some(-3));
        assert_eq!(GgufValue::F32(1.0).as_u32(), None);
        assert_eq!(GgufValue::U16(9).as_f32(), None);
        assert_eq!(GgufValue::F32(0.5).as_f64(), Some(0.5));
    }

    #[test]
    fn arrays_are_homogeneous() {
        let err = GgufArray::new(
            GgufValueType::U32,
            vec![GgufValue::U32(1), GgufValue::I32(2)],
        )
        .unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(err.found, GgufValueType::I32);
        let strings = GgufValue::from(vec!["a", "b"]);
        assert_eq!(strings.as_string_array(), Some(vec!["a", "b"]));
        assert_eq!(
            GgufValue::from(vec![1u8, 2]).as_i32_array(),
            Some(vec![1, 2])
        );
        assert_eq!(GgufValue::from(vec![1u8, 2]).as_string_array(), None);
    }
}
