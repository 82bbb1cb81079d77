//! Prompts with images against the processors' `input_ids` in every fixture: the tokens around
//! each `<image>`, the placeholder id, and each image expanded to its token count (computed
//! from the image size alone, before encoding).

use std::path::{Path, PathBuf};

use llava::convert::{ConvertOptions, OutType, convert};
use llava::gguf::GgufFile;
use llava::npy;
use llava::tokenizer::Tokenizer;
use llava::vision::{
    ClipModel, DecodedImage, PromptPiece, expand_ids, image_placeholder_id, split_prompt,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn check(name: &str, tower: Option<&str>) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut options = ConvertOptions::new(fixtures().join("llava").join(name), dir.path());
    options.outtype = OutType::F16;
    options.vision_tower = tower.map(|t| fixtures().join("llava").join(t));
    let out = convert(&options).unwrap_or_else(|e| panic!("converting {name}: {e}"));
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&out.llm_path).unwrap()).unwrap();
    let model = ClipModel::open(&out.mmproj_path).unwrap();
    let refs = fixtures().join("llava").join(format!("{name}.ref"));
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(refs.join("cases.json")).unwrap()).unwrap();
    let mut n = 0;
    for case in cases["cases"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let images: Vec<&str> = case["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let counts: Vec<usize> = images
            .iter()
            .map(|p| {
                let image = DecodedImage::open(fixtures().join(p)).unwrap();
                model.n_image_tokens(image.height, image.width).unwrap()
            })
            .collect();
        let pieces = split_prompt(&tokenizer, prompt, images.len()).unwrap();
        let n_image_pieces = pieces
            .iter()
            .filter(|p| matches!(p, PromptPiece::Image(_)))
            .count();
        assert_eq!(n_image_pieces, images.len());
        let ids = expand_ids(&pieces, &counts, image_placeholder_id(&tokenizer));
        let want =
            npy::read::<i32>(refs.join(case["files"]["input_ids"].as_str().unwrap())).unwrap();
        let want: Vec<u32> = want.data.iter().map(|&t| t as u32).collect();
        assert_eq!(ids, want, "{name}/{}: prompt ids", case["name"]);
        n += 1;
    }
    n
}

#[test]
fn prompt_ids_equal_the_processors_in_every_fixture() {
    assert_eq!(check("llava15-hf", None), 4);
    assert_eq!(check("llava15-orig", Some("llava15-orig-clip")), 3);
    assert_eq!(check("next-mistral-hf", None), 4);
    assert_eq!(check("next-vicuna-hf", None), 3);
}

#[test]
fn markers_and_image_counts_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let options = ConvertOptions::new(fixtures().join("llava/llava15-hf"), dir.path());
    let out = convert(&options).unwrap();
    let tokenizer = Tokenizer::from_gguf(&GgufFile::open(&out.llm_path).unwrap()).unwrap();
    let err = split_prompt(&tokenizer, "USER: <image> and <image>? ASSISTANT:", 1).unwrap_err();
    assert!(
        err.to_string()
            .contains("2 <image> placeholders but 1 images"),
        "{err}"
    );
    // No marker: the images go first, after BOS, the text after them as after a special token.
    let none = split_prompt(&tokenizer, "Describe.", 2).unwrap();
    let marked = split_prompt(&tokenizer, "<image><image>Describe.", 2).unwrap();
    assert_eq!(none, marked);
    assert!(matches!(none[1], PromptPiece::Image(0)) && matches!(none[2], PromptPiece::Image(1)));
    // Text only.
    let text = split_prompt(&tokenizer, "Hello", 0).unwrap();
    assert_eq!(text.len(), 1);
}
