//! `llava --mmproj FILE --image PATH ...` on the built binary with converted fixtures (F32): the
//! `--dump` files (tokens with image placeholders, image embeddings, last logits, greedy tokens)
//! equal transformers' references; `/image PATH` in `-i` encodes a file once; bad images and
//! placeholder counts give clear errors.

mod compare;
use compare::rel_err;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use llava::convert::{ConvertOptions, OutType, convert};
use llava::npy;

fn llava(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llava"))
        .args(args)
        .output()
        .expect("running llava")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn image(name: &str) -> String {
    fixtures()
        .join("images")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}

/// (LLM, mmproj) paths of `name` converted to F32 under `dir`.
fn converted(name: &str, dir: &Path) -> (String, String) {
    let mut opts = ConvertOptions::new(fixtures().join("llava").join(name), dir);
    opts.outtype = OutType::F32;
    let out = convert(&opts).unwrap();
    (
        out.llm_path.to_str().unwrap().to_owned(),
        out.mmproj_path.to_str().unwrap().to_owned(),
    )
}

/// Runs one prompt with images and checks the dump against case `case` of `fixture`.
fn check_dump(fixture: &str, case: &str, message: &str, images: &[&str], extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (llm, mmproj) = converted(fixture, dir.path());
    let dump = dir.path().join("dump");
    let paths: Vec<String> = images.iter().map(|i| image(i)).collect();
    let mut args = vec![
        "-m", &llm, "--mmproj", &mmproj, "-p", message, "--temp", "0", "-n", "16",
    ];
    args.extend(["--cache-type", "f32", "--dump", dump.to_str().unwrap()]);
    for p in &paths {
        args.extend(["--image", p]);
    }
    args.extend(extra);
    let out = llava(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{fixture}/{case}: {err}");
    assert!(err.contains("llava: image encode"), "{err}");
    let refs = fixtures().join("llava").join(format!("{fixture}.ref"));
    let ids = npy::read::<i32>(dump.join("tokens.npy")).unwrap().data;
    let want_ids = npy::read::<i32>(refs.join(format!("{case}.input_ids.npy")))
        .unwrap()
        .data;
    assert_eq!(ids, want_ids, "{fixture}/{case}: tokens.npy");
    let embeds = npy::read::<f32>(dump.join("image_embeds.npy")).unwrap();
    let want = npy::read::<f32>(refs.join(format!("{case}.image_embeds.npy"))).unwrap();
    assert_eq!(
        embeds.shape, want.shape,
        "{fixture}/{case}: image_embeds shape"
    );
    let e_err = rel_err(&embeds.data, &want.data);
    let logits = npy::read::<f32>(dump.join("logits.npy")).unwrap().data;
    let want_logits = npy::read::<f32>(refs.join(format!("{case}.logits.npy")))
        .unwrap()
        .data;
    let l_err = rel_err(&logits[logits.len() - want_logits.len()..], &want_logits);
    let generated = npy::read::<i32>(dump.join("generated.npy")).unwrap().data;
    let greedy = npy::read::<i32>(refs.join(format!("{case}.greedy.npy")))
        .unwrap()
        .data;
    eprintln!("{fixture}/{case} via the CLI: embeds {e_err:.2e}, last logits {l_err:.2e}");
    assert!(
        e_err < 1e-4 && l_err < 1e-4,
        "{fixture}/{case}: embeds {e_err}, logits {l_err}"
    );
    assert_eq!(&generated[..16], &greedy[..], "{fixture}/{case}: greedy");
}

#[test]
fn one_image_without_a_marker_goes_before_the_text() {
    check_dump(
        "llava15-hf",
        "wide",
        "What is shown in this picture?",
        &["wide-97x61.png"],
        &["--system", ""],
    );
}

#[test]
fn two_images_of_different_aspect_on_next_mistral() {
    check_dump(
        "next-mistral-hf",
        "banner_tall",
        "<image>\n<image>\nHow do these two pictures differ?",
        &["banner-150x40.png", "tall-50x80-rgba.png"],
        &[],
    );
}

#[test]
fn interactive_image_command_encodes_a_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let (llm, mmproj) = converted("llava15-hf", dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_llava"))
        .args([
            "-m", &llm, "--mmproj", &mmproj, "-i", "--temp", "0", "-n", "2", "-c", "512",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let img = image("wide-97x61.png");
        let script = format!("/image {img}\nWhat is this?\n/image {img}\nAnd this?\n");
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let encodes: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("llava: image encode"))
        .collect();
    assert_eq!(encodes.len(), 2, "{err}");
    assert!(
        encodes[0].contains("25 tokens") && encodes[0].contains("(0 cached)"),
        "{err}"
    );
    assert!(encodes[1].contains("(1 cached)"), "{err}");
}

#[test]
fn bad_images_and_marker_counts_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (llm, mmproj) = converted("llava15-hf", dir.path());
    let missing = dir.path().join("missing.png");
    let garbage = dir.path().join("garbage.jpg");
    std::fs::write(&garbage, b"not a jpeg").unwrap();
    for (path, expect) in [(&missing, "missing.png"), (&garbage, "garbage.jpg")] {
        let out = llava(&[
            "-m",
            &llm,
            "--mmproj",
            &mmproj,
            "--image",
            path.to_str().unwrap(),
            "-p",
            "Hi",
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(expect), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let img = image("wide-97x61.png");
    let out = llava(&[
        "-m",
        &llm,
        "--mmproj",
        &mmproj,
        "--image",
        &img,
        "-p",
        "<image> vs <image>",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("2 <image> marker"),
        "{err}"
    );
    let out = llava(&["-m", &llm, "--image", &img, "-p", "Hi"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--image needs --mmproj"),
        "{err}"
    );
    let out = llava(&[
        "-m",
        &llm,
        "--mmproj",
        &mmproj,
        "--image-aspect",
        "stretch",
        "-p",
        "Hi",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--image-aspect"),
        "{err}"
    );
}
