//! Finding conversations over HTTP (issue 12): `GET /api/v1/conversations` with every filter
//! alone and together, paged to the end, its 400s and 401, and
//! `GET /api/v1/flows/{flow}/events/{id}`. The conversations are committed to the server's
//! store with the times and statuses each case needs, one comes from a real event.

use std::cmp::Reverse;

use serde_json::{Value, json};
use smsflow::flow::check;
use smsflow::store::{Commit, Conversation, ConversationStatus, Millis};

use crate::http::{Resp, Server, TOKEN};

const A: &str = "998901111111";
const B: &str = "998902222222";
const C: &str = "998903333333";

/// What the test made, to say what each query should find.
struct Made {
    id: u64,
    flow: &'static str,
    parties: &'static [&'static str],
    status: &'static str,
    created_at: Millis,
    event_id: String,
}

fn at(rfc3339: &str) -> Millis {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// The server with a survey started by an event (created last: [`check::START`],
/// 2026-11-23) and eight conversations committed over 2026-11-20..22 (UTC, the server's
/// zone) after it, so ids and creation times are in different orders.
async fn setup() -> (Server, Vec<Made>) {
    let server = Server::start(&[TOKEN]).await;
    let event = json!({
        "id": "call-find", "msisdn": format!("+{A}"), "operator": "op-1", "channel": "call",
    });
    let r = server
        .call(
            "POST",
            "/api/v1/flows/survey/events",
            Some(TOKEN),
            Some(&event.to_string()),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.json);
    let mut made = vec![Made {
        id: r.json["conversation"].as_u64().unwrap(),
        flow: "survey",
        parties: &[A],
        status: "open",
        created_at: check::START,
        event_id: "call-find".into(),
    }];
    let store = server.engine.store();
    let table: [(&str, &[&str], &str, &str); 8] = [
        ("survey", &[A], "finished", "2026-11-20T09:00:00Z"),
        ("escalation", &[A, B], "open", "2026-11-20T12:00:00Z"),
        ("survey", &[B], "errored", "2026-11-21T09:00:00Z"),
        ("survey", &[A], "open", "2026-11-21T10:00:00Z"),
        ("escalation", &[C], "finished", "2026-11-21T11:00:00Z"),
        ("survey", &[C], "finished", "2026-11-22T09:00:00Z"),
        ("escalation", &[B], "errored", "2026-11-22T10:00:00Z"),
        ("survey", &[A], "open", "2026-11-22T11:00:00Z"),
    ];
    for (flow, parties, status, created) in table {
        let id = store.next_id().unwrap();
        let created_at = at(created);
        let event_id = format!("ext-{id}");
        store
            .commit(Commit {
                conversation: Some(Conversation {
                    id,
                    flow: flow.into(),
                    flow_version: "test".into(),
                    state: json!({"n": id}),
                    parties: parties.iter().map(|p| p.to_string()).collect(),
                    status: match status {
                        "open" => ConversationStatus::Open,
                        "finished" => ConversationStatus::Finished {
                            outcome: "rated".into(),
                        },
                        _ => ConversationStatus::Errored {
                            error: "boom".into(),
                        },
                    },
                    event_key: Some(event_id.clone()),
                    created_at,
                    updated_at: created_at + 60_000,
                    ..Default::default()
                }),
                event_key: Some((flow.into(), event_id.clone(), id)),
                ..Commit::default()
            })
            .unwrap();
        made.push(Made {
            id,
            flow,
            parties,
            status,
            created_at,
            event_id,
        });
    }
    (server, made)
}

async fn get(server: &Server, path: &str) -> Resp {
    server.call("GET", path, Some(TOKEN), None).await
}

/// The ids of one page, checking each entry's shape against what was made.
fn page_ids(r: &Resp, made: &[Made]) -> Vec<u64> {
    assert_eq!(r.status, 200, "{}", r.json);
    let list = r.json["conversations"].as_array().expect("a list");
    let mut ids = Vec::new();
    for c in list {
        let id = c["id"].as_u64().unwrap();
        let m = made.iter().find(|m| m.id == id).expect("one the test made");
        assert_eq!(c["flow"], m.flow, "{c}");
        assert_eq!(c["status"], m.status, "{c}");
        assert_eq!(c["parties"], json!(m.parties), "{c}");
        assert_eq!(c["event_id"], m.event_id.as_str(), "{c}");
        let created = c["created_at"].as_str().unwrap();
        assert_eq!(at(created), m.created_at, "{c}");
        assert!(c["updated_at"].is_string(), "{c}");
        assert!(
            c.get("timeline").is_none() && c.get("state").is_none(),
            "{c}"
        );
        match m.status {
            "finished" => assert_eq!(c["outcome"], "rated", "{c}"),
            "errored" => assert_eq!(c["error"], "boom", "{c}"),
            _ => assert!(
                c.get("outcome").is_none() && c.get("error").is_none(),
                "{c}"
            ),
        }
        ids.push(id);
    }
    ids
}

/// What a query should find: the made conversations `keep` holds, newest first.
fn expect(made: &[Made], keep: impl Fn(&Made) -> bool) -> Vec<u64> {
    let mut found: Vec<&Made> = made.iter().filter(|m| keep(m)).collect();
    found.sort_by_key(|m| Reverse((m.created_at, m.id)));
    found.iter().map(|m| m.id).collect()
}

/// Every page of `query` with `limit=2`, followed through `next_cursor`.
async fn pages(server: &Server, made: &[Made], query: &str) -> Vec<Vec<u64>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/conversations?limit=2{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = get(server, &path).await;
        let ids = page_ids(&r, made);
        assert!(ids.len() <= 2, "{path}: {ids:?}");
        pages.push(ids);
        match &r.json["next_cursor"] {
            Value::Null => return pages,
            Value::String(next) => cursor = Some(next.clone()),
            other => panic!("{path}: next_cursor {other}"),
        }
        assert!(pages.len() <= 10, "{path}: does not end: {pages:?}");
    }
}

