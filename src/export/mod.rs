//! `[export]` (SPEC.md "Export"): every rating, incident, ended conversation and MT status
//! to NATS JetStream, and reading them back for reports across nodes.
//!
//! The store queues the events itself, in the same record as the step behind each
//! (`store/export.rs`); this module takes them from there:
//!
//! - `event.rs`: the JSON on the wire, and the `Nats-Msg-Id` that names each event.
//! - `publish.rs`: the tokio task that publishes the queue once its steps are durable,
//!   waits for JetStream's acks and moves the store's cursor; retries while NATS is down.
//! - `replay.rs`: an ordered replay of the stream since a time (`report --source`).
//!
//! Must not: make a flow step wait for NATS, publish an event whose step is not on disk, or
//! drop an event the stream has not acknowledged.

pub mod event;
mod publish;
pub mod replay;

pub use publish::{DUPLICATE_WINDOW, Exporter, Origin};
