//! `llava`: command-line front end of llava-rs. All logic lives in the library.
//!
//! `llava -m MODEL.gguf -p "..."` generates (llama.cpp's flags; with no `-m`, the demo model
//! compiled in by the default feature `demo-model`); `llava inspect FILE` lists a GGUF file;
//! `llava bench` measures throughput. See docs/cli.md.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use llava::chat::ChatTemplate;
use llava::chat_session::{Chat, ChatOptions, Turn, stop_message};
use llava::gguf::{GgufFile, inspect};
use llava::llm::CacheType;
use llava::sampler::{Sampler, SamplerParams};
use llava::tokenizer::{SpaceStyle, Tokenizer};
use llava::vision::{
    ClipModel, ImageCache, ImageEmbeddings, ImageMode, message_with_image_markers, write_image_dump,
};

#[path = "llava/bench.rs"]
mod bench;
#[path = "llava/load_args.rs"]
mod load_args;

#[derive(Parser)]
#[command(
    name = "llava",
    version,
    about = "Run LLaVA vision-language models from GGUF files",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    generate: GenerateArgs,
}

#[derive(Subcommand)]
enum Command {
    /// List a GGUF file's metadata and tensors.
    Inspect {
        /// The GGUF file.
        file: PathBuf,
        /// Print JSON (full values) instead of text.
        #[arg(long)]
        json: bool,
        /// Print arrays and long strings in full.
        #[arg(long)]
        full: bool,
    },
    /// Throughput of prompt processing, generation and image encoding, as llama-bench measures it.
    Bench(bench::BenchArgs),
}

/// Generation (the default mode), with llama.cpp's flag names.
#[derive(Args)]
struct GenerateArgs {
    /// The language model GGUF file (default: the demo model compiled into this binary, with its
    /// mmproj; see models/demo/README.md).
    #[arg(short = 'm', long = "model")]
    model: Option<PathBuf>,
    #[command(flatten)]
    load: load_args::LoadArgs,
    /// The prompt (the user's message; the chat template wraps it).
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// Tokens to generate at most per reply (0: until EOS or the context is full).
    #[arg(short = 'n', long = "n-predict", default_value_t = 128)]
    n_predict: usize,
    /// Context size in positions (0: the model's training context).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    ctx_size: usize,
    /// Threads (0: one per core).
    #[arg(short = 't', long = "threads", default_value_t = 0)]
    threads: usize,
    /// Temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.8)]
    temp: f32,
    /// Top-k (0: off).
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: usize,
    /// Top-p (1: off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    /// Min-p (0: off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty (1: off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Recent tokens the repetition penalty looks at.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    repeat_last_n: usize,
    /// Random seed (default: from the clock, printed).
    #[arg(short = 's', long = "seed")]
    seed: Option<u64>,
    /// Chat template: vicuna, mistral, chatml or raw (default: from the file).
    #[arg(long = "chat-template")]
    chat_template: Option<String>,
    /// System prompt (default: the template's; "" for none).
    #[arg(long = "system")]
    system: Option<String>,
    /// Stop generating at this text (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Interactive chat: read messages from stdin, keeping the KV cache between turns.
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Write tokens.npy, logits.npy (every prompt position) and generated.npy here.
    #[arg(long = "dump")]
    dump: Option<PathBuf>,
    /// With --dump, also write this intermediate of the prompt as NAME.npy (llama.cpp's names:
    /// attn_norm-0, Qcur-0, Kcur-0, Vcur-0, kqv_out-0, attn_out-0, ffn_inp-0, ffn_norm-0,
    /// ffn_out-0, l_out-0, inp_embd, result_norm, result_output; repeatable).
    #[arg(long = "dump-tensor", requires = "dump")]
    dump_tensor: Vec<String>,
    /// KV cache type: f16 or f32.
    #[arg(long = "cache-type", default_value = "f16")]
    cache_type: String,
    /// Tokenization: hf (transformers, the default) or llama.cpp.
    #[arg(long = "tokenizer-style", default_value = "hf")]
    tokenizer_style: String,
    /// Print the rendered prompt and its tokens on stderr.
    #[arg(long = "verbose-prompt")]
    verbose_prompt: bool,
    /// The vision encoder + projector (mmproj) GGUF file, for images.
    #[arg(long = "mmproj")]
    mmproj: Option<PathBuf>,
    /// An image for the prompt (repeatable; each goes at an `<image>` in the prompt, in order,
    /// or before the text if there is none). In `-i`, `/image PATH` adds one to the next message.
    #[arg(long = "image")]
    image: Vec<PathBuf>,
    /// LLaVA-1.5 image preparation: pad (to a square with the mean colour) or crop (resize and
    /// centre-crop); default from the mmproj.
    #[arg(long = "image-aspect")]
    image_aspect: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Inspect { file, json, full }) => run_inspect(&file, json, full),
        Some(Command::Bench(args)) => bench::run(&args),
        None => run_generate(&cli.generate),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_generate(args: &GenerateArgs) -> Result<(), String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| format!("cannot start {} threads: {e}", args.threads))?;
    pool.install(|| generate_in_pool(args))
}

