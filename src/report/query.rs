//! What a report covers: the dates (inclusive, in the service's time zone), the grouping, and
//! the calendar arithmetic on periods (day, ISO week, month). Parsing here is the one place
//! the CLI's `--from/--to/--by` and the HTTP `?from=&to=&by=` are checked, so both give the
//! same messages.

use std::collections::BTreeSet;

use jiff::ToSpan;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::store::Millis;

/// Days a report covers when `--from` is not given: the last 30 days up to `--to`.
pub const DEFAULT_DAYS: i64 = 30;

/// The longest range accepted (about ten years): more is surely a typo in a year.
pub const MAX_DAYS: i64 = 3660;

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Csi,
    Incidents,
    /// The service quality audit of restaurants and shops (complaints, manager calls).
    Audit,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Csi => "csi",
            Kind::Incidents => "incidents",
            Kind::Audit => "audit",
        }
    }

    /// The groupings this report accepts, in the order help texts list them.
    pub fn groupings(self) -> &'static [Grouping] {
        use Grouping::*;
        match self {
            Kind::Csi => &[Day, Week, Month, Operator, Channel],
            Kind::Incidents | Kind::Audit => &[Day, Week, Month, Location, Button],
        }
    }

    /// The grouping when none is asked for.
    pub fn default_grouping(self) -> Grouping {
        match self {
            Kind::Csi => Grouping::Operator,
            Kind::Incidents | Kind::Audit => Grouping::Location,
        }
    }
}

/// What the rows of a report are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Day,
    Week,
    Month,
    /// CSI: the survey event's `operator`.
    Operator,
    /// CSI: the survey event's `channel` (call, chat, ticket, order).
    Channel,
    /// Incidents: the button's `location`.
    Location,
    /// Incidents: the button's name.
    Button,
}

impl Grouping {
    pub fn name(self) -> &'static str {
        match self {
            Grouping::Day => "day",
            Grouping::Week => "week",
            Grouping::Month => "month",
            Grouping::Operator => "operator",
            Grouping::Channel => "channel",
            Grouping::Location => "location",
            Grouping::Button => "button",
        }
    }

    /// The calendar period of a time grouping.
    pub fn period(self) -> Option<Period> {
        match self {
            Grouping::Day => Some(Period::Day),
            Grouping::Week => Some(Period::Week),
            Grouping::Month => Some(Period::Month),
            _ => None,
        }
    }
}

/// A calendar period in the service's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    /// ISO 8601 week, Monday to Sunday.
    Week,
    Month,
}

impl Period {
    /// The first day of the period containing `date`.
    pub fn start(self, date: Date) -> Date {
        match self {
            Period::Day => date,
            Period::Week => {
                let back = i64::from(date.weekday().to_monday_zero_offset());
                date.checked_sub(back.days()).unwrap_or(date)
            }
            Period::Month => date.first_of_month(),
        }
    }

    /// The first day of the period after the one containing `date`.
    pub fn next(self, date: Date) -> Date {
        let start = self.start(date);
        let step = match self {
            Period::Day => 1.day(),
            Period::Week => 1.week(),
            Period::Month => 1.month(),
        };
        start.checked_add(step).unwrap_or(Date::MAX)
    }

    /// The first day of the period before the one containing `date`.
    pub fn previous(self, date: Date) -> Date {
        let start = self.start(date);
        let step = match self {
            Period::Day => 1.day(),
            Period::Week => 1.week(),
            Period::Month => 1.month(),
        };
        start.checked_sub(step).unwrap_or(Date::MIN)
    }

    /// The period's name in reports: `2026-11-21`, `2026-W47`, `2026-11`.
    pub fn key(self, date: Date) -> String {
        match self {
            Period::Day => date.to_string(),
            Period::Week => {
                let week = date.iso_week_date();
                format!("{:04}-W{:02}", week.year(), week.week())
            }
            Period::Month => format!("{:04}-{:02}", date.year(), date.month()),
        }
    }

    /// The periods that overlap `from..=to`, as (key, first day).
    pub fn each(self, from: Date, to: Date) -> Vec<(String, Date)> {
        let mut out = Vec::new();
        let mut day = self.start(from);
        while day <= to {
            out.push((self.key(day), day));
            let next = self.next(day);
            if next <= day {
                break;
            }
            day = next;
        }
        out
    }

    /// A period fine enough for a trend line over `days` days.
    pub fn for_trend(days: i64) -> Period {
        match days {
            ..=92 => Period::Day,
            93..=730 => Period::Week,
            _ => Period::Month,
        }
    }
}

/// A checked report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub kind: Kind,
    /// First day, inclusive.
    pub from: Date,
    /// Last day, inclusive.
    pub to: Date,
    pub by: Grouping,
    /// The survey flow a CSI report is about (default [`SURVEY_FLOW`]; the incident report
    /// ignores it).
    pub flow: String,
}

/// The flow whose conversations are surveys when a report names none.
pub const SURVEY_FLOW: &str = "survey";

