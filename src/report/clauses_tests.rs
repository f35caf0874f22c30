use super::*;

/// What a comment's clauses come to: the lemmas of its problems, then of its praise.
fn split_of(score: u8, comment: &str) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut praise = Vec::new();
    for c in clauses(score, comment) {
        match c.side {
            Side::Problem => problems.push(c.lemma),
            Side::Praise => praise.push(c.lemma),
        }
    }
    (problems, praise)
}

#[test]
fn the_seed_example_is_praise_and_a_problem() {
    let c = clauses(4, "Оператор был вежлив, но долго пришлось ждать на линии.");
    let sides: Vec<(Side, &str, &str)> = c
        .iter()
        .map(|c| (c.side, c.lemma.as_str(), c.phrase.as_str()))
        .collect();
    assert_eq!(
        sides,
        [
            (Side::Praise, "вежливо", "вежлив"),
            (Side::Problem, "долго ждать", "долго ждать на линии"),
        ]
    );
}

/// Real-looking comments (Russian, Uzbek in both scripts, English, mixed; negated) with the
/// problems and praise they must give, as lemmas. A line here is also the way to add a word
/// to the lexicons: write the comment first.
const TABLE: &[(u8, &str, &[&str], &[&str])] = &[
    // Russian
    (
        1,
        "Не дозвонился, ждал 40 минут",
        &["не дозвониться", "ждать"],
        &[],
    ),
    (1, "Очень долго ждал ответа", &["долго ждать"], &[]),
    (2, "Оператор нагрубил и бросил трубку", &["грубо"], &[]),
    (
        1,
        "Так и не решили мою проблему",
        &["не решили проблема"],
        &[],
    ),
    (5, "Всё отлично, спасибо!", &[], &["отлично", "спасибо"]),
    (5, "Быстро и вежливо", &[], &["быстро вежливо"]),
    (
        4,
        "Хорошо, но связь прерывалась",
        &["сбросили"],
        &["хорошо"],
    ),
    (3, "Нормально, но долго", &["долго"], &[]),
    (
        3,
        "Вежливо, но ничем не помогли",
        &["не помогли"],
        &["вежливо"],
    ),
    (2, "Не очень вежливый оператор", &["не вежливо"], &[]),
    (4, "Не пришлось долго ждать", &[], &["не долго"]),
    (
        5,
        "Никаких проблем, всё быстро решили",
        &[],
        &["никаких проблема", "быстро решили"],
    ),
    (1, "Ужасное обслуживание", &["ужасно"], &[]),
    (
        2,
        "Перевели на другого оператора три раза",
        &["перевели"],
        &[],
    ),
    (
        5,
        "Девушка была очень приятная и всё понятно объяснила",
        &[],
        &["приятно понятно"],
    ),
    (1, "Никто не ответил", &["никто не ответили"], &[]),
    (5, "Спасибо Анне за помощь", &[], &["спасибо помогли"]),
    (
        2,
        "Хамство и некомпетентность",
        &["грубо некомпетентно"],
        &[],
    ),
    (
        4,
        "Недолго ждал, оператор вежливый",
        &[],
        &["недолго", "вежливо"],
    ),
    (
        1,
        "Обещали перезвонить и не перезвонили",
        &["не перезвонили"],
        &[],
    ),
    (5, "Молодцы!", &[], &["молодцы"]),
    (3, "Ответили не сразу", &["не быстро"], &[]),
    (
        2,
        "Неприятный разговор, оператор невнимательный",
        &["неприятно", "игнорируют"],
        &[],
    ),
    (
        1,
        "Ждём уже второй день, курьер так и не приехал",
        &["ждать", "не приехали"],
        &[],
    ),
    (
        5,
        "Оператор профессионал, решил вопрос за 2 минуты",
        &[],
        &["профессионально", "решили"],
    ),
    // Uzbek, Latin
    (2, "Xizmat yaxshi emas", &["yaxshi emas"], &[]),
    (1, "Juda uzoq kutdim", &["uzoq kutish"], &[]),
    (
        5,
        "Rahmat, operator juda xushmuomala",
        &[],
        &["rahmat", "xushmuomala"],
    ),
    (4, "Yaxshi, lekin sekin", &["sekin"], &["yaxshi"]),
    (2, "Javob bermadi", &["javob bermadi"], &[]),
    (1, "Operator qo'pol gapirdi", &["qoʻpol"], &[]),
    (5, "Zo'r xizmat, tez javob berishdi", &[], &["zoʻr", "tez"]),
    (4, "Yomon emas", &[], &["yomon emas"]),
    (2, "Xizmatdan qoniqmadim", &["qoniqmadim"], &[]),
    (1, "Hech kim kelmadi", &["kelmadi"], &[]),
    (5, "Juda yaxshi, rahmat", &[], &["yaxshi", "rahmat"]),
    (
        3,
        "Operator yordam berdi, ammo uzoq kutdim",
        &["uzoq kutish"],
        &["yordam"],
    ),
    (2, "Yordam bermadi", &["yordam bermadi"], &[]),
    // Uzbek, Cyrillic
    (1, "Жуда ёмон хизмат", &["yomon"], &[]),
    (5, "Раҳмат, жуда яхши", &[], &["rahmat", "yaxshi"]),
    (
        2,
        "Узоқ кутдим, лекин жавоб йўқ",
        &["uzoq kutish", "javob йўқ"],
        &[],
    ),
    (4, "Тез ва яхши", &[], &["tez yaxshi"]),
    (2, "Яхши эмас", &["yaxshi эмас"], &[]),
    (5, "Хизматдан мамнунман", &[], &["mamnun"]),
    // English
    (5, "The operator was not rude at all", &[], &["not rude"]),
    (1, "Waited on hold for an hour", &["wait on hold"], &[]),
    (2, "Nobody answered my call", &["ignored"], &[]),
    (1, "They didn't help", &["not helpful"], &[]),
    (
        5,
        "Very helpful and polite, thanks",
        &[],
        &["helpful polite", "thanks"],
    ),
    (4, "Good service but a long wait", &["long wait"], &["good"]),
    (
        3,
        "Friendly staff, however the line dropped twice",
        &["hung up"],
        &["friendly"],
    ),
    (2, "Could not get through", &["not got through"], &[]),
    (5, "Problem solved quickly", &[], &["solved fast"]),
    (1, "Terrible, worst service ever", &["bad", "bad"], &[]),
    (4, "No problems, quick answer", &[], &["no problem", "fast"]),
    (
        2,
        "The agent was slow and confused",
        &["slow confusing"],
        &[],
    ),
    (5, "Excellent!", &[], &["great"]),
    (
        1,
        "Called three times, no answer",
        &["called three times", "no answer"],
        &[],
    ),
    // Mixed and with no lexicon word: the score decides.
    (
        5,
        "Спасибо, rahmat, thanks",
        &[],
        &["спасибо", "rahmat", "thanks"],
    ),
    (1, "Связь", &["связь"], &[]),
    (5, "Анна", &[], &["анна"]),
    (3, "Оператор Анна", &[], &[]),
    (4, "Всё хорошо, но курьер", &["курьер"], &["хорошо"]),
    (1, "🤬🤬🤬", &[], &[]),
    // Wishes: what is wished for is missing.
    (
        4,
        "Хорошо, но можно быстрее",
        &["можно быстро"],
        &["хорошо"],
    ),
    (4, "Good, but could be faster", &["could fast"], &["good"]),
];