fn generate_in_pool(args: &GenerateArgs) -> Result<(), String> {
    if args.prompt.is_none() && !args.interactive {
        return Err("give a prompt with -p, or -i for an interactive chat".into());
    }
    let cache_type = CacheType::parse(&args.cache_type)
        .ok_or_else(|| format!("--cache-type {:?}: expected f16 or f32", args.cache_type))?;
    let style = SpaceStyle::parse(&args.tokenizer_style).ok_or_else(|| {
        format!(
            "--tokenizer-style {:?}: expected hf or llama.cpp",
            args.tokenizer_style
        )
    })?;

    let started = Instant::now();
    let model = match &args.model {
        Some(path) => load_args::load_model(path, &args.load)?,
        None => embedded::llm()?,
    };
    let tokenizer = Tokenizer::from_gguf(model.file())
        .map_err(|e| e.to_string())?
        .with_style(style);
    let template = match &args.chat_template {
        Some(name) => ChatTemplate::parse(name).ok_or_else(|| {
            format!(
                "--chat-template {name:?}: expected one of {}",
                ChatTemplate::NAMES.join(", ")
            )
        })?,
        None => ChatTemplate::from_gguf(model.file()),
    };
    let session = model
        .session(args.ctx_size, cache_type)
        .map_err(|e| e.to_string())?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let c = model.config();
    eprintln!(
        "llava: {} layers, {} wide, {} heads ({} KV), vocab {}; context {} ({:?} cache); template {}",
        c.n_layer,
        c.n_embd,
        c.n_head,
        c.n_head_kv,
        c.n_vocab,
        session.n_ctx(),
        cache_type,
        template.name()
    );

    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    });
    let sampler = Sampler::new(SamplerParams {
        temperature: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: args.repeat_last_n,
        seed,
    });
    eprintln!("llava: seed {seed}, load {load_ms:.0} ms");
    let options = ChatOptions {
        template,
        system: args.system.clone(),
        n_predict: args.n_predict,
        stop: args.stop.clone(),
        all_logits: args.dump.is_some(),
        trace: args.dump_tensor.clone(),
    };
    let mut chat = Chat::new(session, &tokenizer, sampler, options);
    let mut vision = load_vision(args)?;
    let mut image_cache = ImageCache::new();
    let mut pending_images: Vec<PathBuf> = args.image.clone();

    let mut first = true;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let message = match (&args.prompt, first) {
            (Some(p), true) => p.clone(),
            _ => {
                if !args.interactive {
                    break;
                }
                eprint!("\n> ");
                match lines.next() {
                    Some(Ok(line)) if line.trim_start().starts_with("/image ") => {
                        let path = line.trim_start()["/image ".len()..].trim();
                        if vision.is_none() {
                            eprintln!("llava: /image needs --mmproj");
                        } else {
                            pending_images.push(PathBuf::from(path));
                        }
                        continue;
                    }
                    Some(Ok(line)) if !line.trim().is_empty() => line,
                    Some(Err(e)) => return Err(format!("reading stdin: {e}")),
                    _ => break,
                }
            }
        };
        let images = match &vision {
            Some(clip) => {
                encode_images(clip, &mut image_cache, &std::mem::take(&mut pending_images))?
            }
            None => Vec::new(),
        };
        if !args.interactive {
            // One message: the vision model (its mapping) and the cache are done with; free
            // them before the prompt's evaluation, where the job's memory peaks.
            vision = None;
            image_cache = ImageCache::new();
        }
        let message = message_with_image_markers(&message, images.len());
        let n_images = images.len();
        // Kept past the turn only for the dump; otherwise the turn may take the only copy.
        let dumped_images = match (&args.dump, first) {
            (Some(_), true) => images.clone(),
            _ => Vec::new(),
        };
        let turn = run_turn(&mut chat, &tokenizer, &message, images, args)?;
        if first && let Some(dir) = &args.dump {
            turn.write_dump(dir, model.config().n_vocab)
                .map_err(|e| e.to_string())?;
            if n_images > 0 {
                let refs: Vec<&ImageEmbeddings> =
                    dumped_images.iter().map(|e| e.as_ref()).collect();
                write_image_dump(dir, &tokenizer, &turn.prompt_text, &refs)
                    .map_err(|e| e.to_string())?;
                eprintln!("llava: wrote image_embeds.npy (tokens.npy with image placeholders)");
            }
            eprintln!(
                "llava: wrote tokens.npy, logits.npy, generated.npy to {}",
                dir.display()
            );
        }
        first = false;
        if !args.interactive || !chat.has_room() {
            break;
        }
    }
    Ok(())
}

