use super::*;

const ASK: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, где 1 - очень плохо, 5 - отлично. Можете также оставить комментарий. Ваш отзыв важен для нас!";
const ASK_NO_COMMENT: &str = "Спасибо за ваш звонок. Оцените, пожалуйста, нашу работу по шкале от 1 до 5, где 1 - очень плохо, 5 - отлично. Ваш отзыв важен для нас!";
const THANKS: &str =
    "Спасибо за вашу оценку! Мы ценим ваш отзыв и постараемся улучшить наше обслуживание.";
const NOT_UNDERSTOOD: &str = "Извините, не удалось распознать ваш ответ. Пожалуйста, оцените нашу работу по шкале от 1 до 5.";

fn mt(to: &str, text: &str) -> Submitted {
    Submitted {
        system_id: "smsflow".into(),
        source: "5700".into(),
        destination: to.into(),
        text: text.into(),
        message_ids: vec!["1".into()],
        data_coding: 8,
        registered_delivery: 1,
    }
}

const NPS: &str = "Насколько вероятно, что вы порекомендуете нас друзьям? Ответьте числом от 0 до 10, где 0 - точно нет, 10 - обязательно.";
const NPS_FOLLOWUP: &str =
    "Спасибо за ответ. Что нам стоит улучшить? Напишите, пожалуйста, в ответном SMS.";

const fn scale(min: u8, max: u8) -> Scale {
    Scale { min, max }
}

#[test]
fn classifies_the_spec_texts() {
    let five = MtKind::SurveyQuestion(scale(1, 5));
    assert_eq!(classify(ASK), five);
    assert_eq!(classify(ASK_NO_COMMENT), five);
    assert_eq!(classify(THANKS), MtKind::NoReply);
    assert_eq!(classify(NOT_UNDERSTOOD), MtKind::NotUnderstood(scale(1, 5)));
    assert_eq!(classify("Please rate our service from 1 to 5."), five);
}

/// Issue 25: the subscribers answer any scale a question names, not only the shipped
/// survey's wording.
#[test]
fn a_question_is_any_text_that_names_a_scale() {
    for (text, want) in [
        (NPS, scale(0, 10)),
        ("Как вам доставка? Ответьте цифрой 0–10.", scale(0, 10)),
        ("Оцените по 10-балльной шкале", scale(1, 10)),
        ("How easy was it, 1 to 7?", scale(1, 7)),
        ("On a 7-point scale, how easy was it?", scale(1, 7)),
        ("Xizmatimizni 1 dan 7 gacha baholang", scale(1, 7)),
        ("Хизматимизни 0 дан 10 гача баҳоланг", scale(0, 10)),
        ("Rate us 1-5 please", scale(1, 5)),
    ] {
        assert_eq!(classify(text), MtKind::SurveyQuestion(want), "{text}");
    }
    assert_eq!(
        classify("Извините, не удалось распознать ответ. Ответьте, пожалуйста, числом от 0 до 10."),
        MtKind::NotUnderstood(scale(0, 10))
    );
    // Number pairs that are no scale, and staff texts with numbers in them.
    for text in [
        "Ваш заказ 2026-11-23 доставлен.",
        "Мы работаем с 9 до 18.",
        "Доставка 1-2 дня.",
        "Окно 10:00-12:00",
        "Вызов: Палата 1-5. Ответьте OK 100",
        "Вы отписались от сообщений 5700. Чтобы снова получать их, отправьте START.",
    ] {
        assert!(
            !matches!(classify(text), MtKind::SurveyQuestion(_)),
            "{text}: {:?}",
            classify(text)
        );
    }
    assert_eq!(classify(NPS_FOLLOWUP), MtKind::CommentRequest);
}

