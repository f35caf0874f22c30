//! The protocol tests: one integration binary (STYLE.md §4) for everything that exercises the
//! wire layer through the crate's public API.
//!
//! - `vectors`: annotated hex frames, byte-exact encoding, tolerances and strictness.
//! - `cli`: `smsflow` as typed: every `--help` with examples, completions, `--color`,
//!   `run --check-config`.
//! - `concurrency`: many HTTP posters during an MO burst against `smsflow run`: all answered.
//! - `crash`: `kill -9` of `smsflow run` mid-burst: every reply rated once, duplicates bounded.
//! - `demo`: `smsflow demo` end to end.
//! - `disk`: a full disk is back-pressure: `smsflow run` refuses new steps below
//!   `min_free_space` and resumes by itself when room returns, nothing lost or sent twice.
//! - `drain`: SIGTERM while 64 clients post to `smsflow run`: every POST a whole answer (202
//!   or a JSON 503), every 202 kept across the restart.
//! - `docs`: `docs/` in step with the code: config keys, metrics, flow functions, commands
//!   and flags, routes (each answering on a test server); README and docs need no `../shared`.
//! - `differential`: rusmpp-built random PDUs decode to the same fields with our decoder.
//! - `esme`: the ESME pool against the simulator over real TCP, both directions at volume.
//! - `find`: finding conversations over HTTP: filters, pages, event ids.
//! - `flows`: the flow engine: shipped flows' own tests, restarts on disk, hot reload, versions.
//! - `http`: the HTTP API over loopback sockets: every route and status code, JSON errors.
//! - `http_hostile`: a declared body over `max_body` (413 at once), keys named twice (400),
//!   the no-store/CSP/frame headers, the dashboard rendered under its CSP in Chromium.
//! - `http_limits`: the listener against half-open, idle and slow sockets, long targets and a
//!   descriptor-starved flood.
//! - `interop`: our ESME against node `smpp` as SMSC (and node as ESME against our simulator).
//! - `metrics`: `/metrics` of `smsflow run`: every metric and the labelled counters at 0 from
//!   the start, the Grafana dashboard's and alert rules' names and labels, MT stages, HTTP
//!   route templates, a stable order.
//! - `mo`: concatenated MO frames through decode, reassembly and text decoding.
//! - `pipeline`: the service pipeline on a store on disk: MO parts across a restart, a
//!   redelivered MO processed once, submits retried until accepted.
//! - `reload`: the reload gate (a file whose tests fail never goes live), `check` per file,
//!   `run` refusing to start without flows.
//! - `reports`: the report routes over HTTP and `smsflow report` as a process.
//! - `report_cells`: formulas people typed, in `smsflow report -f csv|xlsx`: text, never run.
//! - `robustness`: arbitrary input never panics.
//! - `run`: `smsflow run` as a process: config, HTTP event to SMS, reply, SIGTERM.
//! - `session`: the ESME pool against a scripted in-memory SMSC on a paused clock.
//! - `shutdown`: SIGTERM always ends `smsflow run`: idle HTTPS keep-alives and half-done TLS
//!   handshakes, a part hanging past `shutdown_timeout` (exit 3), a full disk; (ignored) a
//!   loop of stops under load.
//! - `sim`: the SMSC simulator over real TCP, driven by a minimal ESME built from the wire layer.
//! - `simctl`: the simulator driven by hand: `smsflow smsc --control` and `smsflow sim mo|
//!   messages` against `smsflow run` (the README's staff call, bad input), and an operator's
//!   own 0–10 survey answered by the simulated subscribers.
//! - `simulation`: the service core on virtual time against a fake SMSC, with crashes at any
//!   step, on a few hundred seeds; invariants checked on each.
//! - `soak`: 256 HTTP posters, an MO burst, receipts and timers against `smsflow run` for
//!   `SMSFLOW_SOAK_SECS` (default 60): every event one conversation, every acknowledged MO
//!   rated once, nothing lost, /metrics agreeing.
//! - `staffcalls`: what a ward sees, through `smsflow run` against node `smpp` as the SMSC:
//!   a nurse's second `OK` is a new message, a copy after a dropped link a redelivery.
//! - `survey_flows`: the shipped `nps` flow under `smsflow run`: its report over HTTP, the CLI
//!   (running service and stopped store), CSV, XLSX, the dashboard and `/metrics`, each in
//!   the flow's own numbers, words and scale; number words on 0–10; a mistyped flow refused.
//! - `store_ops`: a damaged data directory refused by `run` and `report` (and started with
//!   `--accept-data-loss`); `smsflow store verify|backup|restore`, a backup over HTTP.
//! - `tls`: SMPP over TLS against the simulator (CA, mutual TLS, wrong name, untrusted CA),
//!   `smsflow run` with TLS to the SMSC and HTTPS on its listeners; certificates made at run
//!   time.
//! - `tls_trust`: a carrier's self-signed `openssl req -x509` certificate against node `smpp`
//!   (given as `tls_ca`, pinned by `tls_pin_sha256`, through the pool and `smsflow run`), and
//!   the sentence each failed handshake logs.
//! - `webhooks`: staff calls end to end: hand-offs to a Service Desk over real HTTP (a retry
//!   after a 500 with the same key and signature, delivery after `kill -9`), repeated presses
//!   and the cancel button over the API.

mod buttons;
mod cli;
mod concurrency;
mod crash;
mod demo;
mod differential;
mod disk;
mod docs;
mod drain;
mod esme;
mod export;
mod find;
mod flows;
mod http;
mod http_hostile;
mod http_limits;
mod interop;
mod metrics;
mod mo;
mod pipeline;
mod reload;
mod report_cells;
mod reports;
mod robustness;
mod run;
mod session;
mod shutdown;
mod sim;
mod simctl;
mod simulation;
mod soak;
mod staffcalls;
mod store_damage;
mod store_ops;
mod survey_flows;
mod tls;
mod tls_trust;
mod util;
mod vectors;
mod webhooks;