#[tokio::test]
async fn each_filter_alone_and_combined_newest_first() {
    let (server, made) = setup().await;
    let ids = |n: &[usize]| n.iter().map(|&i| made[i].id).collect::<Vec<_>>();
    let has = |m: &Made, p: &str| m.parties.contains(&p);
    // The UTC day, as text: ISO dates compare as they sort.
    let day = |m: &Made| {
        let t = jiff::Timestamp::from_millisecond(m.created_at).unwrap();
        t.to_string()[..10].to_owned()
    };
    let cases: Vec<(&str, Vec<u64>)> = vec![
        ("", expect(&made, |_| true)),
        ("msisdn=998901111111", expect(&made, |m| has(m, A))),
        // `+` written %2B, or as it comes unencoded: a space.
        ("msisdn=%2B998902222222", expect(&made, |m| has(m, B))),
        ("msisdn=+998903333333", expect(&made, |m| has(m, C))),
        ("flow=escalation", expect(&made, |m| m.flow == "escalation")),
        ("status=open", expect(&made, |m| m.status == "open")),
        ("status=finished", expect(&made, |m| m.status == "finished")),
        ("status=errored", expect(&made, |m| m.status == "errored")),
        (
            "from=2026-11-21",
            expect(&made, |m| day(m).as_str() >= "2026-11-21"),
        ),
        (
            "to=2026-11-21",
            expect(&made, |m| day(m).as_str() <= "2026-11-21"),
        ),
        ("from=2026-11-21&to=2026-11-21", ids(&[5, 4, 3])),
        // Times: both ends included.
        (
            "from=2026-11-21T10:00:00Z",
            expect(&made, |m| m.created_at >= at("2026-11-21T10:00:00Z")),
        ),
        ("to=2026-11-21T10:00:00%2B00:00", ids(&[4, 3, 2, 1])),
        (
            "msisdn=998901111111&flow=survey&status=open",
            ids(&[0, 8, 4]),
        ),
        ("msisdn=998902222222&status=errored", ids(&[7, 3])),
        ("flow=survey&status=finished&from=2026-11-22", ids(&[6])),
        ("msisdn=998903333333&flow=survey&to=2026-11-21", vec![]),
        ("msisdn=998909999999", vec![]),
        // Loaded, and no conversation yet.
        ("flow=inbox", vec![]),
    ];
    // The model agrees with the cases written out.
    assert_eq!(cases[1].1, ids(&[0, 8, 4, 2, 1]));
    assert_eq!(cases[5].1, ids(&[0, 8, 4, 2]));
    assert_eq!(cases[0].1, ids(&[0, 8, 7, 6, 5, 4, 3, 2, 1]));
    for (query, expected) in cases {
        let r = get(&server, &format!("/api/v1/conversations?{query}")).await;
        assert_eq!(page_ids(&r, &made), expected, "?{query}");
        assert_eq!(r.json["next_cursor"], Value::Null, "?{query}");
    }
}