/// Every answer on a 0–10 scale is one the rating grammar reads, on that scale, and the
/// whole scale is used; garbage stays garbage ("10" is a rating there).
#[test]
fn nps_answers_cover_the_scale_and_parse() {
    let mut handsets = Handsets::new(SubscribersConfig::default(), 11);
    let mut seen = [0u32; 11];
    let mut garbage = 0;
    for i in 0..5_000 {
        let Some(reply) = handsets.on_mt(&mt(&format!("998{i:09}"), NPS)) else {
            continue;
        };
        match crate::flow::rating::parse_rating(&reply.mo.text, 0, 10) {
            Some(r) => seen[usize::from(r.score)] += 1,
            None => {
                garbage += 1;
                assert!(
                    GARBAGE.contains(&reply.mo.text.as_str()),
                    "{:?}",
                    reply.mo.text
                );
            }
        }
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    let promoters: u32 = seen[9..].iter().sum();
    let detractors: u32 = seen[..7].iter().sum();
    assert!(promoters > detractors / 2, "{seen:?}");
    assert!((300..700).contains(&garbage), "{garbage}");
    // After "not understood", a bare number on the scale the text names.
    let again = "Извините, не удалось распознать ответ. Ответьте, пожалуйста, числом от 0 до 10.";
    let retries: Vec<u8> = (0..2_000)
        .filter_map(|i| handsets.on_mt(&mt(&format!("998{i:09}"), again)))
        .map(|r| r.mo.text.parse().unwrap())
        .collect();
    assert!(retries.iter().all(|&n| n <= 10) && retries.iter().any(|&n| n > 5));
}

#[test]
fn a_one_to_seven_scale_gets_one_to_seven() {
    let mut handsets = Handsets::new(SubscribersConfig::default(), 5);
    let ask = "Насколько легко было решить вопрос? Ответьте от 1 до 7.";
    let scores: Vec<u8> = (0..3_000)
        .filter_map(|i| handsets.on_mt(&mt(&format!("998{i:09}"), ask)))
        .filter_map(|r| crate::flow::rating::parse_rating(&r.mo.text, 1, 7))
        .map(|r| r.score)
        .collect();
    for score in 1..=7 {
        assert!(scores.contains(&score), "{score} never: {scores:?}");
    }
}

#[test]
fn detractors_say_what_to_improve() {
    let mut handsets = Handsets::new(SubscribersConfig::default(), 3);
    let answers: Vec<String> = (0..1_000)
        .filter_map(|i| handsets.on_mt(&mt(&format!("998{i:09}"), NPS_FOLLOWUP)))
        .map(|r| r.mo.text)
        .collect();
    assert!((500..700).contains(&answers.len()), "{}", answers.len());
    for answer in &answers {
        assert!(
            !answer.is_empty() && !answer.starts_with(|c: char| c.is_ascii_digit()),
            "{answer:?}"
        );
    }
}

#[test]
fn classifies_escalations_in_latin_and_cyrillic_ok() {
    for text in [
        "Вызов: Палата 315, терапевтическое отделение. Ответьте OK, если идёте.",
        "Вызов: Палата 315. Ответьте ОК.",
        "Call: room 315. Reply OK to acknowledge.",
    ] {
        assert_eq!(classify(text), MtKind::Escalation, "{text}");
    }
    assert_eq!(classify("Вызов принят, спасибо."), MtKind::NoReply);
}

#[test]
fn staff_name_the_code_of_one_of_several_calls_and_often_of_one() {
    assert_eq!(
        reply_codes_named(
            &"У вас несколько вызовов: OK 100 — Палата 1; OK 101 — Палата 2. Ответьте OK и \
              номер вызова."
                .to_lowercase()
        ),
        [100, 101]
    );
    assert_eq!(
        reply_codes_named("вызов: палата 315. ответьте ok 102"),
        [102]
    );
    assert!(reply_codes_named("палата 315. ответьте ok").is_empty());
    let mut handsets = Handsets::new(SubscribersConfig::default(), 7);
    let list = "У вас несколько вызовов: OK 100 — Палата 1; OK 101 — Палата 2. Ответьте OK и \
                номер вызова.";
    let replies: Vec<String> = (0..200)
        .filter_map(|i| handsets.on_mt(&mt(&format!("99891{i:07}"), list)))
        .map(|r| r.mo.text)
        .collect();
    assert!(!replies.is_empty());
    assert!(replies.iter().all(|t| t.ends_with(" 100")), "{replies:?}");
    let single: Vec<String> = (0..200)
        .filter_map(|i| handsets.on_mt(&mt(&format!("99891{i:07}"), "Вызов. Ответьте OK 315")))
        .map(|r| r.mo.text)
        .collect();
    let coded = single.iter().filter(|t| t.ends_with(" 315")).count();
    assert!(coded > 0 && coded < single.len(), "{single:?}");
}

#[test]
fn staff_report_most_taken_calls_done() {
    let taken = "Вы приняли вызов 100: Палата 315. Когда закончите, ответьте ГОТОВО 100";
    assert_eq!(classify(taken), MtKind::ResolveRequest);
    assert_eq!(
        classify("Вызов 100 (Палата 315) ещё не закрыт. Ответьте ГОТОВО 100, когда закончите."),
        MtKind::ResolveRequest
    );
    assert_eq!(
        classify("Вызов 100 (Палата 315) закрыт. Спасибо!"),
        MtKind::NoReply
    );
    let mut handsets = Handsets::new(SubscribersConfig::default(), 3);
    let done = (0..1000)
        .filter_map(|i| handsets.on_mt(&mt(&format!("99891{i:07}"), taken)))
        .inspect(|reply| {
            // A done word, with the call's code or without.
            let word = reply.mo.text.trim_end_matches(" 100");
            assert!(STAFF_DONES.contains(&word), "{}", reply.mo.text)
        })
        .count();
    assert!((750..950).contains(&done), "{done}");
}

#[test]
fn the_same_seed_plans_the_same_replies() {
    let plan = |seed| {
        let mut handsets = Handsets::new(SubscribersConfig::default(), seed);
        (0..50)
            .map(|i| handsets.on_mt(&mt(&format!("99890{i:07}"), ASK)))
            .collect::<Vec<_>>()
    };
    assert_eq!(plan(7), plan(7));
    assert_ne!(plan(7), plan(8));
}

#[test]
fn survey_replies_follow_the_shares() {
    let mut handsets = Handsets::new(SubscribersConfig::default(), 42);
    let n = 10_000;
    let mut replies = 0;
    let mut fives = 0;
    let mut ones = 0;
    for i in 0..n {
        let Some(reply) = handsets.on_mt(&mt(&format!("998{i:09}"), ASK)) else {
            continue;
        };
        replies += 1;
        assert_eq!(reply.mo.destination, "5700");
        let delay = reply.after;
        assert!(delay >= Duration::from_millis(200) && delay <= Duration::from_secs(2));
        let text = reply.mo.text.trim_start();
        fives += usize::from(
            text.starts_with('5') || text.starts_with("пять") || text.starts_with("besh"),
        );
        ones += usize::from(text.starts_with("1 ") || text.starts_with("1."));
    }
    // About 80 % answer (70 % ratings, 10 % garbage); 5 is the most common score.
    assert!((7_500..8_500).contains(&replies), "{replies}");
    assert!(fives > 3 * ones, "fives {fives}, ones {ones}");
}

#[test]
fn staff_mostly_acknowledge_and_thanks_get_no_reply() {
    let mut handsets = Handsets::new(SubscribersConfig::default(), 3);
    let acks = (0..1000)
        .filter_map(|i| handsets.on_mt(&mt(&format!("99891{i:07}"), "Вызов. Ответьте OK.")))
        .inspect(|reply| assert!(STAFF_ACKS.contains(&reply.mo.text.as_str())))
        .count();
    assert!((700..900).contains(&acks), "{acks}");
    assert!(handsets.on_mt(&mt("998901234567", THANKS)).is_none());
}

#[test]
fn bare_forms_fill_every_placeholder() {
    let mut rng = SplitMix64::new(5);
    for scale in [DEFAULT_SCALE, scale(0, 10), scale(1, 7)] {
        for _ in 0..2_000 {
            let text = rating(&mut rng, scale);
            assert!(!text.contains('{'), "{text}");
            let parsed = crate::flow::rating::parse_rating(&text, scale.min, scale.max);
            assert!(parsed.is_some(), "{text:?} on {scale:?}");
        }
    }
}
