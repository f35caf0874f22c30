//! One ESME connection of the simulator: the accept loop (plain TCP or TLS), and the task
//! that reads its frames, answers them and writes the deliver_sm it is owed.
//!
//! Owns: bind checks, the operation matrix (a transmitter never gets deliver_sm, a receiver
//! cannot submit), the deliver_sm window and response timeouts, enquire_link both ways,
//! unbind, and generic_nack for what it cannot take.
//!
//! Must not: build or parse PDUs by hand (everything goes through [`crate::smpp`]), or drop a
//! deliver_sm it took: what is unanswered when the session ends goes back to the queue.
//!
//! It is also the load generator of the benches, so the per-PDU path avoids allocating: frames
//! are cut from one read buffer, answers go into one write buffer that is flushed once per read,
//! deliver_sm frames are encoded once and only their sequence number is patched per attempt.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tracing::{debug, info, warn};

use super::deliveries::{Delivery, DeliveryKind};
use super::shared::{Control, Shared};
use super::stats::take_one;
use super::submits::SubmitAnswer;
use crate::smpp::encode::{self, BindMode};
use crate::smpp::pdu::{Bind, Sm};
use crate::smpp::{CommandId, CommandStatus, FrameCodec, FrameError, Pdu};

/// How long an ESME may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a session waits for unbind_resp after the simulator's unbind.
pub(super) const UNBIND_WAIT: Duration = Duration::from_secs(1);
/// Bytes read per syscall at most; a burst of submit_sm is answered in one write.
const READ_BUFFER: usize = 64 * 1024;
/// Answers not yet written before the simulator stops reading from a peer that does not read.
const MAX_WRITE_BACKLOG: usize = 1024 * 1024;

/// Accepts ESME connections until the simulator stops accepting, one task each.
pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let acceptor = shared
        .config
        .tls
        .clone()
        .map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            () = shared.accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        // Subscribed here, before the task runs, so a shutdown right after accept reaches it.
        let control = shared.control.subscribe();
        match &acceptor {
            None => {
                let session = Session::new(shared.clone(), peer);
                shared.sessions.spawn(session.serve_tcp(stream, control));
            }
            Some(acceptor) => {
                let task = serve_tls(shared.clone(), acceptor.clone(), stream, peer, control);
                shared.sessions.spawn(task);
            }
        }
    }
}

/// The TLS handshake, then the session over it. A failed handshake (an ESME that does not
/// trust us, or brings no client certificate when one is required) is logged and counted;
/// it never becomes a session.
async fn serve_tls(
    shared: Arc<Shared>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    control: broadcast::Receiver<Control>,
) {
    let handshake = tokio::select! {
        handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
        // Shutdown does not wait for a handshake that may never finish.
        () = shared.accepting.cancelled() => return,
    };
    match handshake {
        Ok(Ok(tls)) => {
            let (reader, writer) = tokio::io::split(tls);
            let session = Session::new(shared.clone(), peer);
            session.serve(reader, writer, control).await;
        }
        Ok(Err(error)) => {
            shared.stats.tls_handshakes_failed.fetch_add(1, Relaxed);
            warn!(%peer, %error, "TLS handshake failed");
        }
        Err(_) => {
            shared.stats.tls_handshakes_failed.fetch_add(1, Relaxed);
            warn!(%peer, "TLS handshake timed out");
        }
    }
}

/// Writes some of `buf`, or flushes once it is all written (`None`): one future, so the
/// session loop borrows its writer once.
async fn write_or_flush(
    writer: &mut (impl AsyncWrite + Unpin),
    buf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    if buf.is_empty() {
        writer.flush().await.map(|()| None)
    } else {
        writer.write_buf(buf).await.map(Some)
    }
}

/// Why a session ended, for the log.
#[derive(Debug)]
enum SessionEnd {
    PeerClosed,
    UnboundByPeer,
    UnboundBySimulator,
    UnbindTimeout,
    EnquireLinkTimeout,
    Disconnected,
    Framing(FrameError),
    Io(std::io::Error),
}

/// What the ESME bound as.
struct Bound {
    mode: BindMode,
    system_id: String,
}

