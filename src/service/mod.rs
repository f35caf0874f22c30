//! The service: the parts wired together.
//!
//! The core is sans-IO, shaped like `smpp::session`: time and events in, decisions out.
//!
//! - [`inbound`]: what to do with each deliver_sm (receipt, redelivery, part to hold, whole
//!   MO to deliver).
//! - [`outbox`]: which MT messages to submit now, retries and back-off, give-up.
//! - [`receipts`]: what a receipt says of its part; receipts that overtake their submit.
//! - [`core`]: the steps between those decisions and the flows and store, on explicit time
//!   (what the driver calls and a simulation drives).
//! - [`driver`]: the tokio tasks around the core: SMPP pools in, acks after the group
//!   commit, submits out; timers and gauges.
//! - [`demo`]: `smsflow demo`, everything on loopback against the built-in simulator.
//! - [`run`]: `smsflow run`: config, store, flows, SMPP pools, driver and HTTP API.
//! - [`shutdown`]: the stop's bound: parts still running at `shutdown_timeout` are abandoned.

pub mod core;
pub mod demo;
pub mod driver;
pub mod history;
pub mod inbound;
pub mod outbox;
pub mod receipts;
pub mod restaurant;
pub mod run;
pub mod shutdown;
