//! Webhooks (SPEC.md "Webhooks"): how a flow's `notify(name, payload)` reaches another system.
//!
//! The step that calls `notify` puts a [`WebhookCall`](crate::store::WebhookCall) in the
//! store's queue in the same record as the rest of the step, with its body fixed
//! (`{"webhook", "flow", "conversation", "at", "payload"}`) and its `Idempotency-Key:
//! <conversation>-<n>`. The [`Worker`] delivers each one at least once: after the step is
//! durable, retried with back-off on errors, timeouts and 5xx (1 s … 60 s), given up after
//! 24 h, each attempt counted in `smsflow_webhook_deliveries_total{webhook,result}`.
//!
//! - `policy.rs`: the queue's decisions, sans I/O (time is an input).
//! - `client.rs`: one POST over hyper's HTTP/1.1 client, TLS for `https://`, the signature.
//! - `worker.rs`: the tokio task between the store, the policy and the client.
//!
//! Must not: block a flow step (the step only queues), or deliver a call whose step is not
//! on disk.

pub mod client;
pub mod policy;
mod worker;

pub use worker::Worker;