/// Why a report request is not usable; the CLI exits 2 with it, HTTP answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("{field} {value:?} is not a date (use YYYY-MM-DD, e.g. 2026-11-01)")]
    BadDate { field: &'static str, value: String },
    #[error("from {from} is after to {to}")]
    Reversed { from: Date, to: Date },
    #[error("the range {from}..{to} is {days} days; at most {MAX_DAYS} are allowed")]
    TooLong { from: Date, to: Date, days: i64 },
    #[error("{value:?} is not a grouping of the {kind} report (use one of: {allowed})")]
    BadGrouping {
        kind: &'static str,
        value: String,
        allowed: String,
    },
    #[error("unknown parameter {name:?} (the report takes from, to, by and flow)")]
    UnknownParameter { name: String },
    #[error("flow {0:?} is not a flow name (letters, digits, - and _)")]
    BadFlow(String),
    /// A flow that neither runs nor ran: a mistyped name gets this, not an empty report.
    #[error("flow {flow:?} is not loaded and has no conversations (flows: {known})")]
    UnknownFlow { flow: String, known: String },
}

impl Query {
    /// Checks the raw `from`, `to` and `by` of a request; `today` (in the service's zone) is
    /// the default `to`, and `from` defaults to [`DEFAULT_DAYS`] − 1 days before `to`.
    pub fn parse(
        kind: Kind,
        from: Option<&str>,
        to: Option<&str>,
        by: Option<&str>,
        today: Date,
    ) -> Result<Query, QueryError> {
        let date = |field: &'static str, value: &str| {
            value
                .trim()
                .parse::<Date>()
                .map_err(|_| QueryError::BadDate {
                    field,
                    value: value.to_owned(),
                })
        };
        let to = match to.filter(|s| !s.is_empty()) {
            Some(s) => date("to", s)?,
            None => today,
        };
        let from = match from.filter(|s| !s.is_empty()) {
            Some(s) => date("from", s)?,
            None => to
                .checked_sub((DEFAULT_DAYS - 1).days())
                .unwrap_or(Date::MIN),
        };
        if from > to {
            return Err(QueryError::Reversed { from, to });
        }
        let days = days_between(from, to) + 1;
        if days > MAX_DAYS {
            return Err(QueryError::TooLong { from, to, days });
        }
        let by = match by.filter(|s| !s.is_empty()) {
            None => kind.default_grouping(),
            Some(value) => {
                let wanted = value.trim().to_ascii_lowercase();
                kind.groupings()
                    .iter()
                    .copied()
                    .find(|g| g.name() == wanted)
                    .ok_or_else(|| QueryError::BadGrouping {
                        kind: kind.name(),
                        value: value.to_owned(),
                        allowed: kind
                            .groupings()
                            .iter()
                            .map(|g| g.name())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?
            }
        };
        Ok(Query {
            kind,
            from,
            to,
            by,
            flow: SURVEY_FLOW.to_owned(),
        })
    }

    /// This query about survey flow `flow` (empty: the default).
    pub fn for_flow(mut self, flow: Option<&str>) -> Result<Query, QueryError> {
        let Some(flow) = flow.map(str::trim).filter(|f| !f.is_empty()) else {
            return Ok(self);
        };
        if !flow
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(QueryError::BadFlow(flow.to_owned()));
        }
        self.flow = flow.to_owned();
        Ok(self)
    }

    /// Parses HTTP query pairs; an unknown name is an error rather than silently ignored.
    pub fn from_pairs(
        kind: Kind,
        pairs: &[(String, String)],
        today: Date,
    ) -> Result<Query, QueryError> {
        let (mut from, mut to, mut by, mut flow) = (None, None, None, None);
        for (name, value) in pairs {
            match name.as_str() {
                "from" => from = Some(value.as_str()),
                "to" => to = Some(value.as_str()),
                "by" => by = Some(value.as_str()),
                "flow" => flow = Some(value.as_str()),
                other => {
                    return Err(QueryError::UnknownParameter {
                        name: other.to_owned(),
                    });
                }
            }
        }
        Query::parse(kind, from, to, by, today)?.for_flow(flow)
    }

    /// A CSI report is about a flow that runs or ran (`known`: the flows loaded or with
    /// conversations); [`SURVEY_FLOW`], the default, always passes, so a report on day one is
    /// empty rather than an error. The incident report has no flow to check.
    pub fn check_flow(&self, known: &BTreeSet<String>) -> Result<(), QueryError> {
        if self.kind != Kind::Csi || self.flow == SURVEY_FLOW || known.contains(&self.flow) {
            return Ok(());
        }
        Err(unknown_flow(&self.flow, known))
    }

    /// Days in the range, both ends included.
    pub fn days(&self) -> i64 {
        days_between(self.from, self.to) + 1
    }

    /// The range of the same length just before this one.
    pub fn previous_range(&self) -> (Date, Date) {
        let days = self.days();
        let to = self.from.checked_sub(1.day()).unwrap_or(Date::MIN);
        let from = self.from.checked_sub(days.days()).unwrap_or(Date::MIN);
        (from, to)
    }
}