/// One ESME connection: the state the connection task drives. Dropping it returns every
/// unanswered deliver_sm to the queue.
struct Session {
    shared: Arc<Shared>,
    peer: SocketAddr,
    bound: Option<Bound>,
    next_sequence_number: u32,
    /// Answers and deliver_sm not written yet; flushed after each read.
    wbuf: BytesMut,
    /// deliver_sm sent and not answered, by sequence_number.
    in_flight: HashMap<u32, Delivery>,
    /// When each in-flight deliver_sm times out, in send order (the timeout is constant, so the
    /// front is always the earliest); entries of answered ones are skipped.
    response_deadlines: VecDeque<(Instant, u32)>,
    /// submit_sm_resp held back by the submit latency, in order.
    delayed_responses: VecDeque<(Instant, Bytes)>,
    enquire_link_due: Option<Instant>,
    /// Our enquire_link waiting for its answer: sequence_number and deadline.
    enquire_link_outstanding: Option<(u32, Instant)>,
    unbind_deadline: Option<Instant>,
    /// Set when the session is to end once `wbuf` is written.
    closing: Option<SessionEnd>,
}

impl Session {
    fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        shared.stats.sessions_open.fetch_add(1, Relaxed);
        let enquire_link_due = shared
            .config
            .enquire_link_interval
            .map(|every| Instant::now() + every);
        Self {
            shared,
            peer,
            bound: None,
            next_sequence_number: 1,
            wbuf: BytesMut::with_capacity(READ_BUFFER),
            in_flight: HashMap::new(),
            response_deadlines: VecDeque::new(),
            delayed_responses: VecDeque::new(),
            enquire_link_due,
            enquire_link_outstanding: None,
            unbind_deadline: None,
            closing: None,
        }
    }

    async fn serve_tcp(self, mut stream: TcpStream, control: broadcast::Receiver<Control>) {
        // Borrowed halves: no lock between reading and writing on the plain (bench) path.
        let (reader, writer) = stream.split();
        self.serve(reader, writer, control).await;
    }

    async fn serve(
        mut self,
        reader: impl AsyncRead + Unpin,
        writer: impl AsyncWrite + Unpin,
        control: broadcast::Receiver<Control>,
    ) {
        debug!(peer = %self.peer, "esme connected");
        let end = self.run(reader, writer, control).await;
        let system_id = self.bound.as_ref().map_or("", |b| b.system_id.as_str());
        match &end {
            SessionEnd::Framing(error) => {
                warn!(peer = %self.peer, system_id, %error, "closing session: framing lost")
            }
            SessionEnd::Io(error) => {
                warn!(peer = %self.peer, system_id, %error, "session closed by i/o error")
            }
            SessionEnd::EnquireLinkTimeout | SessionEnd::UnbindTimeout => {
                warn!(peer = %self.peer, system_id, reason = ?end, "closing unresponsive session")
            }
            _ => info!(peer = %self.peer, system_id, reason = ?end, "session closed"),
        }
    }

    async fn run(
        &mut self,
        mut reader: impl AsyncRead + Unpin,
        mut writer: impl AsyncWrite + Unpin,
        mut control: broadcast::Receiver<Control>,
    ) -> SessionEnd {
        // A TLS writer may keep records it took but could not send yet: flush once the
        // buffer is written (a no-op on TCP).
        let mut unflushed = false;
        let mut codec = FrameCodec::default();
        let mut rbuf = BytesMut::with_capacity(READ_BUFFER);
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        loop {
            self.take_deliveries();
            if self.wbuf.is_empty()
                && !unflushed
                && let Some(end) = self.closing.take()
            {
                return end;
            }
            let deadline = self.next_deadline();
            if let Some(deadline) = deadline {
                timer.as_mut().reset(deadline);
            }
            if rbuf.capacity() - rbuf.len() < 4096 {
                rbuf.reserve(READ_BUFFER);
            }
            let read_open = self.closing.is_none() && self.wbuf.len() < MAX_WRITE_BACKLOG;
            let wants_deliveries = self.wants_deliveries();
            tokio::select! {
                biased;
                written = write_or_flush(&mut writer, &mut self.wbuf),
                    if !self.wbuf.is_empty() || unflushed =>
                {
                    match written {
                        Ok(Some(0)) => return SessionEnd::PeerClosed,
                        Ok(Some(_)) => unflushed = true,
                        Ok(None) => unflushed = false,
                        Err(error) => return SessionEnd::Io(error),
                    }
                }
                read = reader.read_buf(&mut rbuf), if read_open => {
                    match read {
                        Ok(0) => return SessionEnd::PeerClosed,
                        Ok(_) => {}
                        Err(error) => return SessionEnd::Io(error),
                    }
                    let now = Instant::now();
                    while self.closing.is_none() {
                        match codec.decode(&mut rbuf) {
                            Ok(Some(frame)) => self.handle_frame(&frame, now),
                            Ok(None) => break,
                            Err(error) => return SessionEnd::Framing(error),
                        }
                    }
                }
                order = control.recv() => match order {
                    Ok(Control::Disconnect) | Err(broadcast::error::RecvError::Closed) => {
                        return SessionEnd::Disconnected;
                    }
                    Ok(Control::Unbind) => self.start_unbind(Instant::now()),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                },
                () = self.shared.deliveries.ready().notified(), if wants_deliveries => {}
                () = &mut timer, if deadline.is_some() => {
                    if let Some(end) = self.on_timer(Instant::now()) {
                        return end;
                    }
                }
            }
        }
    }

    fn receiver_capable(&self) -> bool {
        self.bound
            .as_ref()
            .is_some_and(|b| b.mode != BindMode::Transmitter)
    }

    fn wants_deliveries(&self) -> bool {
        self.receiver_capable()
            && self.closing.is_none()
            && self.unbind_deadline.is_none()
            && self.in_flight.len() < self.shared.config.window
    }

    /// Takes queued deliver_sm up to the window and writes them.
    fn take_deliveries(&mut self) {
        if !self.wants_deliveries() {
            return;
        }
        let room = self.shared.config.window - self.in_flight.len();
        let taken = self.shared.deliveries.take(room);
        let deadline = Instant::now() + self.shared.config.response_timeout;
        for mut delivery in taken {
            let sequence_number = self.sequence_number();
            let start = self.wbuf.len();
            self.wbuf.extend_from_slice(&delivery.frame);
            if let Some(field) = self.wbuf.get_mut(start + 12..start + 16) {
                field.copy_from_slice(&sequence_number.to_be_bytes());
            }
            delivery.sends += 1;
            match (delivery.kind, delivery.sends) {
                (DeliveryKind::Mo, 2..) => {
                    self.shared.stats.mo_redelivered.fetch_add(1, Relaxed);
                }
                (DeliveryKind::Receipt, 1) => {
                    self.shared.stats.receipts_sent.fetch_add(1, Relaxed);
                }
                _ => {}
            }
            if delivery.kind == DeliveryKind::Mo && take_one(&self.shared.resend_early) {
                let copy = self.sequence_number();
                let start = self.wbuf.len();
                self.wbuf.extend_from_slice(&delivery.frame);
                if let Some(field) = self.wbuf.get_mut(start + 12..start + 16) {
                    field.copy_from_slice(&copy.to_be_bytes());
                }
                self.shared.stats.mo_redelivered.fetch_add(1, Relaxed);
            }
            self.in_flight.insert(sequence_number, delivery);
            self.response_deadlines
                .push_back((deadline, sequence_number));
        }
    }

    fn sequence_number(&mut self) -> u32 {
        let n = self.next_sequence_number;
        // SMPP 3.4 §5.1.4: 0x00000001..=0x7FFFFFFF, then wrap.
        self.next_sequence_number = if n >= 0x7FFF_FFFF { 1 } else { n + 1 };
        n
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(_, seq)) = self.response_deadlines.front() {
            if self.in_flight.contains_key(&seq) {
                break;
            }
            self.response_deadlines.pop_front();
        }
        [
            self.response_deadlines.front().map(|&(at, _)| at),
            self.delayed_responses.front().map(|&(at, _)| at),
            self.enquire_link_due,
            self.enquire_link_outstanding.map(|(_, at)| at),
            self.unbind_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Fires whatever is due; `Some` ends the session at once.
    fn on_timer(&mut self, now: Instant) -> Option<SessionEnd> {
        while let Some(&(at, seq)) = self.response_deadlines.front() {
            if at > now {
                break;
            }
            self.response_deadlines.pop_front();
            if let Some(delivery) = self.in_flight.remove(&seq) {
                warn!(
                    peer = %self.peer,
                    sequence_number = seq,
                    timeout = ?self.shared.config.response_timeout,
                    "no deliver_sm_resp in time; will redeliver"
                );
                self.shared.deliveries.retry(delivery);
            }
        }
        while self
            .delayed_responses
            .front()
            .is_some_and(|&(at, _)| at <= now)
        {
            if let Some((_, frame)) = self.delayed_responses.pop_front() {
                self.wbuf.extend_from_slice(&frame);
            }
        }
        if self.unbind_deadline.is_some_and(|at| at <= now) {
            return Some(SessionEnd::UnbindTimeout);
        }
        if self
            .enquire_link_outstanding
            .is_some_and(|(_, at)| at <= now)
        {
            return Some(SessionEnd::EnquireLinkTimeout);
        }
        if let (Some(due), Some(every)) = (
            self.enquire_link_due,
            self.shared.config.enquire_link_interval,
        ) && due <= now
        {
            self.enquire_link_due = Some(now + every);
            // Only a bound session is probed: before bind the ESME owes us nothing but a bind.
            if self.bound.is_some() && self.enquire_link_outstanding.is_none() {
                let seq = self.sequence_number();
                self.write(&encode::enquire_link(seq));
                self.enquire_link_outstanding =
                    Some((seq, now + self.shared.config.response_timeout));
            }
        }
        None
    }

    fn start_unbind(&mut self, now: Instant) {
        if self.bound.is_none() {
            self.closing.get_or_insert(SessionEnd::Disconnected);
            return;
        }
        if self.unbind_deadline.is_none() {
            let seq = self.sequence_number();
            self.write(&encode::unbind(seq));
            self.unbind_deadline = Some(now + UNBIND_WAIT);
        }
    }

    fn write(&mut self, command: &rusmpp::Command) {
        encode::write_command(command, &mut self.wbuf);
    }

    fn nack(&mut self, sequence_number: u32, status: CommandStatus) {
        self.shared.stats.generic_nacks_sent.fetch_add(1, Relaxed);
        self.write(&encode::generic_nack(sequence_number, status));
    }

    fn handle_frame(&mut self, frame: &[u8], now: Instant) {
        let command = match crate::smpp::decode(frame) {
            Ok(command) => command,
            Err(error) => {
                warn!(peer = %self.peer, %error, "undecodable pdu; answering generic_nack");
                self.nack(error.sequence_number(), error.command_status());
                return;
            }
        };
        let seq = command.sequence_number();
        let status = command.command_status();
        match command.pdu {
            Pdu::BindTransmitter(bind) => self.on_bind(BindMode::Transmitter, seq, &bind),
            Pdu::BindReceiver(bind) => self.on_bind(BindMode::Receiver, seq, &bind),
            Pdu::BindTransceiver(bind) => self.on_bind(BindMode::Transceiver, seq, &bind),
            Pdu::SubmitSm(sm) => self.on_submit(seq, &sm, now),
            Pdu::DeliverSmResp(_) | Pdu::GenericNack => match self.in_flight.remove(&seq) {
                Some(delivery) => self.shared.deliveries.settle(delivery, status),
                None => debug!(peer = %self.peer, seq, "answer to no deliver_sm in flight"),
            },
            Pdu::EnquireLink => self.write(&encode::enquire_link_resp(seq)),
            Pdu::EnquireLinkResp => {
                if self.enquire_link_outstanding.is_some_and(|(s, _)| s == seq) {
                    self.enquire_link_outstanding = None;
                }
            }
            Pdu::Unbind => {
                self.write(&encode::unbind_resp(seq));
                self.closing = Some(SessionEnd::UnboundByPeer);
            }
            Pdu::UnbindResp if self.unbind_deadline.is_some() => {
                self.closing = Some(SessionEnd::UnboundBySimulator);
            }
            _ => {
                let id = command.command_id();
                if id.is_response() {
                    debug!(peer = %self.peer, command = id.name(), seq, "unexpected response ignored");
                    return;
                }
                let status = match (id, &self.bound) {
                    (CommandId::Other(_), _) | (_, Some(_)) => CommandStatus::ESME_RINVCMDID,
                    (_, None) => CommandStatus::ESME_RINVBNDSTS,
                };
                debug!(peer = %self.peer, command = id.name(), %status, "command not taken");
                self.nack(seq, status);
            }
        }
    }

    fn on_bind(&mut self, mode: BindMode, seq: u32, bind: &Bind<'_>) {
        let config = &self.shared.config;
        let status = if self.bound.is_some() {
            CommandStatus::ESME_RALYBND
        } else if self.shared.reject_binds.load(Relaxed) {
            CommandStatus::ESME_RBINDFAIL
        } else if bind.system_id != config.system_id.as_str() {
            CommandStatus::ESME_RINVSYSID
        } else if bind.password != config.password.as_str() {
            CommandStatus::ESME_RINVPASWD
        } else {
            CommandStatus::ESME_ROK
        };
        match encode::bind_resp(mode, seq, status, &config.smsc_system_id) {
            Ok(resp) => self.write(&resp),
            Err(error) => {
                warn!(%error, "cannot encode bind_resp; answering generic_nack");
                self.nack(seq, CommandStatus::ESME_RSYSERR);
                return;
            }
        }
        let system_id = bind.system_id.to_str_lossy();
        if status.is_ok() {
            info!(peer = %self.peer, %system_id, ?mode, "esme bound");
            self.shared.stats.binds_accepted.fetch_add(1, Relaxed);
            self.shared.stats.sessions_bound.fetch_add(1, Relaxed);
            self.bound = Some(Bound {
                mode,
                system_id: system_id.into_owned(),
            });
        } else {
            warn!(peer = %self.peer, %system_id, ?mode, %status, "bind refused");
            self.shared.stats.binds_rejected.fetch_add(1, Relaxed);
        }
    }

    fn on_submit(&mut self, seq: u32, sm: &Sm<'_>, now: Instant) {
        let shared = self.shared.clone();
        shared.stats.submit_sm_received.fetch_add(1, Relaxed);
        let system_id = match &self.bound {
            Some(bound) if bound.mode != BindMode::Receiver => bound.system_id.as_str(),
            _ => {
                self.write(&encode::header_only(
                    rusmpp::CommandId::SubmitSmResp,
                    CommandStatus::ESME_RINVBNDSTS,
                    seq,
                ));
                return;
            }
        };
        match shared.submits.take(system_id, sm, now, &shared.deliveries) {
            SubmitAnswer::Swallowed => debug!(peer = %self.peer, seq, "swallowing a submit_sm"),
            SubmitAnswer::Throttled => {
                self.respond_submit(seq, CommandStatus::ESME_RTHROTTLED, "", now)
            }
            SubmitAnswer::Accepted(id) => {
                self.respond_submit(seq, CommandStatus::ESME_ROK, id.as_str(), now)
            }
        }
    }

    fn respond_submit(&mut self, seq: u32, status: CommandStatus, id: &str, now: Instant) {
        let resp = match encode::submit_sm_resp(seq, status, id) {
            Ok(resp) => resp,
            Err(error) => {
                warn!(%error, "cannot encode submit_sm_resp; answering generic_nack");
                self.nack(seq, CommandStatus::ESME_RSYSERR);
                return;
            }
        };
        let latency = self.shared.submit_latency();
        if latency.is_zero() && self.delayed_responses.is_empty() {
            self.write(&resp);
        } else {
            let mut frame = BytesMut::new();
            encode::write_command(&resp, &mut frame);
            // Never before an answer already held back, so answers stay in order.
            let due = self
                .delayed_responses
                .back()
                .map_or(now + latency, |&(last, _)| last.max(now + latency));
            self.delayed_responses.push_back((due, frame.freeze()));
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let stats = &self.shared.stats;
        stats.sessions_open.fetch_sub(1, Relaxed);
        if self.bound.is_some() {
            stats.sessions_bound.fetch_sub(1, Relaxed);
        }
        if !self.in_flight.is_empty() {
            info!(
                peer = %self.peer,
                count = self.in_flight.len(),
                "session closed with deliver_sm unanswered; will redeliver"
            );
        }
        for (_, delivery) in self.in_flight.drain() {
            self.shared.deliveries.retry(delivery);
        }
    }
}
