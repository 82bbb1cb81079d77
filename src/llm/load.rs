//! Where a model's weights live once loaded: read into anonymous memory, or left in the file's
//! mapping. Decoding streams every weight once per token, and a 7B Q4_K_M decodes ~8% faster
//! from anonymous memory than from the page cache (BENCHMARKS.md, "Decode end to end,
//! Q4_K_M"), at the cost of a copy at load and of memory the OS cannot page back to the file.
//! So [`LoadMode::Auto`] reads into memory only when the file fits in the available memory with
//! a margin, and maps it otherwise; the choice is a pure function ([`choose_storage`]) of the
//! file size and the memory available, with its reason for the start-up log.

use std::fmt;

/// How to load a model's weights (`--load` on the command line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoadMode {
    /// Into memory when the file fits in the available memory with a margin
    /// ([`fits_in_memory`]), else mapped.
    #[default]
    Auto,
    /// Always read into anonymous memory (llama.cpp's `--no-mmap`).
    Memory,
    /// Always left in the file's mapping (llama.cpp's default).
    Mmap,
}

impl LoadMode {
    pub const NAMES: [&'static str; 3] = ["auto", "memory", "mmap"];

    pub fn parse(name: &str) -> Option<LoadMode> {
        match name.trim() {
            "auto" => Some(LoadMode::Auto),
            "memory" => Some(LoadMode::Memory),
            "mmap" => Some(LoadMode::Mmap),
            _ => None,
        }
    }
}

/// How to load a model: where its weights go, and whether those read into memory are
/// repacked for the tier's decode dots ([`super::repack`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub mode: LoadMode,
    pub repack: super::Repack,
}

/// Where the weights went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightStorage {
    /// Read into anonymous memory ([`crate::gguf::GgufFile::read_into_memory`]).
    Memory,
    /// Left in the file's mapping ([`crate::gguf::GgufFile::open`]).
    Mapped,
}

/// What [`choose_storage`] decided, and from what: printed at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadChoice {
    pub storage: WeightStorage,
    pub mode: LoadMode,
    /// The file's size: the bytes read into memory in full (tensor data and header).
    pub file_bytes: u64,
    /// Memory the OS reports available (Linux: `MemAvailable`), when known.
    pub available_bytes: Option<u64>,
}

/// The free memory [`LoadMode::Auto`] leaves beside the weights: 1 GiB plus a quarter of the
/// file, for the KV cache (a 7B's at 4096 positions in f16 is 2 GiB, growing as it fills), the
/// activations, the vision model and the rest of the machine.
pub fn memory_margin(file_bytes: u64) -> u64 {
    (1u64 << 30).saturating_add(file_bytes / 4)
}

/// Whether a file of `file_bytes` fits in `available_bytes` with [`memory_margin`] to spare.
pub fn fits_in_memory(file_bytes: u64, available_bytes: u64) -> bool {
    file_bytes
        .checked_add(memory_margin(file_bytes))
        .is_some_and(|need| need <= available_bytes)
}

/// The storage for `mode`: `Memory` and `Mmap` as asked; `Auto` in memory when the file fits
/// ([`fits_in_memory`]), mapped when it does not or when the available memory is unknown (not
/// Linux, or `/proc/meminfo` unreadable): a mapping never needs more memory than the OS can
/// take back, so it is the safe side of an unknown.
pub fn choose_storage(mode: LoadMode, file_bytes: u64, available_bytes: Option<u64>) -> LoadChoice {
    let storage = match mode {
        LoadMode::Memory => WeightStorage::Memory,
        LoadMode::Mmap => WeightStorage::Mapped,
        LoadMode::Auto => match available_bytes {
            Some(available) if fits_in_memory(file_bytes, available) => WeightStorage::Memory,
            _ => WeightStorage::Mapped,
        },
    };
    LoadChoice {
        storage,
        mode,
        file_bytes,
        available_bytes,
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes (`None` when absent or malformed).
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))?;
    let mut words = line.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    let scale = match words.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(scale)
}

