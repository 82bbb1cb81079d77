//! [`ClipModel`]: an mmproj file ready to turn images into the embeddings spliced into the
//! language model.
//!
//! ```no_run
//! use llava::gguf::GgufFile;
//! use llava::vision::{ClipModel, DecodedImage};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = ClipModel::load(GgufFile::open("mmproj.gguf")?)?;
//! let image = DecodedImage::open("photo.jpg")?;
//! let embeds = model.encode_image(&image)?;
//! println!("{} tokens of {}", embeds.n_tokens, embeds.n_embd);
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use crate::gguf::GgufFile;
use crate::kernels::{Kernels, kernels};
use crate::model_file::{self, optional_vector_f32};

use super::clip::{ClipTower, stored_blocks};
use super::connector::Connector;
use super::decode::DecodedImage;
use super::error::VisionError;
use super::hparams::{ClipHparams, preprocess_config};
use super::pack::pack_anyres;
use super::preprocess::{ImageMode, PixelValues, PreprocessConfig, preprocess_image};

/// An image's embeddings: `n_tokens` rows of `n_embd` (the language model's width).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageEmbeddings {
    pub n_tokens: usize,
    pub n_embd: usize,
    pub data: Vec<f32>,
}

/// Everything computed for one image, for dumps and tests: the named intermediates.
#[derive(Clone, Debug)]
pub struct EncodedImage {
    /// The tiles given to CLIP.
    pub pixel_values: PixelValues,
    /// CLIP's hidden state at the feature layer(s), the class token dropped as configured:
    /// [n_tiles][positions][d_clip · n_feature_layers].
    pub image_features: Vec<f32>,
    /// What goes into the language model.
    pub embeddings: ImageEmbeddings,
}

/// The vision tower, connector and preprocessing settings of an mmproj file (which it owns;
/// weights stay in the file's mmap).
pub struct ClipModel {
    file: GgufFile,
    hparams: ClipHparams,
    preprocess: PreprocessConfig,
    tower: ClipTower,
    connector: Connector,
    newline: Option<Vec<f32>>,
    kernels: &'static Kernels,
}

impl ClipModel {
    /// Opens and loads an mmproj file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, VisionError> {
        let file = GgufFile::open(path.as_ref()).map_err(model_file::ModelFileError::from)?;
        Self::load(file)
    }

    /// Loads the model from an mmproj file (ours or llama.cpp's LLaVA mmproj).
    pub fn load(file: GgufFile) -> Result<Self, VisionError> {
        let hparams = ClipHparams::from_file(&file, stored_blocks(&file))?;
        let preprocess = preprocess_config(&file, &hparams)?;
        let tower = ClipTower::load(&file, &hparams)?;
        let connector = Connector::load(
            &file,
            hparams.projector,
            hparams.n_embd * hparams.feature_layers.len(),
        )?;
        let newline = optional_vector_f32(&file, "model.image_newline", connector.n_embd)?;
        if matches!(preprocess.mode, ImageMode::Anyres { .. }) && newline.is_none() {
            return Err(VisionError::model(
                &file,
                "an anyres (LLaVA-NeXT) mmproj needs the tensor `model.image_newline`",
            ));
        }
        Ok(Self {
            file,
            hparams,
            preprocess,
            tower,
            connector,
            newline,
            kernels: kernels(),
        })
    }

    pub fn hparams(&self) -> &ClipHparams {
        &self.hparams
    }

    pub fn preprocess_config(&self) -> &PreprocessConfig {
        &self.preprocess
    }

    /// Overrides how images are prepared (e.g. `--image-aspect pad|crop`).
    pub fn set_preprocess_config(&mut self, config: PreprocessConfig) {
        self.preprocess = config;
    }

    /// The language model width the embeddings have.
    pub fn n_embd(&self) -> usize {
        self.connector.n_embd
    }

    /// How many tokens an image of `height` x `width` pixels becomes.
    pub fn n_image_tokens(&self, height: usize, width: usize) -> Result<usize, VisionError> {
        let per_tile = self.hparams.side() * self.hparams.side();
        match &self.preprocess.mode {
            ImageMode::Anyres { .. } => self.preprocess.n_tokens(height, width),
            _ => Ok(per_tile + usize::from(!self.hparams.drop_class_token)),
        }
    }

    /// Decodes and encodes an image file.
    pub fn encode_file(&self, path: impl AsRef<Path>) -> Result<ImageEmbeddings, VisionError> {
        self.encode_image(&DecodedImage::open(path)?)
    }

    /// Encodes a decoded image into its embeddings.
    pub fn encode_image(&self, image: &DecodedImage) -> Result<ImageEmbeddings, VisionError> {
        Ok(self.encode_image_full(image)?.embeddings)
    }

    /// Encodes a decoded image, keeping the intermediates.
    pub fn encode_image_full(&self, image: &DecodedImage) -> Result<EncodedImage, VisionError> {
        let pixel_values = preprocess_image(image, &self.preprocess)?;
        self.encode_pixels(pixel_values)
    }

    /// Runs CLIP on preprocessed tiles (all tiles in one batch), then the connector, then (for
    /// anyres) the NeXT packing.
    pub fn encode_pixels(&self, pixel_values: PixelValues) -> Result<EncodedImage, VisionError> {
        let h = &self.hparams;
        if pixel_values.size != h.image_size {
            return Err(VisionError::Config(format!(
                "tiles of {} px for a {} px model",
                pixel_values.size, h.image_size
            )));
        }
        let image_features = self.tower.forward(
            &self.file,
            self.kernels,
            h,
            &pixel_values.data,
            pixel_values.n_tiles,
        )?;
        let projected = self
            .connector
            .forward(&self.file, self.kernels, &image_features)?;
        let n_embd = self.connector.n_embd;
        let data = match (&pixel_values.anyres, &self.newline) {
            (Some(layout), Some(newline)) => {
                if !h.drop_class_token {
                    return Err(VisionError::Config(
                        "anyres packing needs the class token dropped (feature select default)"
                            .into(),
                    ));
                }
                pack_anyres(&projected, n_embd, layout, newline)?
            }
            (Some(_), None) => {
                return Err(VisionError::model(
                    &self.file,
                    "anyres image without `model.image_newline`",
                ));
            }
            (None, _) => projected,
        };
        let embeddings = ImageEmbeddings {
            n_tokens: data.len() / n_embd,
            n_embd,
            data,
        };
        Ok(EncodedImage {
            pixel_values,
            image_features,
            embeddings,
        })
    }
}
