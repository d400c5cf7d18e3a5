//! Batch evaluation of patches over many images (spec §8.3): static and dynamic protocols.
