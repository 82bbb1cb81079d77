//! The vision half of LLaVA: image files to the embeddings spliced into the language model.
//!
//! - [`decode`]: image files (JPEG, PNG, WebP, BMP, GIF) to 8-bit RGB, alpha as transformers;
//! - [`resize`]: Pillow's bicubic resize, bit for bit;
//! - [`anyres`]: LLaVA-NeXT's grid selection, padding and unpadding arithmetic, token counts;
//! - [`preprocess`]: the processors' pipelines (crop, pad, anyres) to normalised tiles;
//! - [`hparams`]: the mmproj's keys (tower shape, feature layer, projector, preprocessing);
//! - [`clip`]: the CLIP ViT tower up to the feature layer;
//! - [`connector`]: the projector into the language model's space (mlp2x_gelu, linear);
//! - [`pack`]: LLaVA-NeXT's tile reassembly, unpadding and row newlines;
//! - [`model`]: [`ClipModel`], image file to [`ImageEmbeddings`];
//! - [`cache`]: encoded images kept for reuse in a chat;
//! - [`prompt`]: `<image>` markers in a prompt, the tokens around them, placeholder ids.

pub mod anyres;
pub mod cache;
pub mod clip;
pub mod connector;
pub mod decode;
pub mod error;
pub mod hparams;
pub mod model;
pub mod pack;
pub mod preprocess;
pub mod prompt;
pub mod resize;
pub mod weights;

pub use anyres::{AnyresLayout, Resolution};
pub use cache::ImageCache;
pub use decode::{AlphaMode, DecodedImage, RgbImage};
pub use error::VisionError;
pub use hparams::{ClipHparams, Projector};
pub use model::{ClipModel, EncodedImage, ImageEmbeddings};
pub use preprocess::{ImageMode, PixelValues, PreprocessConfig, preprocess, preprocess_image};
pub use prompt::{
    IMAGE_MARKER, image_placeholder_id, message_with_image_markers, prompt_ids, prompt_with_images,
    write_image_dump,
};
