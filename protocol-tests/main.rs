//! The protocol tests: one integration binary (STYLE.md §4) for everything that exercises the
//! wire layer through the crate's public API.
//!
//! - `vectors`: annotated hex frames, byte-exact encoding, tolerances and strictness.
//! - `differential`: rusmpp-built random PDUs decode to the same fields with our decoder.
//! - `mo`: concatenated MO frames through decode, reassembly and text decoding.
//! - `robustness`: arbitrary input never panics.
//! - `sim`: the SMSC simulator over real TCP, driven by a minimal ESME built from the wire layer.

mod differential;
mod mo;
mod robustness;
mod sim;
mod util;
mod vectors;