/// One exchange: stream the reply to stdout, timings to stderr.
fn run_turn(
    chat: &mut Chat<'_>,
    tokenizer: &Tokenizer,
    message: &str,
    images: Vec<std::sync::Arc<ImageEmbeddings>>,
    args: &GenerateArgs,
) -> Result<Turn, String> {
    if args.verbose_prompt {
        eprintln!("llava: prompt text: {:?}", chat.render(message));
    }
    let mut stdout = std::io::stdout();
    let mut broken_pipe = false;
    let mut print = |s: &str| {
        if !broken_pipe && (stdout.write_all(s.as_bytes()).is_err() || stdout.flush().is_err()) {
            broken_pipe = true;
        }
    };
    // Moved out where nothing else holds them (one message, no dump), else copied.
    let images = images
        .into_iter()
        .map(|e| match std::sync::Arc::try_unwrap(e) {
            Ok(e) => (e.data, e.n_tokens),
            Err(e) => (e.data.clone(), e.n_tokens),
        })
        .collect();
    let turn = chat
        .turn(message, images, &mut print)
        .map_err(|e| e.to_string())?;
    println!();
    if args.verbose_prompt {
        let pieces: Vec<String> = turn
            .prompt
            .tokens
            .iter()
            .map(|&t| format!("{t}:{:?}", tokenizer.piece(t).unwrap_or("?")))
            .collect();
        eprintln!("llava: prompt tokens: {}", pieces.join(" "));
    }
    if let Some(msg) = stop_message(turn.generated.reason, chat.session().n_ctx()) {
        eprintln!("llava: {msg}");
    }
    let t = turn.timings;
    eprintln!(
        "llava: prompt {} tokens in {:.0} ms ({:.1} tokens/s); generation {} tokens in {:.0} ms ({:.1} tokens/s)",
        t.n_prompt,
        t.prompt_ms,
        t.prompt_tokens_per_s(),
        t.n_generated,
        t.generation_ms,
        t.generation_tokens_per_s()
    );
    Ok(turn)
}

