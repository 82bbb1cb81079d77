//! SentencePiece's `tokenizer.model`: a protobuf `ModelProto`, decoded by hand (only the fields
//! the GGUF vocabulary needs; unknown fields are skipped as protobuf requires).
//!
//! ```text
//! ModelProto   { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2;
//!                NormalizerSpec normalizer_spec = 3; ... }
//! SentencePiece{ string piece = 1; float score = 2; Type type = 3 [default = NORMAL]; }
//! TrainerSpec  { ModelType model_type = 3; int32 unk_id = 40; int32 bos_id = 41;
//!                int32 eos_id = 42; int32 pad_id = 43; bool byte_fallback = 35; ... }
//! NormalizerSpec { bool add_dummy_prefix = 3; ... }
//! ```

/// SentencePiece's piece types, numbered as llama.cpp's token types (`llama_token_type`).
pub const NORMAL: i32 = 1;
pub const UNKNOWN: i32 = 2;
pub const CONTROL: i32 = 3;
pub const USER_DEFINED: i32 = 4;
pub const UNUSED: i32 = 5;
pub const BYTE: i32 = 6;

#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: i32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SentencePieceModel {
    pub pieces: Vec<Piece>,
    /// 1 unigram, 2 BPE, 3 word, 4 char.
    pub model_type: i32,
    pub unk_id: i32,
    pub bos_id: i32,
    pub eos_id: i32,
    pub pad_id: i32,
    pub byte_fallback: bool,
    pub add_dummy_prefix: bool,
}

/// A bounds-checked protobuf reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| format!("truncated varint at byte {}", self.pos))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(format!("varint overflows 64 bits at byte {}", self.pos));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("varint longer than 10 bytes at byte {}", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("field of {n} bytes at byte {} runs past the end", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next (field number, value), or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (number, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Fixed64
            }
            2 => {
                let n = self.varint()?;
                let n = usize::try_from(n).map_err(|_| "length overflows".to_string())?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => return Err(format!("unsupported wire type {w} (field {number})")),
        };
        Ok(Some((number, field)))
    }
}

/// int32 fields are varints of the sign-extended 64-bit value.
fn int32(v: u64) -> i32 {
    v as i64 as i32
}

pub fn parse(buf: &[u8]) -> Result<SentencePieceModel, String> {
    let mut model = SentencePieceModel {
        pieces: Vec::new(),
        model_type: 1,
        unk_id: 0,
        bos_id: 1,
        eos_id: 2,
        pad_id: -1,
        byte_fallback: false,
        add_dummy_prefix: true,
    };
    let mut r = Reader::new(buf);
    while let Some((number, field)) = r.next()? {
        match (number, field) {
            (1, Field::Bytes(b)) => model
                .pieces
                .push(parse_piece(b).map_err(|e| format!("piece {}: {e}", model.pieces.len()))?),
            (2, Field::Bytes(b)) => {
                parse_trainer(b, &mut model).map_err(|e| format!("trainer_spec: {e}"))?
            }
            (3, Field::Bytes(b)) => {
                let mut n = Reader::new(b);
                while let Some((number, field)) =
                    n.next().map_err(|e| format!("normalizer_spec: {e}"))?
                {
                    if let (3, Field::Varint(v)) = (number, field) {
                        model.add_dummy_prefix = v != 0;
                    }
                }
            }
            (1..=3, _) => return Err(format!("field {number} has the wrong wire type")),
            _ => {}
        }
    }
    if model.pieces.is_empty() {
        return Err("no pieces (is this a SentencePiece model?)".into());
    }
    Ok(model)
}

fn parse_piece(buf: &[u8]) -> Result<Piece, String> {
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: NORMAL,
    };
    let mut r = Reader::new(buf);
    while let Some((number, field)) = r.next()? {
        match (number, field) {
            (1, Field::Bytes(b)) => {
                p.piece =
                    String::from_utf8(b.to_vec()).map_err(|_| "piece is not UTF-8".to_string())?;
            }
            (2, Field::Fixed32(bits)) => p.score = f32::from_bits(bits),
            (3, Field::Varint(v)) => {
                p.kind = int32(v);
                if !(NORMAL..=BYTE).contains(&p.kind) {
                    return Err(format!("unknown piece type {}", p.kind));
                }
            }
            (1..=3, _) => return Err(format!("field {number} has the wrong wire type")),
            _ => {}
        }
    }
    Ok(p)
}

fn parse_trainer(buf: &[u8], model: &mut SentencePieceModel) -> Result<(), String> {
    let mut r = Reader::new(buf);
    while let Some((number, field)) = r.next()? {
        if let Field::Varint(v) = field {
            match number {
                3 => model.model_type = int32(v),
                35 => model.byte_fallback = v != 0,
                40 => model.unk_id = int32(v),
                41 => model.bos_id = int32(v),
                42 => model.eos_id = int32(v),
                43 => model.pad_id = int32(v),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn bytes_field(n: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }

    #[test]
    fn parses_a_hand_built_model() {
        let mut piece = Vec::new();
        bytes_field(1, "▁the".as_bytes(), &mut piece);
        varint(2 << 3 | 5, &mut piece);
        piece.extend_from_slice(&(-3.5f32).to_le_bytes());
        varint(3 << 3, &mut piece);
        varint(6, &mut piece);
        let mut trainer = Vec::new();
        varint(43 << 3, &mut trainer);
        varint(u64::MAX, &mut trainer); // pad_id -1 as a 10-byte varint
        varint(41 << 3, &mut trainer);
        varint(5, &mut trainer);
        let mut model = Vec::new();
        bytes_field(1, &piece, &mut model);
        bytes_field(2, &trainer, &mut model);
        bytes_field(9, b"ignored", &mut model);
        let m = parse(&model).unwrap();
        assert_eq!(
            m.pieces,
            vec![Piece {
                piece: "▁the".into(),
                score: -3.5,
                kind: BYTE
            }]
        );
        assert_eq!((m.pad_id, m.bos_id, m.eos_id), (-1, 5, 2));
        assert!(parse(&model[..model.len() - 3]).is_err());
        assert!(parse(&[]).is_err());
    }
}
