//! Parsing and validating everything in a GGUF file before the tensor data: metadata and tensor
//! infos. Works on a byte slice, so the same parser serves memory-mapped files, owned buffers
//! and the fuzzer. Nothing here reads out of bounds or allocates from an unchecked count.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::error::GgufError;
use super::value::{GgufArray, GgufValue, GgufValueType};
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::GgmlType;

/// Arrays of arrays deeper than this are refused. ggml itself reads no nested arrays at all; the
/// limit keeps recursion (and a hostile file's cost) small.
pub const MAX_ARRAY_NESTING: usize = 8;

/// One metadata key and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataEntry {
    pub key: String,
    pub value: GgufValue,
}

/// Where a tensor is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` (ne[0]) is the innermost, contiguous one.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Bytes of data, from the shape and type.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (1 for a tensor with no dimensions). Validated not to overflow when
    /// the info was read.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The parsed, validated part of a GGUF file before the tensor data.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    version: u32,
    alignment: u64,
    data_offset: u64,
    file_size: u64,
    metadata: Vec<MetadataEntry>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

/// Smallest possible encoding of one key/value pair: empty key (u64 length), u32 type, 1-byte
/// value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Smallest possible encoding of one tensor info: empty name, u32 n_dims, u32 type, u64 offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

impl GgufHeader {
    /// Parses and validates the header of the GGUF file whose complete contents are `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
        let mut cur = Cursor::new(bytes);
        let file_size = bytes.len() as u64;

