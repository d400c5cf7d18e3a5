//! What the explorer views compute on demand: the dataset examples behind an atlas cell
//! ([`examples`]) and one image run through the model ([`single_image`], spec §9.1).
pub mod examples;
pub mod landing;
pub mod single_image;

pub use examples::{crop_patch, example_patch, patch_rect, DatasetIndex, Example};
pub use landing::{AtlasLanding, Landed, LandingMethod};
pub use single_image::{
    analyse_image, analyse_image_with, attribution_map, attribution_map_for_input, nearest_cells,
    ImageAnalysis,
};
