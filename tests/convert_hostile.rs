//! llava-convert on broken and hostile checkpoints: each gives an error naming the file, key or
//! tensor, never a panic, never code execution, and no output file (not even half a pair).
//! Inputs are copies of the committed fixtures, damaged one way each.

mod common;

use std::path::{Path, PathBuf};

use common::{crate_root, temp_dir};
use llava::convert::{ConvertError, ConvertOptions, OutType, convert};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    crate_root().join("tests/fixtures/llava").join(name)
}

/// Copies fixture `name` into `dir/name` and returns the copy's path.
fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

/// Converts `model` into a fresh `out` directory inside `dir`; returns the error and checks
/// that nothing at all was left in the output directory.
fn convert_err(model: &Path, tower: Option<&Path>, dir: &Path) -> ConvertError {
    let out = dir.join("out");
    let mut options = ConvertOptions::new(model, &out);
    options.outtype = OutType::F16;
    options.vision_tower = tower.map(Path::to_owned);
    let err = convert(&options).expect_err("conversion should fail");
    if out.exists() {
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            left.is_empty(),
            "files left behind after an error: {left:?}"
        );
    }
    err
}

fn assert_mentions(err: &ConvertError, parts: &[&str]) {
    let msg = err.to_string();
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} does not mention {p:?}");
    }
}

/// A safetensors file split into (header JSON, data).
fn read_safetensors(path: &Path) -> (Value, Vec<u8>) {
    let raw = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&raw[8..8 + n]).unwrap();
    (header, raw[8 + n..].to_vec())
}

fn write_safetensors(path: &Path, header: &Value, data: &[u8]) {
    let h = serde_json::to_vec(header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    std::fs::write(path, out).unwrap();
}

fn with_header(model: &Path, edit: impl FnOnce(&mut Value)) {
    let path = model.join("model.safetensors");
    let (mut header, data) = read_safetensors(&path);
    edit(&mut header);
    write_safetensors(&path, &header, &data);
}

fn with_config(model: &Path, edit: impl FnOnce(&mut Value)) {
    let path = model.join("config.json");
    let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

/// An edit of a safetensors header.
type HeaderEdit = Box<dyn Fn(&mut Value)>;

const UP: &str = "language_model.model.layers.1.mlp.up_proj.weight";
const FC1: &str = "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight";

#[test]
fn truncated_safetensors() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-hf", dir.path());
    let path = model.join("model.safetensors");
    let raw = std::fs::read(&path).unwrap();
    for cut in [0, 5, 200, raw.len() / 2, raw.len() - 1] {
        std::fs::write(&path, &raw[..cut]).unwrap();
        let err = convert_err(&model, None, dir.path());
        assert_mentions(&err, &["model.safetensors"]);
    }
}

#[test]
fn bad_header_json() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-hf", dir.path());
    let path = model.join("model.safetensors");
    let mut raw = std::fs::read(&path).unwrap();
    raw[8..20].copy_from_slice(b"{not json!!!");
    std::fs::write(&path, &raw).unwrap();
    let err = convert_err(&model, None, dir.path());
    assert_mentions(&err, &["model.safetensors", "not valid JSON"]);
    // A header length beyond the file.
    raw[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&path, &raw).unwrap();
    let err = convert_err(&model, None, dir.path());
    assert_mentions(&err, &["model.safetensors", "header length"]);
}

