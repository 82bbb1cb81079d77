//! A minimal zip reader for `torch.save` archives: the central directory (zip64 included) is
//! parsed and each entry located in the memory map. Only stored (uncompressed) entries can be
//! read, which is what `torch.save` writes; anything else is refused with a clear error.
//! CRCs are not verified (that would read every byte twice); sizes and offsets all are.

use std::collections::BTreeMap;
use std::ops::Range;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;

/// The entries of an archive: name → byte range of the (stored) data in the file.
#[derive(Debug, Default)]
pub struct ZipArchive {
    pub entries: BTreeMap<String, Range<usize>>,
}

struct Bytes<'a> {
    buf: &'a [u8],
}

impl Bytes<'_> {
    fn slice(&self, at: usize, len: usize) -> Result<&[u8], String> {
        at.checked_add(len)
            .and_then(|end| self.buf.get(at..end))
            .ok_or_else(|| format!("{len} bytes at offset {at} run past the end of the file"))
    }
    fn u16(&self, at: usize) -> Result<u16, String> {
        let b = self.slice(at, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&self, at: usize) -> Result<u32, String> {
        let b = self.slice(at, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, at: usize) -> Result<u64, String> {
        let b = self.slice(at, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

fn to_usize(v: u64, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{what} {v} does not fit in memory"))
}

pub fn is_zip(buf: &[u8]) -> bool {
    buf.starts_with(b"PK\x03\x04")
}

/// Parses the archive in `buf`.
pub fn parse(buf: &[u8]) -> Result<ZipArchive, String> {
    let b = Bytes { buf };
    // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes.
    let lowest = buf.len().saturating_sub(22 + 65535);
    let eocd = (lowest..=buf.len().saturating_sub(22))
        .rev()
        .find(|&at| b.u32(at) == Ok(EOCD_SIG))
        .ok_or("no end-of-central-directory record (not a zip file, or truncated)")?;
    let mut n_entries = u64::from(b.u16(eocd + 10)?);
    let mut cd_size = u64::from(b.u32(eocd + 12)?);
    let mut cd_offset = u64::from(b.u32(eocd + 16)?);
    if (n_entries == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff) && eocd >= 20 {
        let loc = eocd - 20;
        if b.u32(loc)? == EOCD64_LOCATOR_SIG {
            let at = to_usize(b.u64(loc + 8)?, "zip64 record offset")?;
            if b.u32(at)? != EOCD64_SIG {
                return Err(format!("bad zip64 end-of-central-directory record at {at}"));
            }
            n_entries = b.u64(at + 32)?;
            cd_size = b.u64(at + 40)?;
            cd_offset = b.u64(at + 48)?;
        }
    }
    let cd_offset = to_usize(cd_offset, "central directory offset")?;
    let cd_size = to_usize(cd_size, "central directory size")?;
    b.slice(cd_offset, cd_size)?;
    // Each entry takes at least 46 bytes: a forged count cannot make us loop for long.
    if n_entries > (cd_size / 46) as u64 {
        return Err(format!(
            "{n_entries} entries cannot fit in a {cd_size}-byte central directory"
        ));
    }
    let mut archive = ZipArchive::default();
    let mut at = cd_offset;
    for i in 0..n_entries {
        if b.u32(at)? != CENTRAL_SIG {
            return Err(format!(
                "central directory entry {i} at {at} has a bad signature"
            ));
        }
        let method = b.u16(at + 10)?;
        let mut comp_size = u64::from(b.u32(at + 20)?);
        let mut size = u64::from(b.u32(at + 24)?);
        let name_len = usize::from(b.u16(at + 28)?);
        let extra_len = usize::from(b.u16(at + 30)?);
        let comment_len = usize::from(b.u16(at + 32)?);
        let mut local = u64::from(b.u32(at + 42)?);
        let name = std::str::from_utf8(b.slice(at + 46, name_len)?)
            .map_err(|_| format!("entry {i}: name is not UTF-8"))?
            .to_owned();
        // zip64 extra field: the 64-bit values of the fields that hold 0xffffffff, in order.
        let extra = b.slice(at + 46 + name_len, extra_len)?;
        let mut e = 0;
        while e + 4 <= extra.len() {
            let id = u16::from_le_bytes([extra[e], extra[e + 1]]);
            let len = usize::from(u16::from_le_bytes([extra[e + 2], extra[e + 3]]));
            let body = extra
                .get(e + 4..e + 4 + len)
                .ok_or_else(|| format!("entry {name}: extra field runs past its end"))?;
            if id == 1 {
                let mut fields = body.chunks_exact(8).map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from_le_bytes(a)
                });
                for v in [&mut size, &mut comp_size, &mut local] {
                    if *v == 0xffff_ffff {
                        *v = fields
                            .next()
                            .ok_or_else(|| format!("entry {name}: zip64 field missing"))?;
                    }
                }
            }
            e += 4 + len;
        }
        if method != 0 {
            return Err(format!(
                "entry {name} is compressed (method {method}); only stored entries, as torch.save writes them, are supported"
            ));
        }
        if comp_size != size {
            return Err(format!(
                "entry {name}: stored sizes disagree ({comp_size} vs {size})"
            ));
        }
        let local = to_usize(local, "local header offset")?;
        if b.u32(local)? != LOCAL_SIG {
            return Err(format!("entry {name}: no local header at {local}"));
        }
        let start = local + 30 + usize::from(b.u16(local + 26)?) + usize::from(b.u16(local + 28)?);
        let size = to_usize(size, "entry size")?;
        b.slice(start, size)
            .map_err(|e| format!("entry {name}: {e}"))?;
        if archive
            .entries
            .insert(name.clone(), start..start + size)
            .is_some()
        {
            return Err(format!("entry {name} appears twice"));
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored zip with the given entries, built by hand.
    pub fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in entries {
            let offset = out.len() as u32;
            out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn reads_stored_entries_and_refuses_broken_ones() {
        let zip = build(&[("a/data.pkl", b"hello"), ("a/data/0", &[1, 2, 3])]);
        let archive = parse(&zip).unwrap();
        assert_eq!(&zip[archive.entries["a/data.pkl"].clone()], b"hello");
        assert_eq!(&zip[archive.entries["a/data/0"].clone()], &[1, 2, 3]);
        // Truncations anywhere are errors, never panics.
        for cut in 0..zip.len() {
            let _ = parse(&zip[..cut]);
        }
        assert!(parse(&zip[..zip.len() - 1]).is_err());
        // A compressed entry is refused by name.
        let mut deflated = zip.clone();
        let cd = zip.len() - 22 - (46 + 10) - (46 + 8);
        deflated[cd + 10] = 8;
        let err = parse(&deflated).unwrap_err();
        assert!(
            err.contains("a/data.pkl") && err.contains("compressed"),
            "{err}"
        );
    }

    /// The same archive with every size and offset moved to zip64 fields, as torch.save writes
    /// archives over 4 GiB.
    fn build64(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in entries {
            let offset = out.len() as u64;
            out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
            out.extend_from_slice(&[45, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&[0xff; 8]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            let mut extra = Vec::new();
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&24u16.to_le_bytes());
            extra.extend_from_slice(&(data.len() as u64).to_le_bytes());
            extra.extend_from_slice(&(data.len() as u64).to_le_bytes());
            extra.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            central.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&[0xff; 8]);
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 10]);
            central.extend_from_slice(&[0xff; 4]);
            central.extend_from_slice(name.as_bytes());
            central.extend_from_slice(&extra);
        }
        let cd_offset = out.len() as u64;
        out.extend_from_slice(&central);
        let eocd64 = out.len() as u64;
        out.extend_from_slice(&EOCD64_SIG.to_le_bytes());
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        out.extend_from_slice(&(central.len() as u64).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&EOCD64_LOCATOR_SIG.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&eocd64.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&EOCD_SIG.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        out.extend_from_slice(&[0xff; 8]);
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn reads_zip64_archives() {
        let zip = build64(&[("a/data.pkl", b"hello"), ("a/data/0", &[1, 2, 3])]);
        let archive = parse(&zip).unwrap();
        assert_eq!(&zip[archive.entries["a/data.pkl"].clone()], b"hello");
        assert_eq!(&zip[archive.entries["a/data/0"].clone()], &[1, 2, 3]);
        for cut in 0..zip.len() {
            let _ = parse(&zip[..cut]);
        }
        // A zip64 offset pointing past the end is an error naming the entry.
        let mut bad = zip.clone();
        let at = bad
            .windows(4)
            .position(|w| w == b"\x01\x00\x18\x00")
            .unwrap();
        bad[at + 20..at + 28].copy_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(parse(&bad).is_err());
    }
}
