//! A restricted unpickler for PyTorch state dicts. It evaluates nothing: it knows a fixed list
//! of globals (the tensor rebuild functions, the storage types, `collections.OrderedDict`) and
//! the opcodes a state dict uses; any other global or opcode is an error naming it. Storages
//! are persistent ids (`('storage', torch.HalfStorage, key, location, numel)`) that
//! become references to the archive's `data/<key>` entries.

use std::collections::HashMap;

use super::store::SrcDtype;

/// A rebuilt tensor: its storage, offset and layout (checked later against the storage size).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage_key: String,
    pub dtype: SrcDtype,
    /// In elements.
    pub storage_offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(SrcDtype),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage { key: String, dtype: SrcDtype },
    Tensor(TensorRef),
    Mark,
}

fn resolve_global(module: &str, name: &str) -> Result<Global, String> {
    let storage = |d| Ok(Global::Storage(d));
    match (module, name) {
        ("collections", "OrderedDict") => Ok(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Ok(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Ok(Global::RebuildParameter),
        ("torch", "HalfStorage") => storage(SrcDtype::F16),
        ("torch", "FloatStorage") => storage(SrcDtype::F32),
        ("torch", "BFloat16Storage") => storage(SrcDtype::BF16),
        ("torch", "DoubleStorage") => storage(SrcDtype::F64),
        ("torch", "LongStorage") => storage(SrcDtype::Other(8, "I64")),
        ("torch", "IntStorage") => storage(SrcDtype::Other(4, "I32")),
        ("torch", "ShortStorage") => storage(SrcDtype::Other(2, "I16")),
        ("torch", "CharStorage") => storage(SrcDtype::Other(1, "I8")),
        ("torch", "ByteStorage") => storage(SrcDtype::Other(1, "U8")),
        ("torch", "BoolStorage") => storage(SrcDtype::Other(1, "BOOL")),
        _ => Err(format!(
            "refusing global {module}.{name}: only tensor rebuild functions, storage types and \
             collections.OrderedDict may appear in a checkpoint"
        )),
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| format!("truncated at byte {} (wanted {n} more bytes)", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("unterminated text argument")?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| "text argument is not UTF-8")?;
        self.pos += n + 1;
        Ok(s)
    }
    fn string(&mut self, n: usize) -> Result<String, String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "string is not UTF-8".into())
    }
    fn pop(&mut self) -> Result<Value, String> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(format!("stack underflow at byte {}", self.pos)),
            Some(v) => Ok(v),
        }
    }
    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| format!("empty stack at byte {}", self.pos))
    }
    /// The items above the topmost mark, removing them and the mark.
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| format!("no mark at byte {}", self.pos))?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }
    fn memo_put(&mut self, key: u32) -> Result<(), String> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }
    fn memo_get(&mut self, key: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("memo key {key} not set"))?;
        self.stack.push(v);
        Ok(())
    }
}

fn set_items(target: &mut Value, items: Vec<Value>) -> Result<(), String> {
    let Value::Dict(d) = target else {
        return Err("SETITEM(S) on something that is not a dict".into());
    };
    if !items.len().is_multiple_of(2) {
        return Err("SETITEMS with an odd number of items".into());
    }
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        d.push((k, v));
    }
    Ok(())
}

fn as_usize(v: &Value, what: &str) -> Result<usize, String> {
    match v {
        Value::Int(i) => usize::try_from(*i).map_err(|_| format!("{what} {i} is negative")),
        _ => Err(format!("{what} is not an integer")),
    }
}

fn usize_tuple(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    match v {
        Value::Tuple(items) => items.iter().map(|i| as_usize(i, what)).collect(),
        _ => Err(format!("{what} is not a tuple")),
    }
}

/// Applies an allowed callable to its arguments.
fn call(func: Value, args: Value) -> Result<Value, String> {
    let Value::Tuple(args) = args else {
        return Err("REDUCE arguments are not a tuple".into());
    };
    match func {
        Value::Global(Global::OrderedDict) => Ok(Value::Dict(Vec::new())),
        Value::Global(Global::RebuildTensorV2) => {
            if args.len() < 4 {
                return Err("_rebuild_tensor_v2 needs storage, offset, size, stride".into());
            }
            let Value::Storage { key, dtype } = &args[0] else {
                return Err("_rebuild_tensor_v2: first argument is not a storage".into());
            };
            Ok(Value::Tensor(TensorRef {
                storage_key: key.clone(),
                dtype: *dtype,
                storage_offset: as_usize(&args[1], "storage offset")?,
                shape: usize_tuple(&args[2], "size")?,
                stride: usize_tuple(&args[3], "stride")?,
            }))
        }
        Value::Global(Global::RebuildParameter) => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err("_rebuild_parameter: first argument is not a tensor".into()),
        },
        Value::Global(Global::Storage(_)) => Err("storage types cannot be called".into()),
        _ => Err("REDUCE on something that is not an allowed callable".into()),
    }
}