#[tokio::test]
async fn pages_of_two_walk_every_match_once_then_the_cursor_is_null() {
    let (server, made) = setup().await;
    let ids = |n: &[usize]| n.iter().map(|&i| made[i].id).collect::<Vec<_>>();
    let all = pages(&server, &made, "").await;
    assert_eq!(all.concat(), ids(&[0, 8, 7, 6, 5, 4, 3, 2, 1]));
    assert_eq!(all.len(), 5, "{all:?}");
    let a = pages(&server, &made, "&msisdn=998901111111").await;
    assert_eq!(a, [ids(&[0, 8]), ids(&[4, 2]), ids(&[1])]);
    let open = pages(&server, &made, "&status=open").await;
    assert_eq!(open, [ids(&[0, 8]), ids(&[4, 2])]);
    let errored = pages(&server, &made, "&flow=escalation&status=errored").await;
    assert_eq!(errored.concat(), ids(&[7]));
    // A full page says where to go on.
    let r = get(&server, "/api/v1/conversations?limit=1").await;
    assert_eq!(page_ids(&r, &made), ids(&[0]));
    assert!(r.json["next_cursor"].is_string(), "{}", r.json);
}

#[tokio::test]
async fn bad_parameters_are_400_naming_them_and_a_token_is_needed() {
    let (server, _) = setup().await;
    for (query, named) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=many", "limit"),
        ("status=closed", "status"),
        ("from=2026-13-01", "from"),
        ("to=tomorrow", "to"),
        ("from=2026-11-22&to=2026-11-21", "from"),
        ("msisdn=12ab", "msisdn"),
        ("cursor=nope", "cursor"),
        ("flow=nosuch", "flow"),
        ("flow=survey&flow=escalation", "flow"),
        ("page=2", "page"),
    ] {
        let r = get(&server, &format!("/api/v1/conversations?{query}")).await;
        r.assert_error(400, "bad request");
        let detail = r.json["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("{named} ")) || detail.contains(&format!("\"{named}\"")),
            "?{query}: {detail}"
        );
    }
    for path in [
        "/api/v1/conversations",
        "/api/v1/conversations?msisdn=998901111111",
        "/api/v1/flows/survey/events/call-find",
    ] {
        for token in [None, Some("wrong")] {
            let r = server.call("GET", path, token, None).await;
            r.assert_error(401, "unauthorized");
        }
    }
}

#[tokio::test]
async fn an_event_id_answers_its_conversation_or_404() {
    let (server, made) = setup().await;
    let by_event = get(&server, "/api/v1/flows/survey/events/call-find").await;
    assert_eq!(by_event.status, 200, "{}", by_event.json);
    let by_id = get(&server, &format!("/api/v1/conversations/{}", made[0].id)).await;
    assert_eq!(by_event.json, by_id.json, "the same answer as by id");
    assert_eq!(by_event.json["parties"], json!([A]));
    assert_eq!(by_event.json["event_id"], "call-find");
    assert!(
        by_event.json["timeline"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    let escalation = &made[5];
    let r = get(
        &server,
        &format!("/api/v1/flows/escalation/events/{}", escalation.event_id),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["id"], escalation.id);
    assert_eq!(r.json["state"], json!({"n": escalation.id}));
    // Another flow's event id, an id never posted, a flow that does not exist.
    let r = get(
        &server,
        &format!("/api/v1/flows/survey/events/{}", escalation.event_id),
    )
    .await;
    r.assert_error(404, "unknown event");
    get(&server, "/api/v1/flows/survey/events/never")
        .await
        .assert_error(404, "unknown event");
    let r = get(&server, "/api/v1/flows/nosuch/events/call-find").await;
    r.assert_error(404, "unknown flow");
    assert!(
        r.json["detail"].as_str().unwrap().contains("survey"),
        "{}",
        r.json
    );
}