#[test]
fn the_table_splits_as_expected() {
    assert!(TABLE.len() >= 60, "{} comments", TABLE.len());
    let mut wrong = Vec::new();
    for &(score, comment, problems, praise) in TABLE {
        let (p, q) = split_of(score, comment);
        if p != problems || q != praise {
            wrong.push(format!(
                "{score} {comment:?}: problems {p:?} praise {q:?} (expected {problems:?} {praise:?})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn phrases_are_readable() {
    let phrase = |score, text| {
        clauses(score, text)
            .into_iter()
            .map(|c| c.phrase)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        phrase(1, "Не дозвонился, ждал 40 минут"),
        ["не дозвонился", "ждал 40 минут"]
    );
    assert_eq!(
        phrase(4, "Не пришлось долго ждать"),
        ["не пришлось долго ждать"]
    );
    assert_eq!(phrase(5, "The operator was not rude at all"), ["not rude"]);
    assert_eq!(phrase(2, "Xizmat yaxshi emas"), ["xizmat yaxshi emas"]);
    assert_eq!(phrase(1, "Связь плохая"), ["связь плохая"]);
}

fn rating(at: i64, score: u8, comment: &str) -> Rating {
    Rating {
        conversation: at as u64,
        flow: "survey".into(),
        at,
        msisdn: "998901234567".into(),
        score,
        operator: "op-1".into(),
        channel: "call".into(),
        comment: comment.into(),
    }
}

#[test]
fn findings_group_wordings_count_comments_and_quote_examples() {
    let ratings = [
        rating(6, 2, "Долго ждал. Очень долго ждал!"),
        rating(5, 4, "Вежливо, но ждать пришлось долго"),
        rating(4, 1, "долго ждал"),
        rating(3, 5, "вежливый оператор"),
        rating(
            2,
            3,
            "Оператор был вежлив, но долго пришлось ждать на линии.",
        ),
        rating(1, 5, ""),
    ];
    let refs: Vec<&Rating> = ratings.iter().collect();
    let f = findings(&refs, 10, 2, |c| c.to_owned());
    let first = &f.problems[0];
    assert_eq!(
        (first.term.as_str(), first.lemma.as_str(), first.count),
        ("долго ждал", "долго ждать", 4),
        "{f:?}"
    );
    // Of the five comments with text.
    assert_eq!(first.share, 80.0);
    assert_eq!(
        first.examples,
        [
            "Долго ждал. Очень долго ждал!",
            "Вежливо, но ждать пришлось долго"
        ]
    );
    assert_eq!(f.praise[0].lemma, "вежливо");
    assert_eq!(f.praise[0].count, 3);
    assert_eq!(f.problems.len(), 1);
}
