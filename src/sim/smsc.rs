//! The simulated SMSC's front: [`start`] opens the listener and starts the tasks (the accept
//! loop of `super::session`, the deliveries' scheduler, the simulated people), and
//! [`SmscHandle`] is what callers hold: MO injection, fault injection, observation, shutdown.
//!
//! The parts, each in its module: `super::session` (one ESME connection),
//! `super::deliveries` (the deliver_sm owed, retried until answered for good, across
//! reconnects), `super::submits` (submit_sm answers, receipts, the [`Submitted`] view),
//! `super::handsets` (the people's replies, planned without I/O; driven from here).
//!
//! Must not: lose a deliver_sm: every one either gets a final answer, or is dropped with its
//! [`DeliveryHandle`] reporting [`SimError::Stopped`] at [`SmscHandle::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::deliveries::DeliveryHandle;
use super::handsets::Handsets;
use super::session::{UNBIND_WAIT, accept_loop};
use super::shared::{Control, Shared};
use super::{Mo, RawDeliver, SimAddress, SimConfig, SimError, SimStats, Submitted, lock};
use crate::smpp::encode::{self, Address, Param, ShortMessage};
use crate::smpp::text;

/// Opens the listener and starts the simulator; it runs until [`SmscHandle::shutdown`].
pub async fn start(config: SimConfig) -> Result<SmscHandle, SimError> {
    config.validate()?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Listen {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: config.listen,
        source,
    })?;
    let (handsets_tx, handsets_rx) = match config.subscribers {
        Some(_) => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let (shared, scheduled) = Shared::new(config, local_addr, handsets_tx);
    let scheduler = shared.clone();
    tokio::spawn(async move { scheduler.deliveries.run_scheduler(scheduled).await });
    let handle = SmscHandle {
        shared: shared.clone(),
    };
    if let (Some(subscribers), Some(rx)) = (&shared.config.subscribers, handsets_rx) {
        let handsets = Handsets::new(subscribers.clone(), shared.config.seed);
        spawn_handsets(handle.clone(), handsets, rx, shared.stop.clone());
    }
    let accept = tokio::spawn(accept_loop(shared.clone(), listener));
    *lock(&shared.accept_task) = Some(accept);
    info!(
        %local_addr,
        system_id = %shared.config.system_id,
        tls = shared.config.tls.is_some(),
        "smsc simulator listening"
    );
    Ok(handle)
}

/// The caller's side of a running simulator: injection, fault injection, observation,
/// shutdown. Cheap to clone.
#[derive(Clone)]
pub struct SmscHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SmscHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmscHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl SmscHandle {
    /// The address the listener got (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Sends `mo` to a bound receiver or transceiver as one deliver_sm, or as several with a
    /// concatenation UDH when the text is longer than one SMS (GSM 03.38 when it fits, else
    /// UCS-2). Queued until a receiver is bound; re-sent until answered for good.
    pub fn inject_mo(&self, mo: Mo) -> Result<DeliveryHandle, SimError> {
        // The UDH reference is 8-bit; wrapping is what real handsets do too.
        let reference = self.shared.next_mo_reference.fetch_add(1, Relaxed) as u8;
        let encoded = text::encode(&mo.text, reference);
        let (source, destination) = (
            SimAddress::guess(&mo.source),
            SimAddress::guess(&mo.destination),
        );
        let frames = encoded
            .parts
            .iter()
            .map(|part| {
                let message =
                    ShortMessage::part(address(&source), address(&destination), &encoded, part);
                Ok(encode::to_frame(&encode::deliver_sm(0, &message)?))
            })
            .collect::<Result<Vec<_>, SimError>>()?;
        Ok(self.shared.deliveries.inject(frames))
    }

    /// Sends one deliver_sm exactly as described (codings, UDH, SAR TLVs, receipts, ...).
    pub fn inject_deliver(&self, raw: RawDeliver) -> Result<DeliveryHandle, SimError> {
        let params = raw
            .tlvs
            .iter()
            .map(|(tag, value)| Param::Other { tag: *tag, value })
            .collect();
        let message = ShortMessage::new(
            address(&raw.source),
            address(&raw.destination),
            raw.data_coding,
            &raw.short_message,
        )
        .service_type(&raw.service_type)
        .esm_class(raw.esm_class)
        .registered_delivery(raw.registered_delivery)
        .params(params);
        let frame = encode::to_frame(&encode::deliver_sm(0, &message)?);
        Ok(self.shared.deliveries.inject(vec![frame]))
    }