        let magic = cur.take(4, || "magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = parse_version(cur.u32(|| "version".into())?)?;

        let tensor_count = cur.u64(|| "tensor count".into())?;
        let kv_count = cur.u64(|| "metadata key/value count".into())?;
        check_count(&cur, "metadata key/value count", kv_count, MIN_KV_SIZE)?;

        let mut metadata = Vec::new();
        let mut metadata_index = HashMap::new();
        for i in 0..kv_count {
            let key_offset = cur.offset();
            let key = cur.string(&|| format!("key of metadata entry {i}"))?;
            let type_offset = cur.offset();
            let type_id = cur.u32(|| format!("value type of key '{key}'"))?;
            let value = parse_value(&mut cur, &key, type_id, type_offset, 0)?;
            if metadata_index.contains_key(&key) {
                return Err(GgufError::DuplicateKey {
                    key,
                    offset: key_offset,
                });
            }
            metadata_index.insert(key.clone(), metadata.len());
            metadata.push(MetadataEntry { key, value });
        }

        let alignment = match metadata_index.get(ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some(&i) => validate_alignment(&metadata[i].value)?,
        };

        // Checked after the metadata, whose size is known only now.
        check_count(&cur, "tensor count", tensor_count, MIN_TENSOR_INFO_SIZE)?;
        let mut tensors = Vec::new();
        let mut tensor_index = HashMap::new();
        for i in 0..tensor_count {
            let info = parse_tensor_info(&mut cur, i)?;
            if tensor_index.contains_key(&info.name) {
                return Err(GgufError::DuplicateTensor { tensor: info.name });
            }
            tensor_index.insert(info.name.clone(), tensors.len());
            tensors.push(info);
        }

        let data_offset = cur
            .offset()
            .checked_next_multiple_of(alignment)
            .unwrap_or(u64::MAX);
        validate_tensor_placement(&tensors, alignment, file_size.saturating_sub(data_offset))?;

        Ok(GgufHeader {
            version,
            alignment,
            data_offset,
            file_size,
            metadata,
            metadata_index,
            tensors,
            tensor_index,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of the data section and of each tensor's data, from `general.alignment`.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// The metadata, in file order.
    pub fn metadata(&self) -> &[MetadataEntry] {
        &self.metadata
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata_index
            .get(key)
            .map(|&i| &self.metadata[i].value)
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The data of `info` within `file_bytes`, the same bytes this header was parsed from.
    ///
    /// # Panics
    /// If `info` does not come from this header and lies outside `file_bytes`.
    pub fn tensor_data<'a>(&self, file_bytes: &'a [u8], info: &TensorInfo) -> &'a [u8] {
        if info.n_bytes == 0 {
            return &[];
        }
        // In range for infos of this header: validated in `parse`.
        let start = (self.data_offset + info.offset) as usize;
        &file_bytes[start..start + info.n_bytes as usize]
    }

    /// The data of every tensor `select` picks, within `file_bytes` (the same bytes this header
    /// was parsed from), as writable slices, in file order: for rearranging tensors in place
    /// before the bytes become read-only ([`super::GgufFile::read_into_memory_with`]). The slices
    /// are disjoint: `parse` checked that no two tensors overlap.
    ///
    /// # Panics
    /// If `file_bytes` is shorter than the bytes this header was parsed from.
    pub fn tensor_data_mut<'h, 'a>(
        &'h self,
        file_bytes: &'a mut [u8],
        mut select: impl FnMut(&TensorInfo) -> bool,
    ) -> Vec<(&'h TensorInfo, &'a mut [u8])> {
        let mut picked: Vec<&TensorInfo> = self.tensors.iter().filter(|t| select(t)).collect();
        picked.sort_by_key(|t| t.offset);
        let mut rest = file_bytes;
        let mut at = 0usize; // where `rest` starts in `file_bytes`
        let mut out = Vec::with_capacity(picked.len());
        for info in picked {
            if info.n_bytes == 0 {
                out.push((info, &mut [][..]));
                continue;
            }
            // In range and after the previous tensor's end: validated in `parse`.
            let start = (self.data_offset + info.offset) as usize;
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(start - at);
            let (data, tail) = tail.split_at_mut(info.n_bytes as usize);
            at = start + data.len();
            rest = tail;
            out.push((info, data));
        }
        out
    }
}

fn parse_version(version: u32) -> Result<u32, GgufError> {
    match version {
        2 | 3 => Ok(version),
        1 => Err(GgufError::VersionOneUnsupported),
        // A big-endian file has the magic as bytes "GGUF" but every number byte-swapped.
        v if (1..=3).contains(&v.swap_bytes()) => Err(GgufError::BigEndian {
            version: v.swap_bytes(),
        }),
        v => Err(GgufError::UnsupportedVersion { version: v }),
    }
}

/// Refuses a count of items that could not fit in the rest of the file even at their smallest
/// encoding, before anything is allocated for them.
fn check_count(cur: &Cursor, what: &str, count: u64, min_item_size: u64) -> Result<(), GgufError> {
    if count > cur.remaining() / min_item_size {
        return Err(GgufError::CountTooLarge {
            what: what.to_owned(),
            offset: cur.offset(),
            count,
            remaining: cur.remaining(),
        });
    }
    Ok(())
}

fn parse_value(
    cur: &mut Cursor,
    key: &str,
    type_id: u32,
    type_offset: u64,
    depth: usize,
) -> Result<GgufValue, GgufError> {
    let Some(value_type) = GgufValueType::from_id(type_id) else {
        return Err(GgufError::UnknownValueType {
            key: key.to_owned(),
            type_id,
            offset: type_offset,
        });
    };
    let what = || format!("value of key '{key}'");
    Ok(match value_type {
        GgufValueType::U8 => GgufValue::U8(cur.u8(what)?),
        GgufValueType::I8 => GgufValue::I8(cur.u8(what)? as i8),
        GgufValueType::U16 => GgufValue::U16(cur.u16(what)?),
        GgufValueType::I16 => GgufValue::I16(cur.u16(what)? as i16),
        GgufValueType::U32 => GgufValue::U32(cur.u32(what)?),
        GgufValueType::I32 => GgufValue::I32(cur.u32(what)? as i32),
        GgufValueType::F32 => GgufValue::F32(f32::from_bits(cur.u32(what)?)),
        GgufValueType::U64 => GgufValue::U64(cur.u64(what)?),
        GgufValueType::I64 => GgufValue::I64(cur.u64(what)? as i64),
        GgufValueType::F64 => GgufValue::F64(f64::from_bits(cur.u64(what)?)),
        GgufValueType::Bool => {
            let offset = cur.offset();
            match cur.u8(what)? {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                byte => {
                    return Err(GgufError::InvalidBool {
                        key: key.to_owned(),
                        offset,
                        byte,
                    });
                }
            }
        }
        GgufValueType::String => GgufValue::String(cur.string(&what)?),
        GgufValueType::Array => {
            if depth >= MAX_ARRAY_NESTING {
                return Err(GgufError::NestingTooDeep {
                    key: key.to_owned(),
                    offset: type_offset,
                    limit: MAX_ARRAY_NESTING,
                });
            }
            let elem_type_offset = cur.offset();
            let elem_type_id = cur.u32(|| format!("array element type of key '{key}'"))?;
            let Some(elem_type) = GgufValueType::from_id(elem_type_id) else {
                return Err(GgufError::UnknownValueType {
                    key: key.to_owned(),
                    type_id: elem_type_id,
                    offset: elem_type_offset,
                });
            };
            let count = cur.u64(|| format!("array length of key '{key}'"))?;
            check_count(
                cur,
                &format!("array of key '{key}'"),
                count,
                elem_type.min_encoded_size(),
            )?;
            let mut items = Vec::new();
            for _ in 0..count {
                items.push(parse_value(
                    cur,
                    key,
                    elem_type_id,
                    elem_type_offset,
                    depth + 1,
                )?);
            }
            // Items were parsed as `elem_type`, so the array is homogeneous by construction.
            match GgufArray::new(elem_type, items) {
                Ok(array) => GgufValue::Array(array),
                Err(source) => {
                    return Err(GgufError::MixedArray {
                        key: key.to_owned(),
                        source,
                    });
                }
            }
        }
    })
}

fn validate_alignment(value: &GgufValue) -> Result<u64, GgufError> {
    match value.as_u32() {
        Some(a) if a.is_power_of_two() => Ok(a.into()),
        _ => Err(GgufError::BadAlignment {
            value: format!("{value:?}"),
        }),
    }
}

fn parse_tensor_info(cur: &mut Cursor, index: u64) -> Result<TensorInfo, GgufError> {
    let name = cur.string(&|| format!("name of tensor {index}"))?;
    let n_dims = cur.u32(|| format!("dimension count of tensor '{name}'"))?;
    if n_dims as usize > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name,
            n_dims: n_dims.into(),
            max: MAX_DIMS,
        });
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        dims.push(cur.u64(|| format!("dimension {d} of tensor '{name}'"))?);
    }
    let type_offset = cur.offset();
    let type_id = cur.u32(|| format!("type of tensor '{name}'"))?;
    let Some(ggml_type) = GgmlType::from_id(type_id) else {
        return Err(GgufError::UnknownTensorType {
            tensor: name,
            type_id,
            offset: type_offset,
        });
    };
    let offset = cur.u64(|| format!("data offset of tensor '{name}'"))?;
    let n_bytes = tensor_n_bytes(&name, &dims, ggml_type)?;
    Ok(TensorInfo {
        name,
        dims,
        ggml_type,
        offset,
        n_bytes,
    })
}

