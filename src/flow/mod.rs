//! The flow engine: operators' Rhai scripts driving SMS conversations over durable state.
//!
//! - [`api`]: the functions scripts call (the script contract), recorded as effects.
//! - [`runner`]: compiling scripts, calling one hook under limits.
//! - [`limits`]: every limit a script can hit; [`sandbox`]: where a hook call was when one
//!   stopped it; [`budget`]: what a call has spent of the limits that count.
//! - [`engine`]: loading and hot-reloading flows, routing inputs to conversations, committing
//!   each step's effects with the new state.
//! - [`check`]: `smsflow check`, the `test_*` functions inside scripts on a fake clock.
//! - [`rating`]: the rating grammar behind `parse_rating`.
//! - [`schema`]: the event fields a flow requires (`fn event_fields()`).

pub mod api;
pub mod budget;
pub mod check;
pub mod engine;
pub mod limits;
pub mod rating;
pub mod runner;
pub mod sandbox;
pub mod schema;