#[test]
fn offsets_out_of_range_overlapping_or_disagreeing_with_the_shape() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-hf", dir.path());
    let original = std::fs::read(model.join("model.safetensors")).unwrap();
    let cases: [(&str, HeaderEdit, &[&str]); 5] = [
        (
            "end past the data",
            Box::new(|h| h[UP]["data_offsets"][1] = Value::from(1u64 << 40)),
            &[UP, "outside"],
        ),
        (
            "begin after end",
            Box::new(|h| {
                let end = h[UP]["data_offsets"][1].as_u64().unwrap();
                h[UP]["data_offsets"][0] = Value::from(end + 2);
            }),
            &[UP],
        ),
        (
            "shape disagrees with the byte range",
            Box::new(|h| h[UP]["shape"][0] = Value::from(3)),
            &[UP, "needs"],
        ),
        (
            "unknown dtype",
            Box::new(|h| h[UP]["dtype"] = Value::from("F7")),
            &[UP, "unknown dtype"],
        ),
        (
            "overlap",
            Box::new(|h| {
                let other = h[FC1]["data_offsets"].clone();
                let shape = h[FC1]["shape"].clone();
                h["language_model.model.layers.1.mlp.gate_proj.weight"]["data_offsets"] = other;
                h["language_model.model.layers.1.mlp.gate_proj.weight"]["shape"] = shape;
            }),
            &["overlap"],
        ),
    ];
    for (what, edit, mentions) in cases {
        std::fs::write(model.join("model.safetensors"), &original).unwrap();
        with_header(&model, |h| edit(h));
        let err = convert_err(&model, None, dir.path());
        let msg = err.to_string();
        for m in mentions {
            assert!(msg.contains(m), "{what}: {msg:?} does not mention {m:?}");
        }
    }
}

#[test]
fn missing_tensor_and_wrong_shape_for_the_config() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-hf", dir.path());
    with_header(&model, |h| {
        h.as_object_mut().unwrap().remove(FC1);
    });
    let err = convert_err(&model, None, dir.path());
    assert!(matches!(err, ConvertError::MissingTensor { .. }), "{err}");
    assert_mentions(&err, &["encoder.layers.0.mlp.fc1.weight"]);

    let model = copy_fixture("next-vicuna-hf", dir.path());
    with_config(&model, |c| {
        c["text_config"]["intermediate_size"] = Value::from(81)
    });
    let err = convert_err(&model, None, dir.path());
    assert!(matches!(err, ConvertError::Shape { .. }), "{err}");
    assert_mentions(&err, &["mlp.", "81"]);
}

#[test]
fn unknown_architecture_and_bad_config_values() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-hf", dir.path());
    with_config(&model, |c| {
        c["architectures"] = serde_json::json!(["GPT2LMHeadModel"])
    });
    let err = convert_err(&model, None, dir.path());
    assert!(
        matches!(err, ConvertError::UnknownArchitecture { .. }),
        "{err}"
    );
    assert_mentions(&err, &["GPT2LMHeadModel", "config.json"]);

    let model = copy_fixture("next-mistral-hf", dir.path());
    with_config(&model, |c| {
        c["text_config"]["num_key_value_heads"] = Value::from("two")
    });
    let err = convert_err(&model, None, dir.path());
    assert_mentions(&err, &["text_config.num_key_value_heads"]);

    with_config(&model, |c| {
        c["text_config"]["num_key_value_heads"] = Value::from(2);
        c["text_config"]["rope_parameters"] =
            serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    });
    let err = convert_err(&model, None, dir.path());
    assert_mentions(&err, &["rope_type", "yarn"]);
}