/// The error for `flow` when only `known` exist (unsolicited MOs, stored under the empty flow
/// name, are none to ask for).
pub fn unknown_flow(flow: &str, known: &BTreeSet<String>) -> QueryError {
    let names: Vec<&str> = (known.iter().map(String::as_str))
        .filter(|n| !n.is_empty())
        .collect();
    QueryError::UnknownFlow {
        flow: flow.to_owned(),
        known: if names.is_empty() {
            "none yet".to_owned()
        } else {
            names.join(", ")
        },
    }
}

/// Whole days from `a` to `b` (negative when `b` is earlier).
pub fn days_between(a: Date, b: Date) -> i64 {
    a.until(b)
        .map(|span| i64::from(span.get_days()))
        .unwrap_or(0)
}

/// The local date of `at` in `zone`.
pub fn local_date(zone: &TimeZone, at: Millis) -> Date {
    match jiff::Timestamp::from_millisecond(at) {
        Ok(ts) => zone.to_datetime(ts).date(),
        Err(_) if at < 0 => Date::MIN,
        Err(_) => Date::MAX,
    }
}

/// The instant `date` begins in `zone` (its first valid local time, should midnight fall in a
/// DST gap), in ms.
pub fn day_start(zone: &TimeZone, date: Date) -> Millis {
    match date.to_zoned(zone.clone()) {
        Ok(z) => z.timestamp().as_millisecond(),
        Err(_) if date <= Date::new(1970, 1, 1).unwrap_or(Date::MIN) => i64::MIN,
        Err(_) => i64::MAX,
    }
}

/// `[start, end)` in ms of the days `from..=to` in `zone`.
pub fn range_ms(zone: &TimeZone, from: Date, to: Date) -> (Millis, Millis) {
    let end = match to.checked_add(1.day()) {
        Ok(next) => day_start(zone, next),
        Err(_) => i64::MAX,
    };
    (day_start(zone, from), end)
}

/// Today in `zone` at `now` (ms).
pub fn today(zone: &TimeZone, now: Millis) -> Date {
    local_date(zone, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const TODAY: Date = date(2026, 11, 22);

    #[test]
    fn defaults_are_the_last_30_days() {
        let q = Query::parse(Kind::Csi, None, None, None, TODAY).unwrap();
        assert_eq!((q.from, q.to), (date(2026, 10, 24), TODAY));
        assert_eq!(q.days(), 30);
        assert_eq!(q.by, Grouping::Operator);
        assert_eq!(q.previous_range(), (date(2026, 9, 24), date(2026, 10, 23)));
    }

    #[test]
    fn bad_input_names_the_problem() {
        let e = Query::parse(Kind::Csi, Some("2026-13-01"), None, None, TODAY).unwrap_err();
        assert_eq!(
            e.to_string(),
            "from \"2026-13-01\" is not a date (use YYYY-MM-DD, e.g. 2026-11-01)"
        );
        let e = Query::parse(Kind::Csi, None, None, Some("location"), TODAY).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"location\" is not a grouping of the csi report (use one of: day, week, month, \
             operator, channel)"
        );
        let e = Query::parse(Kind::Incidents, None, None, Some("operator"), TODAY).unwrap_err();
        assert!(e.to_string().contains("location, button"), "{e}");
        let e = Query::parse(
            Kind::Csi,
            Some("2026-11-05"),
            Some("2026-11-01"),
            None,
            TODAY,
        );
        assert!(matches!(e, Err(QueryError::Reversed { .. })));
        let pairs = [("form".to_owned(), "2026-11-01".to_owned())];
        let e = Query::from_pairs(Kind::Csi, &pairs, TODAY).unwrap_err();
        assert!(matches!(e, QueryError::UnknownParameter { .. }));
    }

    #[test]
    fn periods_in_the_calendar() {
        let d = date(2026, 11, 21); // a Saturday
        assert_eq!(Period::Week.start(d), date(2026, 11, 16));
        assert_eq!(Period::Week.key(d), "2026-W47");
        assert_eq!(Period::Week.previous(d), date(2026, 11, 9));
        assert_eq!(Period::Month.key(d), "2026-11");
        assert_eq!(Period::Month.previous(d), date(2026, 10, 1));
        assert_eq!(Period::Day.key(d), "2026-11-21");
        // ISO week-years: 2027-01-01 is a Friday of week 53 of 2026.
        assert_eq!(Period::Week.key(date(2027, 1, 1)), "2026-W53");
        let weeks = Period::Week.each(date(2026, 11, 1), date(2026, 11, 22));
        let keys: Vec<_> = weeks.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["2026-W44", "2026-W45", "2026-W46", "2026-W47"]);
    }

    #[test]
    fn days_begin_at_local_midnight() {
        let tashkent = TimeZone::get("Asia/Tashkent").unwrap();
        let (start, end) = range_ms(&tashkent, date(2026, 11, 1), date(2026, 11, 1));
        // 2026-11-01T00:00+05:00
        assert_eq!(start, 1_793_473_200_000);
        assert_eq!(end - start, 86_400_000);
        assert_eq!(local_date(&tashkent, start), date(2026, 11, 1));
        assert_eq!(local_date(&tashkent, start - 1), date(2026, 10, 31));
    }
}
