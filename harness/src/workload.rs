//! What the workers do: hot/cold access patterns over the buffer's pages
//! ([`pattern`], driven by `tierbench run`), sequential bandwidth kernels
//! ([`bandwidth`]), the dependent-load pointer chase ([`chase`]), and
//! running those on a machine ([`measure`], [`matrix`]). Single accesses
//! are timed by [`clock`] into a [`histogram`].

pub mod bandwidth;
pub mod chase;
pub mod clock;
pub mod curve;
pub mod histogram;
pub mod matrix;
pub mod measure;
pub mod pattern;
pub mod sweep;
