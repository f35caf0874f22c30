//! Helpers shared by the protocol tests.

/// Octets from annotated hex: whitespace is ignored and `#` starts a comment to the line's end.
pub fn hex(annotated: &str) -> Vec<u8> {
    let digits: String = annotated
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    hex::decode(&digits).unwrap_or_else(|e| panic!("bad hex vector {digits:?}: {e}"))
}

/// A frame around `body`: header with the right command_length.
pub fn frame(command_id: u32, status: u32, sequence_number: u32, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(16 + body.len());
    f.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    f.extend_from_slice(&command_id.to_be_bytes());
    f.extend_from_slice(&status.to_be_bytes());
    f.extend_from_slice(&sequence_number.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// A deliver_sm body from its parts (SMPP 3.4 §4.6.1), for tests that vary one field.
pub struct DeliverBody<'a> {
    pub source_addr: &'a [u8],
    pub esm_class: u8,
    pub data_coding: u8,
    pub short_message: &'a [u8],
    pub tlvs: &'a [u8],
}

impl Default for DeliverBody<'_> {
    fn default() -> Self {
        Self {
            source_addr: b"998901234567",
            esm_class: 0,
            data_coding: 0,
            short_message: b"",
            tlvs: b"",
        }
    }
}

impl DeliverBody<'_> {
    pub fn build(&self) -> Vec<u8> {
        let mut b = vec![0, 1, 1];
        b.extend_from_slice(self.source_addr);
        b.extend_from_slice(&[0, 3, 0]);
        b.extend_from_slice(b"5700\0");
        b.extend_from_slice(&[self.esm_class, 0, 0, 0, 0, 0, 0, self.data_coding, 0]);
        b.push(u8::try_from(self.short_message.len()).expect("short_message over 255 octets"));
        b.extend_from_slice(self.short_message);
        b.extend_from_slice(self.tlvs);
        b
    }

    pub fn frame(&self, sequence_number: u32) -> Vec<u8> {
        frame(0x0000_0005, 0, sequence_number, &self.build())
    }
}

/// One TLV: tag, length, value.
pub fn tlv(tag: u16, value: &[u8]) -> Vec<u8> {
    let mut t = tag.to_be_bytes().to_vec();
    t.extend_from_slice(
        &u16::try_from(value.len())
            .expect("tlv over 64 KiB")
            .to_be_bytes(),
    );
    t.extend_from_slice(value);
    t
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("smsflow-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How long the end-to-end tests wait for anything before failing.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `done` until it holds; fails naming `what` after [`WAIT`]. For state that has no event
/// to await (a counter of another task, a row in the store).
pub async fn until(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A subscriber's MO to the short code 5700 through the simulator; returns once the ESME
/// answered it for good, with that answer.
pub async fn send_mo(
    smsc: &smsflow::sim::SmscHandle,
    from: &str,
    text: &str,
) -> smsflow::smpp::pdu::CommandStatus {
    let delivery = smsc
        .inject_mo(smsflow::sim::Mo {
            source: from.into(),
            destination: "5700".into(),
            text: text.into(),
        })
        .unwrap();
    tokio::time::timeout(WAIT, delivery.outcome())
        .await
        .expect("the MO is answered")
        .unwrap()
}

/// The next message the simulator was given to send (from [`smsflow::sim::SmscHandle::submitted`]).
pub async fn next_submitted(
    submitted: &mut tokio::sync::broadcast::Receiver<smsflow::sim::Submitted>,
) -> smsflow::sim::Submitted {
    tokio::time::timeout(WAIT, submitted.recv())
        .await
        .expect("a message is submitted")
        .unwrap()
}

/// Waits until `smsflow run` at `http` answers `/readyz` with 200 (bound to an SMSC).
pub async fn until_ready(http: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if tokio::net::TcpStream::connect(http).await.is_ok()
            && crate::http::raw(http, "GET", "/readyz", &[], None)
                .await
                .status
                == 200
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the service never became ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The store at `path`, waiting for sled to let go of its lock when this process dropped
/// its last handle a moment ago (sled's threads end on their own).
pub fn open_store(path: &std::path::Path) -> smsflow::store::Store {
    for _ in 0..300 {
        match smsflow::store::Store::open(path) {
            Ok(store) => return store,
            Err(smsflow::store::StoreError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("cannot open the store at {}: {e}", path.display()),
        }
    }
    panic!("the store at {} stays locked", path.display());
}
