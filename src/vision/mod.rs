//! The vision half of LLaVA: image files to the embeddings spliced into the language model.
//!
//! - [`decode`]: image files (JPEG, PNG, WebP, BMP, GIF) to 8-bit RGB, alpha as transformers;
//! - [`resize`]: Pillow's bicubic resize, bit for bit;
//! - [`anyres`]: LLaVA-NeXT's grid selection, padding and unpadding arithmetic, token counts;
//! - [`preprocess`]: the processors' pipelines (crop, pad, anyres) to normalised tiles.

pub mod anyres;
pub mod decode;
pub mod error;
pub mod preprocess;
pub mod resize;

pub use anyres::{AnyresLayout, Resolution};
pub use decode::{AlphaMode, DecodedImage, RgbImage};
pub use error::VisionError;
pub use preprocess::{ImageMode, PixelValues, PreprocessConfig, preprocess, preprocess_image};