/// The mmproj of `--mmproj` (with no `-m`, the embedded demo model's unless `--mmproj` names
/// one), with `--image-aspect` applied.
fn load_vision(args: &GenerateArgs) -> Result<Option<ClipModel>, String> {
    let started = Instant::now();
    let mut clip = match (&args.mmproj, &args.model) {
        (Some(path), _) => ClipModel::open(path).map_err(|e| e.to_string())?,
        (None, None) => embedded::mmproj()?,
        (None, Some(_)) if !args.image.is_empty() => {
            return Err("--image needs --mmproj (the vision encoder of the -m model)".into());
        }
        (None, Some(_)) if args.image_aspect.is_some() => {
            return Err("--image-aspect needs --mmproj".into());
        }
        (None, Some(_)) => return Ok(None),
    };
    if let Some(aspect) = &args.image_aspect {
        let mode = match aspect.as_str() {
            "pad" => ImageMode::Pad,
            "crop" => ImageMode::Crop,
            other => return Err(format!("--image-aspect {other:?}: expected pad or crop")),
        };
        if matches!(clip.preprocess_config().mode, ImageMode::Anyres { .. }) {
            return Err(
                "--image-aspect applies to LLaVA-1.5 mmproj files, not anyres (NeXT)".into(),
            );
        }
        clip.set_preprocess_config(clip.preprocess_config().with_mode(mode));
    }
    let h = clip.hparams();
    eprintln!(
        "llava: vision {} px / {} patch, {} blocks, {} wide -> {}; images: {:?}; load {:.0} ms",
        h.image_size,
        h.patch_size,
        h.n_blocks,
        h.n_embd,
        clip.n_embd(),
        clip.preprocess_config().mode,
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(Some(clip))
}

/// Encodes the images of one message (cached by file), printing the encode time.
fn encode_images(
    clip: &ClipModel,
    cache: &mut ImageCache,
    paths: &[PathBuf],
) -> Result<Vec<std::sync::Arc<ImageEmbeddings>>, String> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    let (images, cached) = cache
        .get_or_encode_all(clip, paths)
        .map_err(|e| e.to_string())?;
    let n_tokens: usize = images.iter().map(|e| e.n_tokens).sum();
    eprintln!(
        "llava: image encode {} image(s), {n_tokens} tokens in {:.0} ms ({cached} cached)",
        images.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    Ok(images)
}

/// The demo model compiled in (feature `demo-model`), used when `-m` is not given.
#[cfg(feature = "demo-model")]
mod embedded {
    use llava::llm::LlamaModel;
    use llava::vision::ClipModel;

    pub fn llm() -> Result<LlamaModel, String> {
        eprintln!("llava: no -m: the embedded demo model (pictures of simple shapes)");
        llava::demo::load_llm().map_err(|e| e.to_string())
    }

    pub fn mmproj() -> Result<ClipModel, String> {
        llava::demo::load_mmproj().map_err(|e| e.to_string())
    }
}

#[cfg(not(feature = "demo-model"))]
mod embedded {
    use llava::llm::LlamaModel;
    use llava::vision::ClipModel;

    const NO_MODEL: &str = "no model: give -m MODEL.gguf (this llava was built without the \
                            embedded demo model, cargo feature `demo-model`)";

    pub fn llm() -> Result<LlamaModel, String> {
        Err(NO_MODEL.into())
    }

    pub fn mmproj() -> Result<ClipModel, String> {
        Err(NO_MODEL.into())
    }
}

fn run_inspect(path: &Path, json: bool, full: bool) -> Result<(), String> {
    let file = GgufFile::open(path).map_err(|e| match e {
        // Io errors name the path already.
        e @ llava::gguf::GgufError::Io { .. } => e.to_string(),
        e => format!("{}: {e}", path.display()),
    })?;
    let text = if json {
        let value = inspect::render_json(file.header());
        let mut s = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        s.push('\n');
        s
    } else {
        inspect::render_text(file.header(), full)
    };
    write_stdout(&text)
}

/// Writes to stdout; a closed pipe (`llava inspect f | head`) is not an error.
fn write_stdout(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(format!("writing to stdout: {e}")),
    }
}