/// A persistent id: `('storage', <storage type>, key, location, numel)`.
fn persistent_load(pid: Value) -> Result<Value, String> {
    let Value::Tuple(items) = pid else {
        return Err("persistent id is not a tuple".into());
    };
    match items.as_slice() {
        [
            Value::Str(kind),
            Value::Global(Global::Storage(dtype)),
            key,
            ..,
        ] if kind == "storage" => {
            let key = match key {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                _ => return Err("storage key is not a string".into()),
            };
            Ok(Value::Storage { key, dtype: *dtype })
        }
        _ => Err("persistent id is not a ('storage', <type>, key, ...) tuple".into()),
    }
}

/// Runs the pickle program `data` and returns the object it builds.
pub fn load(data: &[u8]) -> Result<Value, String> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    let mut next_memo = 0u32;
    loop {
        let at = m.pos;
        let op = m.u8()?;
        match op {
            0x80 => {
                let proto = m.u8()?;
                if proto > 5 {
                    return Err(format!("pickle protocol {proto} is not supported"));
                }
            }
            0x95 => {
                m.u64()?; // FRAME: a length hint only
            }
            b'.' => return m.pop(),
            b'}' => m.stack.push(Value::Dict(Vec::new())),
            b']' => m.stack.push(Value::List(Vec::new())),
            b')' => m.stack.push(Value::Tuple(Vec::new())),
            b'(' => m.stack.push(Value::Mark),
            b'N' => m.stack.push(Value::None),
            0x88 => m.stack.push(Value::Bool(true)),
            0x89 => m.stack.push(Value::Bool(false)),
            b'J' => {
                let v = m.u32()? as i32;
                m.stack.push(Value::Int(i64::from(v)));
            }
            b'K' => {
                let v = m.u8()?;
                m.stack.push(Value::Int(i64::from(v)));
            }
            b'M' => {
                let v = m.u16()?;
                m.stack.push(Value::Int(i64::from(v)));
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = usize::from(m.u8()?);
                let b = m.take(n)?;
                if n > 8 {
                    return Err(format!("integer of {n} bytes is too large"));
                }
                let mut v: i64 = 0;
                for (i, &byte) in b.iter().enumerate() {
                    v |= i64::from(byte) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                m.stack.push(Value::Int(v));
            }
            b'G' => {
                let b = m.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                m.stack.push(Value::Float(f64::from_be_bytes(a)));
            }
            b'X' => {
                let n = m.u32()? as usize;
                let s = m.string(n)?;
                m.stack.push(Value::Str(s));
            }
            0x8c => {
                let n = usize::from(m.u8()?);
                let s = m.string(n)?;
                m.stack.push(Value::Str(s));
            }
            0x8d => {
                let n = usize::try_from(m.u64()?).map_err(|_| "string too long")?;
                let s = m.string(n)?;
                m.stack.push(Value::Str(s));
            }
            b'U' => {
                let n = usize::from(m.u8()?);
                let s = m.take(n)?.to_vec();
                m.stack.push(Value::Bytes(s));
            }
            b'T' => {
                let n = m.u32()? as usize;
                let s = m.take(n)?.to_vec();
                m.stack.push(Value::Bytes(s));
            }
            b'C' => {
                let n = usize::from(m.u8()?);
                let s = m.take(n)?.to_vec();
                m.stack.push(Value::Bytes(s));
            }
            b'B' => {
                let n = m.u32()? as usize;
                let s = m.take(n)?.to_vec();
                m.stack.push(Value::Bytes(s));
            }
            b'q' => {
                let k = u32::from(m.u8()?);
                m.memo_put(k)?;
            }
            b'r' => {
                let k = m.u32()?;
                m.memo_put(k)?;
            }
            0x94 => {
                m.memo_put(next_memo)?;
                next_memo += 1;
            }
            b'h' => {
                let k = u32::from(m.u8()?);
                m.memo_get(k)?;
            }
            b'j' => {
                let k = m.u32()?;
                m.memo_get(k)?;
            }
            b't' => {
                let items = m.pop_mark()?;
                m.stack.push(Value::Tuple(items));
            }
            0x85 => {
                let a = m.pop()?;
                m.stack.push(Value::Tuple(vec![a]));
            }
            0x86 => {
                let b = m.pop()?;
                let a = m.pop()?;
                m.stack.push(Value::Tuple(vec![a, b]));
            }
            0x87 => {
                let c = m.pop()?;
                let b = m.pop()?;
                let a = m.pop()?;
                m.stack.push(Value::Tuple(vec![a, b, c]));
            }
            b'l' => {
                let items = m.pop_mark()?;
                m.stack.push(Value::List(items));
            }
            b'a' => {
                let v = m.pop()?;
                match m.top()? {
                    Value::List(l) => l.push(v),
                    _ => return Err("APPEND to something that is not a list".into()),
                }
            }
            b'e' => {
                let items = m.pop_mark()?;
                match m.top()? {
                    Value::List(l) => l.extend(items),
                    _ => return Err("APPENDS to something that is not a list".into()),
                }
            }
            b'd' => {
                let items = m.pop_mark()?;
                let mut d = Value::Dict(Vec::new());
                set_items(&mut d, items)?;
                m.stack.push(d);
            }
            b's' => {
                let v = m.pop()?;
                let k = m.pop()?;
                set_items(m.top()?, vec![k, v])?;
            }
            b'u' => {
                let items = m.pop_mark()?;
                set_items(m.top()?, items)?;
            }
            b'c' => {
                let module = m.line()?.to_owned();
                let name = m.line()?.to_owned();
                let g = resolve_global(&module, &name)?;
                m.stack.push(Value::Global(g));
            }
            0x93 => {
                let name = m.pop()?;
                let module = m.pop()?;
                match (module, name) {
                    (Value::Str(module), Value::Str(name)) => {
                        let g = resolve_global(&module, &name)?;
                        m.stack.push(Value::Global(g));
                    }
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' => {
                let args = m.pop()?;
                let func = m.pop()?;
                let v = call(func, args)?;
                m.stack.push(v);
            }
            b'Q' => {
                let pid = m.pop()?;
                let v = persistent_load(pid)?;
                m.stack.push(v);
            }
            b'b' => {
                // BUILD: only an OrderedDict's instance state (state_dict's `_metadata`), which
                // carries no weights; it is dropped.
                let _state = m.pop()?;
                if !matches!(m.top()?, Value::Dict(_)) {
                    return Err("BUILD on something that is not a dict".into());
                }
            }
            b'0' => {
                m.pop()?;
            }
            other => {
                return Err(format!(
                    "refusing pickle opcode 0x{other:02x} at byte {at}: not used by state dicts"
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_code_execution() {
        // pickle.dumps of os.system('echo pwned'), protocol 2.
        let evil = b"\x80\x02cposix\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
        let err = load(evil).unwrap_err();
        assert!(err.contains("posix.system"), "{err}");
        let evil4 = b"\x80\x04\x95\x1e\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94.";
        assert!(load(evil4).unwrap_err().contains("builtins.eval"));
        // An opcode outside the list (INST).
        assert!(load(b"\x80\x02(ios\nsystem\n.").is_err());
    }

    #[test]
    fn reads_a_small_state_dict() {
        // {'w': _rebuild_tensor_v2(('storage', HalfStorage, '0', 'cpu', 6), 0, (2, 3), (3, 1), False, OrderedDict())}
        let p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nHalfStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x06tq\x08QK\x00K\x02K\x03\x86q\tK\x03K\x01\x86q\n\x89h\x00)Rq\x0btq\x0cRq\rs.";
        let v = load(p).unwrap();
        let Value::Dict(items) = v else {
            panic!("{v:?}")
        };
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0, Value::Str("w".into()));
        assert_eq!(
            items[0].1,
            Value::Tensor(TensorRef {
                storage_key: "0".into(),
                dtype: SrcDtype::F16,
                storage_offset: 0,
                shape: vec![2, 3],
                stride: vec![3, 1],
            })
        );
        for cut in 0..p.len() {
            assert!(load(&p[..cut]).is_err());
        }
    }
}
