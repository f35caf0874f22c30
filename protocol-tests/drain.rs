//! SIGTERM while business systems post (issue 27 item 7): 64 posters against `smsflow run` as
//! a process, half on fresh connections, half on keep-alive ones, posting until the service
//! is gone. Every POST sent gets a whole HTTP answer: 202, or a JSON 503 `stopping` with
//! `Connection: close` and `Retry-After` for those that came after the stop began; none is
//! reset or cut short. After a restart every 202 has its conversation, and no 503 started one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::http::raw;
use crate::run::{simulator_and_service, spawn_service, stop_with_sigterm};
use crate::util::until_ready;

const POSTERS: usize = 64;
/// Accepted events before the SIGTERM: the posters are in full flow by then.
const BEFORE_STOP: usize = 400;

/// What became of one POST.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A whole answer: status, head, body.
    Answered(u16, String, String),
    /// The connection was refused: the service is gone, nothing was sent.
    Refused,
    /// Reset, closed before the whole answer, or no connection for another reason.
    Broken(String),
}

/// A poster's connection to `POST /api/v1/flows/survey/events`: kept between POSTs when
/// `keep_alive`, until an answer closes it (also for `soak.rs`).
pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    pub(crate) keep_alive: bool,
    pub(crate) stream: Option<TcpStream>,
}

impl Client {
    pub(crate) async fn post(&mut self, body: &str) -> Outcome {
        let reused = self.stream.is_some();
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(self.addr).await {
                Ok(stream) => stream,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Outcome::Refused;
                }
                Err(e) => return Outcome::Broken(format!("connect: {e}")),
            },
        };
        let close = if self.keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        };
        let request = format!(
            "POST /api/v1/flows/survey/events HTTP/1.1\r\nHost: test\r\n{close}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if let Err(e) = stream.write_all(request.as_bytes()).await {
            return Outcome::Broken(format!("write (reused: {reused}): {e}"));
        }
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some((head, body)) = whole_answer(&received) {
                let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
                let closes = header(&head, "connection") == Some("close".to_owned());
                if self.keep_alive && !closes {
                    self.stream = Some(stream);
                }
                return match status {
                    Some(status) => Outcome::Answered(status, head, body),
                    None => Outcome::Broken(format!("no status: {head}")),
                };
            }
            match stream.read(&mut buf).await {
                Ok(0) => {
                    let got = String::from_utf8_lossy(&received);
                    return Outcome::Broken(format!("closed (reused: {reused}) after {got:?}"));
                }
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => return Outcome::Broken(format!("read (reused: {reused}): {e}")),
            }
        }
    }
}

/// The head and body once `received` holds as many body bytes as the head declares.
fn whole_answer(received: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(received).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length: usize = header(head, "content-length")?.parse().ok()?;
    (body.len() >= length).then(|| (head.to_owned(), body.to_owned()))
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// What the posters saw.
#[derive(Default)]
struct Seen {
    /// Event id and conversation of each 202.
    accepted: Vec<(String, u64)>,
    /// Event id, head and body of each 503.
    refused: Vec<(String, String, Value)>,
    broken: Vec<String>,
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_64_clients_post_answers_every_post_and_loses_no_202() {
    let (smsc, _dir, setup, mut service) = simulator_and_service("drain").await;
    let accepted = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let posters: Vec<_> = (0..POSTERS)
        .map(|p| {
            let (accepted, enough) = (accepted.clone(), enough.clone());
            let mut client = Client {
                addr: setup.http,
                keep_alive: p % 2 == 0,
                stream: None,
            };
            tokio::spawn(async move {
                let mut seen = Seen::default();
                for i in 0.. {
                    let id = format!("drain-{p}-{i}");
                    let body = format!(
                        r#"{{"id": "{id}", "msisdn": "998{p:02}{i:07}", "operator": "op-1", "channel": "call"}}"#
                    );
                    match client.post(&body).await {
                        Outcome::Answered(202, _, body) => {
                            let body: Value = serde_json::from_str(&body).unwrap();
                            let conversation = body["conversation"].as_u64().unwrap();
                            seen.accepted.push((id, conversation));
                            if accepted.fetch_add(1, Ordering::SeqCst) + 1 == BEFORE_STOP {
                                enough.notify_one();
                            }
                        }
                        Outcome::Answered(503, head, body) => {
                            let body = serde_json::from_str(&body).unwrap_or(Value::Null);
                            seen.refused.push((id, head, body));
                            break;
                        }
                        Outcome::Answered(status, head, body) => {
                            seen.other.push(format!("{id}: {status} {head} {body}"));
                            break;
                        }
                        Outcome::Refused => break,
                        Outcome::Broken(why) => {
                            seen.broken.push(format!("{id}: {why}"));
                            break;
                        }
                    }
                }
                seen
            })
        })
        .collect();
    enough.notified().await;
    stop_with_sigterm(&mut service).await;
    let mut seen = Seen::default();
    for poster in posters {
        let one = poster.await.unwrap();
        seen.accepted.extend(one.accepted);
        seen.refused.extend(one.refused);
        seen.broken.extend(one.broken);
        seen.other.extend(one.other);
    }
    eprintln!(
        "drain: {} accepted, {} answered 503 stopping, {} broken",
        seen.accepted.len(),
        seen.refused.len(),
        seen.broken.len()
    );
    assert_eq!(
        seen.broken,
        Vec::<String>::new(),
        "POSTs without a whole answer"
    );
    assert_eq!(seen.other, Vec::<String>::new());
    for (id, head, body) in &seen.refused {
        assert_eq!(body["error"], "stopping", "{id}: {head} {body}");
        assert_eq!(
            header(head, "connection").as_deref(),
            Some("close"),
            "{id}: {head}"
        );
        assert!(header(head, "retry-after").is_some(), "{id}: {head}");
    }

    // Restarted, the service has every accepted event's conversation, and none of the 503s.
    let mut service = spawn_service(&setup.config);
    until_ready(setup.http).await;
    for (id, conversation) in &seen.accepted {
        let found = raw(
            setup.http,
            "GET",
            &format!("/api/v1/flows/survey/events/{id}"),
            &[],
            None,
        )
        .await;
        assert_eq!(found.status, 200, "{id}: {}", found.json);
        assert_eq!(found.json["id"], *conversation, "{id}");
    }
    for (id, _, body) in &seen.refused {
        let path = format!("/api/v1/flows/survey/events/{id}");
        let found = raw(setup.http, "GET", &path, &[], None).await;
        assert_eq!(
            found.status, 404,
            "{id} answered {body} but started {}",
            found.json
        );
    }
    stop_with_sigterm(&mut service).await;
    smsc.shutdown().await;
}
