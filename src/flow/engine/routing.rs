//! Which open conversation an MO is for, when its sender is a party of several (a nurse with
//! two calls): SPEC.md routes to the most recent one, which takes an `OK` meant for the older
//! call and lets that one escalate. Staff calls add two rules before that:
//!
//! 1. **Reply codes.** A reply that ends in a number (`OK 315`, `ГОТОВО 315`), or is a lone
//!    number, goes to the sender's open conversation whose reply code it is.
//! 2. **Asking.** Otherwise, when the sender has several open conversations, those whose flow
//!    defines `fn wants_reply(msg)` are asked (with their `this`; what they ask for is
//!    discarded). One that answers a label (`"Палата 315"`, or `true`) claims the reply. The
//!    reply goes to the newest that claims it, else to the newest whose flow does not ask
//!    (a survey takes any reply, as before), else to the newest. The one it goes to sees every
//!    claim in `msg.claims` (`#{conversation, code, label}`), so it can answer a bare `OK`
//!    claimed by two calls with the list of their codes.
//!
//! `on_reply` sees `msg.code` (the number the reply carried, `()` without) and `msg.word` (the
//! reply without it, trimmed). With one open conversation no record is read and no script
//! asked (the codes are in memory): a survey's reply costs what it did.

use rhai::{Array, Dynamic, Map};

use super::super::runner::{self, CompiledFlow};
use super::{EngineError, FlowEngine};
use crate::store::{Conversation, ConversationId};

/// Where a reply goes and what the flow is told about it.
#[derive(Debug, Default)]
pub(super) struct Route {
    /// The open conversation it is for; `None`: the sender has none (the inbox takes it).
    pub conversation: Option<ConversationId>,
    pub code: Option<u32>,
    pub word: String,
    pub claims: Vec<Claim>,
}

/// A conversation that wants a reply (`fn wants_reply(msg)` answered a label).
#[derive(Debug)]
pub(super) struct Claim {
    pub conversation: ConversationId,
    pub code: Option<u32>,
    pub label: String,
}

impl Route {
    /// `code`, `word` and `claims` into the `msg` map a hook gets.
    pub fn add_to(&self, msg: &mut Map) {
        msg.insert(
            "code".into(),
            self.code.map_or(Dynamic::UNIT, |c| i64::from(c).into()),
        );
        msg.insert("word".into(), self.word.clone().into());
        let claims: Array = (self.claims.iter())
            .map(|c| {
                let mut m = Map::new();
                m.insert("conversation".into(), (c.conversation as i64).into());
                m.insert(
                    "code".into(),
                    c.code.map_or(Dynamic::UNIT, |c| i64::from(c).into()),
                );
                m.insert("label".into(), c.label.clone().into());
                m.into()
            })
            .collect();
        msg.insert("claims".into(), claims.into());
    }
}

/// The `msg` fields every reply has.
pub(super) fn reply_fields(from: &str, text: &str, received_at: i64) -> Map {
    let mut msg = Map::new();
    msg.insert("from".into(), from.into());
    msg.insert("text".into(), text.into());
    msg.insert("received_at".into(), received_at.into());
    msg
}

/// The reply's number and the rest: `"OK 315"` → `("OK", 315)`. A reply of one word is a
/// number only as a whole (`"315"`), and then only counts when it is a conversation's code
/// (`lone`): a bare `1` or `5` is an answer, not a code.
fn split_code(text: &str) -> (String, Option<u32>, bool) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let number = |w: &str| {
        (w.len() <= 6 && w.bytes().all(|b| b.is_ascii_digit()))
            .then(|| w.parse::<u32>().ok())
            .flatten()
    };
    match words.as_slice() {
        [only] => match number(only) {
            Some(code) => (String::new(), Some(code), true),
            None => ((*only).to_owned(), None, false),
        },
        [rest @ .., last] if !rest.is_empty() => match number(last) {
            Some(code) => (rest.join(" "), Some(code), false),
            None => (words.join(" "), None, false),
        },
        _ => (String::new(), None, false),
    }
}

impl FlowEngine {
    /// See the module documentation. Reads without the conversations' locks: a step that
    /// races it at worst closes the chosen one, and the caller re-reads under the lock.
    pub(super) fn route(
        &self,
        now: i64,
        from: &str,
        text: &str,
        received_at: i64,
    ) -> Result<Route, EngineError> {
        let candidates = self.store.open_conversations_of(from)?;
        let (word, code, lone) = split_code(text);
        // A lone number that is nobody's code is the reply itself ("1" may be an ack word).
        let mut route = Route {
            conversation: candidates.first().copied(),
            code: (!lone).then_some(code).flatten(),
            word: if lone { text.trim().to_owned() } else { word },
            claims: Vec::new(),
        };
        if let Some(code) = code
            && let [holder] = self.store.holding_code(&candidates, code)[..]
        {
            route.conversation = Some(holder);
            route.code = Some(code);
            if lone {
                route.word.clear();
            }
            return Ok(route);
        }
        if candidates.len() < 2 {
            return Ok(route);
        }
        let mut open: Vec<Conversation> = Vec::with_capacity(candidates.len());
        for id in &candidates {
            if let Some(c) = self.store.conversation(*id)?.filter(|c| c.status.is_open()) {
                open.push(c);
            }
        }
        let mut msg = reply_fields(from, text, received_at);
        route.add_to(&mut msg);
        let mut takes_any = None;
        for c in &open {
            let flow = self.version(&c.flow, &c.flow_version)?;
            if !flow.claims_replies {
                takes_any = takes_any.or(Some(c.id));
                continue;
            }
            if let Some(label) = self.wants(now, &flow, c, &msg) {
                route.claims.push(Claim {
                    conversation: c.id,
                    code: c.reply_code,
                    label,
                });
            }
        }
        route.conversation = (route.claims.first().map(|c| c.conversation))
            .or(takes_any)
            .or(route.conversation);
        Ok(route)
    }

    /// What `fn wants_reply(msg)` of `conversation` answers: a label, or `None` (no, `()`,
    /// or it failed, which is logged: a broken question must not lose the reply).
    fn wants(
        &self,
        now: i64,
        flow: &CompiledFlow,
        conversation: &Conversation,
        msg: &Map,
    ) -> Option<String> {
        let mut state = rhai::serde::to_dynamic(&conversation.state).ok()?;
        let input = self.input(now, &flow.name, conversation.reply_code);
        let msg = Dynamic::from_map(msg.clone());
        match runner::ask(
            &self.engine,
            flow,
            "wants_reply",
            Some(&mut state),
            msg,
            input,
        ) {
            Ok(answer) if answer.is_string() => Some(answer.to_string()),
            Ok(answer) if answer.as_bool() == Ok(true) => Some(String::new()),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(conversation = conversation.id, "{e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_code;

    #[test]
    fn a_code_is_the_last_word_or_a_lone_number() {
        assert_eq!(split_code("OK 315"), ("OK".into(), Some(315), false));
        assert_eq!(
            split_code("  готово   315 "),
            ("готово".into(), Some(315), false)
        );
        assert_eq!(split_code("315"), (String::new(), Some(315), true));
        assert_eq!(split_code("OK"), ("OK".into(), None, false));
        assert_eq!(split_code("5"), (String::new(), Some(5), true));
        assert_eq!(
            split_code("4 долго ждал"),
            ("4 долго ждал".into(), None, false)
        );
        assert_eq!(split_code("ok 1234567"), ("ok 1234567".into(), None, false));
        assert_eq!(split_code(""), (String::new(), None, false));
    }
}
