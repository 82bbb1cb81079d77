//! The llava-quantize pipeline.
