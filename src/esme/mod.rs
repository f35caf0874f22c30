//! The ESME client over tokio: sessions driven over sockets, pooled per `[[smsc]]`.
//!
//! - [`connection`]: one session over one connection (the driver loop around
//!   [`crate::smpp::session::Session`]); submit jobs, inbound messages and their ack handles.
//! - [`pool`]: the sessions of one SMSC: reconnect with back-off, shared queue, TPS cap,
//!   `submit` / `send_text`, status for readiness checks.
//! - [`tls`]: the connector for SMPP over TLS, and its handshake error.
//! - [`bind`]: one bind's life as the MOs it delivered see it (up or closed, what the SMSC
//!   showed it read), for the redelivery rule.
//! - [`backoff`], [`rate`]: the pure timing rules the pool applies.
//!
//! Protocol decisions live in `smpp::session`; this module only moves bytes and waits.

pub mod backoff;
pub mod bind;
pub mod connection;
pub mod pool;
pub mod rate;
mod telemetry;
pub mod tls;

pub use bind::{BindLife, BindView};
pub use connection::{AckHandle, InboundMessage};
pub use pool::{
    BindKind, Pool, PoolConfig, SendError, Sent, SlotStatus, SubmitError, tcp_connector,
};
pub use tls::{HandshakeError, tls_connector};
