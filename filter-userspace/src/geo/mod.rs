//! Geo data loaders.