/// Bytes taken by a tensor of shape `dims` and type `ggml_type`, refusing rows that are not whole
/// blocks and shapes whose element count or size overflows (ggml counts elements in i64).
pub(crate) fn tensor_n_bytes(
    name: &str,
    dims: &[u64],
    ggml_type: GgmlType,
) -> Result<u64, GgufError> {
    let overflow = || GgufError::ShapeOverflow {
        tensor: name.to_owned(),
        dims: dims.to_vec(),
    };
    let n_elements = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| i64::try_from(n).is_ok())
        .ok_or_else(overflow)?;
    let ne0 = dims.first().copied().unwrap_or(1);
    let block_size = ggml_type.block_size();
    if ne0 % block_size as u64 != 0 {
        return Err(GgufError::NotWholeBlocks {
            tensor: name.to_owned(),
            ggml_type,
            ne0,
            block_size,
        });
    }
    ggml_type.bytes_for(n_elements).ok_or_else(overflow)
}

/// Every tensor must be aligned, lie inside the data section, and not overlap another.
fn validate_tensor_placement(
    tensors: &[TensorInfo],
    alignment: u64,
    data_size: u64,
) -> Result<(), GgufError> {
    for t in tensors {
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
        let inside = t
            .offset
            .checked_add(t.n_bytes)
            .is_some_and(|end| end <= data_size);
        if !inside {
            return Err(GgufError::TensorOutOfBounds {
                tensor: t.name.clone(),
                offset: t.offset,
                n_bytes: t.n_bytes,
                data_size,
            });
        }
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        // Ends are validated above not to overflow.
        if pair[0].offset + pair[0].n_bytes > pair[1].offset {
            return Err(GgufError::OverlappingTensors {
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
            });
        }
    }
    Ok(())
}
