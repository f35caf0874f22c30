//! The service: the parts wired together.
//!
//! - [`pipeline`]: MO → flow → MT between the SMPP pool and the flow engine; timers.
//! - [`demo`]: `smsflow demo`, everything on loopback against the built-in simulator.
//! - [`run`]: `smsflow run`: config, store, flows, SMPP pool, pipeline and HTTP API.

pub mod demo;
pub mod pipeline;
pub mod run;