    /// Every message submitted from now on, reassembled. Lagging receivers miss events (see
    /// [`broadcast`]); the counters in [`SmscHandle::stats`] never miss anything.
    pub fn submitted(&self) -> broadcast::Receiver<Submitted> {
        self.shared.submits.subscribe()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats.snapshot()
    }

    /// Delay every submit_sm_resp from now on by `latency`.
    pub fn set_submit_latency(&self, latency: Duration) {
        self.shared.set_submit_latency(latency);
    }

    /// Answer the next `n` submit_sm with ESME_RTHROTTLED (adds to any still pending).
    pub fn throttle_next(&self, n: u64) {
        self.shared.submits.throttle_next(n);
    }

    /// Takes the next `n` submit_sm without answering or keeping them: a part lost on the
    /// way, which the ESME times out and sends again.
    pub fn swallow_next_submits(&self, n: u64) {
        self.shared.submits.swallow_next(n);
    }

    /// Sends each of the next `n` MOs twice in a row, the copy before the first's
    /// deliver_sm_resp can have come back: an SMSC that gave up on the response too early.
    /// The copy's own response settles nothing.
    pub fn resend_next_mos_early(&self, n: u64) {
        self.shared.resend_early.fetch_add(n, Relaxed);
    }

    /// Refuse every bind with ESME_RBINDFAIL while `reject` is true.
    pub fn reject_binds(&self, reject: bool) {
        self.shared.reject_binds.store(reject, Relaxed);
    }

    /// Closes every session abruptly, without unbind: what a network failure looks like.
    /// Unanswered deliver_sm are retried once an ESME binds again.
    pub fn disconnect_all(&self) {
        // No receivers just means no sessions.
        let _ = self.shared.control.send(Control::Disconnect);
    }

    /// Stops accepting, unbinds every session (waiting up to a second for unbind_resp), closes
    /// them, and stops the timers. Deliver_sm not answered for good by then are dropped and
    /// their handles report [`SimError::Stopped`]. Safe to call twice.
    pub async fn shutdown(&self) {
        let shared = &self.shared;
        shared.accepting.cancel();
        let accept = lock(&shared.accept_task).take();
        if let Some(accept) = accept {
            // The accept loop only ends; a panic in it would already have been logged.
            let _ = accept.await;
        }
        let _ = shared.control.send(Control::Unbind);
        shared.sessions.close();
        let grace = UNBIND_WAIT + Duration::from_millis(500);
        if tokio::time::timeout(grace, shared.sessions.wait())
            .await
            .is_err()
        {
            let _ = shared.control.send(Control::Disconnect);
            shared.sessions.wait().await;
        }
        shared.stop.cancel();
        let dropped = shared.deliveries.clear();
        if dropped > 0 {
            warn!(
                count = dropped,
                "smsc simulator stopped with deliver_sm never answered"
            );
        }
        info!("smsc simulator stopped");
    }
}

fn address(a: &SimAddress) -> Address<'_> {
    Address {
        ton: a.ton,
        npi: a.npi,
        addr: &a.addr,
    }
}

/// Runs the planner over the simulator's submitted messages until `stop`, injecting each
/// planned reply after its delay. Each message was counted in
/// [`SimStats::replies_pending`] when it was handed over; the count drops when the planner
/// decides on no reply, or once the reply is injected (an MO pending then).
fn spawn_handsets(
    smsc: SmscHandle,
    mut handsets: Handsets,
    mut submitted: mpsc::UnboundedReceiver<Submitted>,
    stop: CancellationToken,
) {
    let settled = |smsc: &SmscHandle| {
        smsc.shared.stats.replies_pending.fetch_sub(1, Relaxed);
    };
    tokio::spawn(async move {
        loop {
            let mt = tokio::select! {
                () = stop.cancelled() => break,
                mt = submitted.recv() => match mt {
                    Some(mt) => mt,
                    None => break,
                },
            };
            let Some(reply) = handsets.on_mt(&mt) else {
                settled(&smsc);
                continue;
            };
            debug!(from = %reply.mo.source, after = ?reply.after, text = %reply.mo.text, "handset will reply");
            let (smsc, stop) = (smsc.clone(), stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(reply.after) => {
                        if let Err(error) = smsc.inject_mo(reply.mo) {
                            warn!(%error, "handset reply could not be sent");
                        }
                    }
                }
                settled(&smsc);
            });
        }
    });
}