/// The memory this machine reports available now (Linux: `MemAvailable`; elsewhere `None`).
pub fn available_memory() -> Option<u64> {
    if cfg!(target_os = "linux") {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        parse_mem_available(&text)
    } else {
        None
    }
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

impl fmt::Display for LoadChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = gb(self.file_bytes);
        match (self.storage, self.mode) {
            (WeightStorage::Memory, LoadMode::Memory) => {
                write!(f, "weights read into memory ({size:.2} GB; --load memory)")
            }
            (WeightStorage::Mapped, LoadMode::Mmap) => {
                write!(
                    f,
                    "weights mapped from the file ({size:.2} GB; --load mmap)"
                )
            }
            (storage, _) => {
                let need = gb(self
                    .file_bytes
                    .saturating_add(memory_margin(self.file_bytes)));
                let (what, why) = match (storage, self.available_bytes) {
                    (WeightStorage::Memory, Some(a)) => (
                        "read into memory",
                        format!(
                            "{size:.2} GB + margin = {need:.2} GB fits in {:.2} GB available",
                            gb(a)
                        ),
                    ),
                    (_, Some(a)) => (
                        "mapped from the file",
                        format!(
                            "{size:.2} GB + margin = {need:.2} GB > {:.2} GB available",
                            gb(a)
                        ),
                    ),
                    (_, None) => (
                        "mapped from the file",
                        format!("{size:.2} GB; available memory unknown"),
                    ),
                };
                write!(f, "weights {what} (--load auto: {why})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn forced_modes_ignore_memory() {
        for available in [None, Some(0), Some(u64::MAX)] {
            let c = choose_storage(LoadMode::Memory, 4 * GIB, available);
            assert_eq!(c.storage, WeightStorage::Memory);
            let c = choose_storage(LoadMode::Mmap, 4 * GIB, available);
            assert_eq!(c.storage, WeightStorage::Mapped);
        }
    }

    #[test]
    fn auto_reads_into_memory_exactly_when_file_and_margin_fit() {
        let file = 4 * GIB;
        let need = file + GIB + GIB; // a quarter of 4 GiB is 1 GiB
        assert_eq!(memory_margin(file), 2 * GIB);
        let at = |available| choose_storage(LoadMode::Auto, file, Some(available)).storage;
        assert_eq!(at(need), WeightStorage::Memory);
        assert_eq!(at(need - 1), WeightStorage::Mapped);
        assert_eq!(at(24 * GIB), WeightStorage::Memory);
        assert_eq!(at(file), WeightStorage::Mapped, "no margin left");
        assert_eq!(at(0), WeightStorage::Mapped);
    }

    #[test]
    fn auto_maps_when_memory_is_unknown() {
        let c = choose_storage(LoadMode::Auto, 1, None);
        assert_eq!(c.storage, WeightStorage::Mapped);
        assert!(c.to_string().contains("unknown"), "{c}");
    }

    #[test]
    fn huge_sizes_do_not_fit_instead_of_overflowing() {
        assert!(!fits_in_memory(u64::MAX, u64::MAX - 1));
        assert_eq!(
            choose_storage(LoadMode::Auto, u64::MAX, Some(u64::MAX)).storage,
            WeightStorage::Mapped
        );
    }

    #[test]
    fn mode_names_parse_and_others_do_not() {
        for name in LoadMode::NAMES {
            let mode = LoadMode::parse(name).unwrap();
            assert_eq!(LoadMode::NAMES[mode as usize], name);
        }
        assert_eq!(LoadMode::parse(" mmap "), Some(LoadMode::Mmap));
        for bad in ["", "MMAP", "no-mmap", "mem"] {
            assert_eq!(LoadMode::parse(bad), None, "{bad:?}");
        }
        assert_eq!(LoadMode::default(), LoadMode::Auto);
    }

    #[test]
    fn mem_available_parses_from_meminfo() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1000000 kB\n\
                    MemAvailable:   18000000 kB\nBuffers:  1 kB\n";
        assert_eq!(parse_mem_available(text), Some(18_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: 5 MB\n"), None);
        assert_eq!(
            parse_mem_available(&format!("MemAvailable: {} kB\n", u64::MAX)),
            None
        );
    }

    #[test]
    fn choice_says_why() {
        let c = choose_storage(LoadMode::Auto, 4 * GIB, Some(24 * GIB));
        let s = c.to_string();
        assert!(
            s.starts_with("weights read into memory (--load auto:"),
            "{s}"
        );
        assert!(s.contains("available"), "{s}");
        let s = choose_storage(LoadMode::Auto, 4 * GIB, Some(5 * GIB)).to_string();
        assert!(
            s.starts_with("weights mapped from the file (--load auto:"),
            "{s}"
        );
        let s = choose_storage(LoadMode::Mmap, 4 * GIB, None).to_string();
        assert!(s.contains("--load mmap"), "{s}");
    }
}
