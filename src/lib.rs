//! smsflow: CSI surveys and staff-call escalation over SMPP.
//!
//! # Layout
//!
//! - [`smpp`]: the SMPP 3.4 wire layer: framing, the nom decoder for inbound PDUs, the rusmpp
//!   based encoder for outbound PDUs, SMS text codecs, concatenation and delivery receipts.
//!   It does no I/O and imports nothing from the rest of the crate, so it could become its own
//!   crate.
//!
//! - [`esme`]: the SMPP client over tokio: one task per session, a pool per SMSC with
//!   reconnect, a shared submit queue and TPS cap, inbound messages with ack handles.
//! - [`sim`]: the built-in SMSC simulator (tokio): binds, submit_sm answers, delivery receipts,
//!   MO injection with SMSC retry semantics, fault injection, and simulated subscribers and staff
//!   who answer surveys and escalations. Used by `smsflow smsc`, `smsflow demo`, the end-to-end
//!   tests and the benches; it speaks SMPP only through [`smpp`].
//! - [`store`]: the durable state (sled): conversations and their party index, timelines,
//!   timers, the outbox, ratings, incidents, opt-outs, event keys, script versions. One
//!   transaction per conversation step; time is always an argument.
//!
//! - [`flow`]: the flow engine: Rhai scripts (survey, escalation, inbox) calling host functions
//!   whose effects are committed with the conversation's state.
//! - [`service`]: the MO→flow→MT pipeline, `smsflow run` and `smsflow demo`.
//! - [`retry`]: the sans-IO queue the outbox and the webhooks share: read in id order,
//!   rescanned, retried with back-off.
//! - [`webhook`]: delivery of the webhook calls flows queue with `notify`: a sans-IO retry
//!   policy, hyper's HTTP/1.1 client, HMAC signatures, the worker task.
//! - [`export`]: `[export]`: every rating, incident, ended conversation and MT status to NATS
//!   JetStream from the store's durable queue, and the replay `report --source` reads.
//! - [`http`]: the HTTP API (axum): events that start conversations, conversation reads,
//!   `/healthz` and `/readyz`, bearer-token auth, JSON errors.
//! - [`report`]: the CSI and incident reports: pure computation over ratings, incidents and
//!   survey sends (periods in the configured zone, confidence intervals, comment terms,
//!   anomalies), and their formats (table, CSV, JSON, XLSX, HTML with SVG charts).
//! - [`config`]: `smsflow.toml`: the schema with its documented defaults, discovery
//!   (`--config`, `./smsflow.toml`, built-in defaults) and every check made before `run`
//!   starts; errors read `path:line: key: message`.
//!
//! - [`metrics`]: SPEC's Prometheus metric names, help texts and the recorder `run` serves;
//!   [`logging`]: the log writer that masks MSISDNs.
//! - [`tls`]: PEM certificates and keys into rustls configs, for SMPP over TLS, the
//!   simulator's TLS and HTTPS on the API and metrics listeners; what makes an SMSC's
//!   certificate trusted (a CA chain, the `tls_ca` certificate itself, key pins) and a failed
//!   handshake said as a sentence with its fix.
//!
//! See README.md for the map of the whole project.

pub mod config;
pub mod esme;
pub mod export;
pub mod flow;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod report;
pub mod retry;
pub mod service;
pub mod sim;
pub mod smpp;
pub mod store;
pub mod tls;
pub mod webhook;