#[test]
fn missing_shard() {
    let dir = temp_dir();
    let model = copy_fixture("next-mistral-hf", dir.path());
    let index: Value =
        serde_json::from_slice(&std::fs::read(model.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    let shard = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_str)
        .max()
        .unwrap()
        .to_owned();
    std::fs::remove_file(model.join(&shard)).unwrap();
    let err = convert_err(&model, None, dir.path());
    assert!(matches!(err, ConvertError::MissingShard { .. }), "{err}");
    assert_mentions(&err, &[&shard, "model.safetensors.index.json"]);
}

/// A `.bin` checkpoint sharded with `pytorch_model.bin.index.json` loads like the single file,
/// and an index that places a tensor in a shard that lacks it is an error naming both.
#[test]
fn sharded_bin_checkpoint_and_an_index_that_lies() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-orig", dir.path());
    let single = llava::convert::load_weights(&model).unwrap();
    let names: Vec<String> = single.names().map(str::to_owned).collect();
    let shard = "pytorch_model-00001-of-00001.bin";
    std::fs::rename(model.join("pytorch_model.bin"), model.join(shard)).unwrap();
    let write_index = |extra: Option<&str>| {
        let mut map = serde_json::Map::new();
        for n in names.iter().map(String::as_str).chain(extra) {
            map.insert(n.to_owned(), Value::String(shard.to_owned()));
        }
        let index = serde_json::json!({ "metadata": {}, "weight_map": map });
        std::fs::write(
            model.join("pytorch_model.bin.index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    };
    write_index(None);
    let sharded = llava::convert::load_weights(&model).unwrap();
    assert_eq!(sharded.names().collect::<Vec<_>>(), names);
    for n in &names {
        assert_eq!(
            sharded.tensor_f32(n).unwrap(),
            single.tensor_f32(n).unwrap(),
            "{n}"
        );
    }
    write_index(Some("model.layers.9.mlp.up_proj.weight"));
    let err = convert_err(&model, Some(&fixture("llava15-orig-clip")), dir.path());
    assert_mentions(&err, &[shard, "model.layers.9.mlp.up_proj.weight"]);
}

#[test]
fn nan_or_inf_in_a_weight_names_the_tensor_and_leaves_no_file() {
    for (tensor, bits) in [(UP, 0x7e00u16), (FC1, 0x7c00), (FC1, 0x7e00)] {
        let dir = temp_dir();
        let model = copy_fixture("llava15-hf", dir.path());
        let path = model.join("model.safetensors");
        let (header, mut data) = read_safetensors(&path);
        assert_eq!(header[tensor]["dtype"], "F16");
        let begin = header[tensor]["data_offsets"][0].as_u64().unwrap() as usize;
        let at = begin + 2 * 7;
        data[at..at + 2].copy_from_slice(&bits.to_le_bytes());
        write_safetensors(&path, &header, &data);
        // FC1 is in the mmproj, written second: the finished LLM must not remain either.
        let err = convert_err(&model, None, dir.path());
        assert!(
            matches!(err, ConvertError::NonFinite { index: 7, .. }),
            "{err}"
        );
        assert_mentions(&err, &[tensor]);
    }
}

/// A stored zip with the given entries (as torch.save writes them).
fn zip(entries: &[(&str, &[u8])], method: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let mut fixed = Vec::new();
        fixed.extend_from_slice(&20u16.to_le_bytes()); // version needed
        fixed.extend_from_slice(&0u16.to_le_bytes()); // flags
        fixed.extend_from_slice(&method.to_le_bytes());
        fixed.extend_from_slice(&[0; 8]); // time, date, crc
        fixed.extend_from_slice(&(data.len() as u32).to_le_bytes());
        fixed.extend_from_slice(&(data.len() as u32).to_le_bytes());
        fixed.extend_from_slice(&(name.len() as u16).to_le_bytes());
        fixed.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&fixed);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        central.extend_from_slice(&fixed);
        central.extend_from_slice(&[0; 10]); // comment, disk, attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

#[test]
fn pickle_with_a_forbidden_global_is_refused_not_executed() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-orig", dir.path());
    let tower = fixture("llava15-orig-clip");
    let marker = dir.path().join("pwned");
    let cmd = format!("touch {}", marker.display());
    let globals: [(&str, &str); 3] = [("posix", "system"), ("os", "system"), ("builtins", "eval")];
    for (module, name) in globals {
        // pickle.dumps(<obj whose __reduce__ is (module.name, (cmd,))>, protocol=2)
        let mut p = b"\x80\x02c".to_vec();
        p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        p.push(b'X');
        p.extend_from_slice(&(cmd.len() as u32).to_le_bytes());
        p.extend_from_slice(cmd.as_bytes());
        p.extend_from_slice(b"\x85R.");
        let archive = zip(&[("pytorch_model/data.pkl", &p)], 0);
        std::fs::write(model.join("pytorch_model.bin"), archive).unwrap();
        let err = convert_err(&model, Some(&tower), dir.path());
        assert_mentions(&err, &["pytorch_model.bin", &format!("{module}.{name}")]);
        assert!(!marker.exists(), "the pickle was executed");
    }
}

#[test]
fn legacy_compressed_or_broken_torch_files() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-orig", dir.path());
    let tower = fixture("llava15-orig-clip");
    let bin = model.join("pytorch_model.bin");
    let original = std::fs::read(&bin).unwrap();

    // Legacy torch.save: a bare pickle stream starting with the protocol and magic number.
    std::fs::write(&bin, b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    let err = convert_err(&model, Some(&tower), dir.path());
    assert_mentions(&err, &["pytorch_model.bin", "legacy"]);

    // A deflated entry.
    std::fs::write(&bin, zip(&[("pytorch_model/data.pkl", b"xxxx")], 8)).unwrap();
    let err = convert_err(&model, Some(&tower), dir.path());
    assert_mentions(&err, &["pytorch_model.bin", "compressed"]);

    // Truncations of the real file, at many places: always an error, never a panic.
    for cut in (0..original.len()).step_by(original.len() / 37) {
        std::fs::write(&bin, &original[..cut]).unwrap();
        let err = convert_err(&model, Some(&tower), dir.path());
        assert_mentions(&err, &["pytorch_model.bin"]);
    }
    // Corrupted pickle bytes: an error naming the file (a flipped byte may still parse; then
    // the state dict must still be a valid one or the conversion fails elsewhere).
    let archive_pkl = original.windows(8).position(|w| w == b"data.pkl").unwrap();
    let mut broken = original.clone();
    for b in &mut broken[archive_pkl + 40..archive_pkl + 80] {
        *b = 0xff;
    }
    std::fs::write(&bin, &broken).unwrap();
    let err = convert_err(&model, Some(&tower), dir.path());
    assert_mentions(&err, &["pytorch_model.bin"]);
}

#[test]
fn original_layout_needs_its_vision_tower() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-orig", dir.path());
    // The copy has no sibling CLIP directory and no --vision-tower.
    let err = convert_err(&model, None, dir.path());
    assert!(matches!(err, ConvertError::Usage(_)), "{err}");
    assert_mentions(&err, &["--vision-tower", "mm_vision_tower"]);

    // And a llava-hf checkpoint refuses one (it carries its own tower).
    let model = copy_fixture("llava15-hf", dir.path());
    let err = convert_err(&model, Some(&fixture("llava15-orig-clip")), dir.path());
    assert!(matches!(err, ConvertError::Usage(_)), "{err}");
    assert_mentions(&err, &["--vision-tower"]);
}

/// Bytes flipped all over the safetensors header and the pickle: every run ends in a clean
/// result or a clean error (no panic), and an error leaves no file.
#[test]
fn flipped_bytes_never_panic() {
    let dir = temp_dir();
    let model = copy_fixture("llava15-hf", dir.path());
    let path = model.join("model.safetensors");
    let original = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..40 {
        let mut bytes = original.clone();
        let at = (next() as usize) % (8 + header_len);
        bytes[at] ^= 1 << (next() % 8);
        std::fs::write(&path, &bytes).unwrap();
        let out = dir.path().join("flip-out");
        let _ = std::fs::remove_dir_all(&out);
        if convert(&ConvertOptions::new(&model, &out)).is_err() && out.exists() {
            assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
        }
    }

    let model = copy_fixture("llava15-orig", dir.path());
    let tower = fixture("llava15-orig-clip");
    let bin = model.join("pytorch_model.bin");
    let original = std::fs::read(&bin).unwrap();
    let pkl = original.windows(8).position(|w| w == b"data.pkl").unwrap() + 8;
    for _ in 0..40 {
        let mut bytes = original.clone();
        let at = pkl + (next() as usize) % 2000;
        bytes[at] = next() as u8;
        std::fs::write(&bin, &bytes).unwrap();
        let out = dir.path().join("flip-out");
        let _ = std::fs::remove_dir_all(&out);
        let mut options = ConvertOptions::new(&model, &out);
        options.vision_tower = Some(tower.clone());
        if convert(&options).is_err() && out.exists() {
            assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
        }
    }
}
