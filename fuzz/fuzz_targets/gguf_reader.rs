//! Fuzzes the GGUF header parser: no input may panic or read out of bounds, and whatever parses
//! must be usable (tensor data slices of the declared size, listings).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llava::gguf::{GgufHeader, inspect};

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = GgufHeader::parse(data) {
        for t in header.tensors() {
            assert_eq!(header.tensor_data(data, t).len() as u64, t.n_bytes);
        }
        let _ = inspect::render_text(&header, false);
        let _ = inspect::render_json(&header);
    }
});
