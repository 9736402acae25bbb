//! Schedules as written and validated: when a workflow starts by itself.
//!
//! A [`ScheduleDefinition`] is what a user sends (`POST /v1/schedules`, `weft schedule
//! create`): a five-field cron expression in a time zone, or a fixed interval (`every: 15m`),
//! with the workflow, its inputs and what to do about overlapping runs and missed fires.
//! [`When`] is the validated timing; it computes fire instants and knows nothing of runs or
//! the store ([`crate::engine`] fires schedules).
//!
//! Cron expressions are read by `croner` and evaluated in the schedule's IANA time zone with
//! `jiff` (the system's time zone database): a time that does not exist on the day clocks go
//! forward fires at the first instant after the gap, and a time that happens twice when
//! clocks go back fires once, at the first.

use crate::names::RunId;
use crate::workflow::{Problem, Problems};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;
use time::OffsetDateTime;

/// A schedule as written.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDefinition {
    /// Letters, digits, `-`, `_` and `.`; made from the workflow's id when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub workflow: String,
    /// Always this version; without it, the workflow's active version at each fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Five fields: minute hour day-of-month month day-of-week (`0 9 * * 1-5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA name (`Europe/Berlin`) the cron expression is read in; UTC by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A fixed interval instead of `cron` (`15m`, `1h`), counted from the schedule's creation.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub every: Option<Duration>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Map<String, Value>,
    #[serde(default)]
    pub overlap: Overlap,
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Created paused.
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub description: String,
}

/// What a fire does while the run of the previous fire has not finished.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The fire is skipped (counted in `skipped`).
    #[default]
    Skip,
    /// One fire waits, and starts its run when the previous run finishes.
    Queue,
    /// The fire starts its run anyway.
    Allow,
}

/// What happens to fires missed while no runner ran (more than [`GRACE`] late).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Missed fires are skipped; the schedule goes on from now.
    #[default]
    None,
    /// The latest missed fire starts one run; earlier ones are skipped.
    Latest,
}

/// How late a fire may be and still count as on time (not missed).
pub const GRACE: Duration = Duration::from_secs(60);

/// A schedule's timing, validated.
#[derive(Clone, Debug)]
pub enum When {
    Cron {
        cron: Box<croner::Cron>,
        zone: jiff::tz::TimeZone,
    },
    /// Every `interval` from `anchor`.
    Every {
        interval: Duration,
        anchor: OffsetDateTime,
    },
}

impl When {
    /// Reads the timing of `definition`; `anchor` is when an `every` schedule counts from.
    pub fn of(
        definition: &ScheduleDefinition,
        anchor: OffsetDateTime,
        min_interval: Duration,
    ) -> Result<When, Problems> {
        let mut problems = Vec::new();
        let mut problem = |path: &str, message: String| {
            problems.push(Problem {
                path: path.into(),
                message,
            })
        };
        let zone = match &definition.timezone {
            None => Some(jiff::tz::TimeZone::UTC),
            Some(name) => jiff::tz::TimeZone::get(name)
                .map_err(|e| {
                    problem(
                        "timezone",
                        format!("unknown time zone {name:?} ({e}); use an IANA name such as Europe/Berlin"),
                    )
                })
                .ok(),
        };
        let when = match (&definition.cron, definition.every) {
            (Some(cron), None) => croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .build()
                .parse(cron)
                .map_err(|e| {
                    problem(
                        "cron",
                        format!(
                            "{:?} is not a cron expression ({e}); use five fields: minute hour day-of-month month day-of-week, as in \"0 9 * * 1-5\"",
                            crate::limits::clip_to(cron, 200)
                        ),
                    )
                })
                .ok()
                .zip(zone)
                .map(|(cron, zone)| When::Cron {
                    cron: Box::new(cron),
                    zone,
                }),
            (None, Some(interval)) => {
                if interval < min_interval {
                    problem(
                        "every",
                        format!(
                            "must be at least {} (limits.schedule_min_interval)",
                            humantime::format_duration(min_interval)
                        ),
                    );
                }
                if definition.timezone.is_some() {
                    problem("timezone", "only a cron schedule has a time zone".into());
                }
                Some(When::Every { interval, anchor })
            }
            (Some(_), Some(_)) => {
                problem("every", "a schedule has either `cron` or `every`, not both".into());
                None
            }
            (None, None) => {
                problem(
                    "cron",
                    "a schedule needs `cron` (with an optional `timezone`) or `every` (such as 15m)".into(),
                );
                None
            }
        };
        match when {
            Some(when) if problems.is_empty() => Ok(when),
            _ => Err(Problems(problems)),
        }
    }

    /// The first fire strictly after `after`, if there is one.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            When::Cron { cron, zone } => {
                let start = jiff::Timestamp::from_nanosecond(after.unix_timestamp_nanos())
                    .ok()?
                    .to_zoned(zone.clone());
                let next = cron.find_next_occurrence(&start, false).ok()?;
                OffsetDateTime::from_unix_timestamp_nanos(next.timestamp().as_nanosecond()).ok()
            }
            When::Every { interval, anchor } => {
                let step = interval.as_nanos() as i128;
                if step == 0 {
                    return None;
                }
                let since = (after - *anchor).whole_nanoseconds();
                let n = if since < 0 { 0 } else { since / step + 1 };
                Some(*anchor + time::Duration::nanoseconds_i128(n * step))
            }
        }
    }

    /// The latest fire at or before `now`, counting from `first` (a fire): what a schedule
    /// that was due at `first` fires for now. None if `first` is after `now`.
    pub fn latest_until(&self, first: OffsetDateTime, now: OffsetDateTime) -> Option<OffsetDateTime> {
        if first > now {
            return None;
        }
        if let When::Every { interval, anchor } = self {
            let step = interval.as_nanos() as i128;
            let n = (now - *anchor).whole_nanoseconds() / step;
            return Some(*anchor + time::Duration::nanoseconds_i128(n * step)).filter(|at| *at >= first);
        }
        // A cron fires at most once a minute: step forward from `first`, bounded.
        let mut latest = first;
        for _ in 0..MAX_MISSED_STEPS {
            match self.next_after(latest) {
                Some(next) if next <= now => latest = next,
                _ => return Some(latest),
            }
        }
        Some(latest)
    }
}

/// Most fires stepped over when finding the latest missed one of a cron schedule (about a
/// week of a once-a-minute schedule); beyond it the one reached counts as the latest.
const MAX_MISSED_STEPS: usize = 10_000;

/// A schedule as stored: its definition and where it is.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleRecord {
    pub definition: ScheduleDefinition,
    pub id: String,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub paused: bool,
    /// The next instant it fires for; none while paused or when it never fires again.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_fire: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_fire: Option<OffsetDateTime>,
    /// The run the last fire started.
    #[serde(default)]
    pub last_run: Option<RunId>,
    /// A fire waits for the last run to finish (`overlap: queue`).
    #[serde(default)]
    pub queued: bool,
    /// Runs started, and fires skipped (overlap or missed), so far.
    #[serde(default)]
    pub fired: u64,
    #[serde(default)]
    pub skipped: u64,
}

/// A schedule with its next fire times.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    #[serde(flatten)]
    pub record: ScheduleRecord,
    /// The next few instants it fires for (none while paused).
    #[schema(value_type = Vec<String>, format = DateTime)]
    pub next_fires: Vec<String>,
}

/// Next fire times a schedule's view lists.
const NEXT_FIRES: usize = 5;

impl ScheduleRecord {
    /// Its timing (it was valid when stored).
    pub fn when(&self) -> Result<When, Problems> {
        When::of(&self.definition, self.created_at, Duration::ZERO)
    }

    /// The schedule as the CLI shows it: [`ScheduleRecord::shown`] as JSON.
    pub fn view(&self) -> Value {
        serde_json::to_value(self.shown()).unwrap_or_default()
    }

    /// The schedule as the API shows it: the record and its next fire times.
    pub fn shown(&self) -> ScheduleView {
        let mut next = Vec::new();
        if let (Ok(when), Some(mut at)) = (self.when(), self.next_fire) {
            next.push(at);
            while next.len() < NEXT_FIRES {
                let Some(n) = when.next_after(at) else { break };
                next.push(n);
                at = n;
            }
        }
        ScheduleView {
            record: self.clone(),
            next_fires: next.into_iter().map(crate::run::rfc3339).collect(),
        }
    }

    /// One line for `weft schedule list`.
    pub fn line(&self) -> String {
        let timing = match (&self.definition.cron, self.definition.every) {
            (Some(cron), _) => format!(
                "cron {cron:?} {}",
                self.definition.timezone.as_deref().unwrap_or("UTC")
            ),
            (None, Some(every)) => format!("every {}", humantime::format_duration(every)),
            _ => String::new(),
        };
        let next = match (self.paused, self.next_fire) {
            (true, _) => "paused".to_owned(),
            (false, Some(at)) => format!("next {}", crate::run::rfc3339(at)),
            (false, None) => "no next fire".to_owned(),
        };
        format!(
            "{}  {}  {timing}  {next}  fired {} skipped {}",
            self.id, self.definition.workflow, self.fired, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cron(expr: &str, zone: &str) -> When {
        let definition: ScheduleDefinition = serde_json::from_value(serde_json::json!({
            "workflow": "w", "cron": expr, "timezone": zone
        }))
        .expect("a definition");
        When::of(&definition, OffsetDateTime::UNIX_EPOCH, Duration::from_secs(1)).expect("valid")
    }

    fn fires(when: &When, mut after: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        (0..n)
            .map(|_| {
                after = when.next_after(after).expect("a next fire");
                after
            })
            .collect()
    }

    #[test]
    fn a_weekday_cron_fires_at_nine_in_berlin_across_the_spring_change() {
        // Clocks in Berlin go from 02:00 to 03:00 on Sunday 2027-03-28: 09:00 is 08:00 UTC
        // before and 07:00 UTC after.
        let when = cron("0 9 * * 1-5", "Europe/Berlin");
        let got = fires(&when, datetime!(2027-03-25 12:00 UTC), 3);
        assert_eq!(
            got,
            vec![
                datetime!(2027-03-26 08:00 UTC),
                datetime!(2027-03-29 07:00 UTC),
                datetime!(2027-03-30 07:00 UTC),
            ]
        );
    }

    #[test]
    fn a_time_in_the_gap_fires_after_it_and_a_repeated_time_fires_once() {
        let when = cron("30 2 * * *", "Europe/Berlin");
        // 02:30 does not exist on 2027-03-28: the fire is the first instant after the gap.
        let spring = fires(&when, datetime!(2027-03-27 12:00 UTC), 2);
        assert_eq!(
            spring,
            vec![datetime!(2027-03-28 01:00 UTC), datetime!(2027-03-29 00:30 UTC)]
        );
        // 02:30 happens twice on 2026-10-25 (CEST, then CET): one fire, the first.
        let autumn = fires(&when, datetime!(2026-10-24 12:00 UTC), 2);
        assert_eq!(
            autumn,
            vec![datetime!(2026-10-25 00:30 UTC), datetime!(2026-10-26 01:30 UTC)]
        );
    }

    #[test]
    fn every_counts_from_its_anchor_and_finds_the_latest_missed_fire() {
        let anchor = datetime!(2026-12-01 00:00 UTC);
        let when = When::Every {
            interval: Duration::from_secs(900),
            anchor,
        };
        assert_eq!(when.next_after(anchor), Some(datetime!(2026-12-01 00:15 UTC)));
        assert_eq!(
            when.next_after(datetime!(2026-12-01 00:20 UTC)),
            Some(datetime!(2026-12-01 00:30 UTC))
        );
        assert_eq!(
            when.latest_until(datetime!(2026-12-01 00:15 UTC), datetime!(2026-12-01 02:07 UTC)),
            Some(datetime!(2026-12-01 02:00 UTC))
        );
        let daily = cron("0 6 * * *", "UTC");
        assert_eq!(
            daily.latest_until(datetime!(2026-12-01 06:00 UTC), datetime!(2026-12-04 07:00 UTC)),
            Some(datetime!(2026-12-04 06:00 UTC))
        );
    }

    #[test]
    fn bad_timings_are_refused_with_their_field() {
        let bad = |v: Value| {
            let d: ScheduleDefinition = serde_json::from_value(v).expect("a definition");
            When::of(&d, OffsetDateTime::UNIX_EPOCH, Duration::from_secs(1))
                .expect_err("refused")
                .to_string()
        };
        assert!(bad(serde_json::json!({"workflow": "w", "cron": "61 * * * *"})).starts_with("cron: "));
        assert!(
            bad(serde_json::json!({"workflow": "w", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}))
                .starts_with("timezone: unknown time zone")
        );
        assert!(bad(serde_json::json!({"workflow": "w", "every": "10ms"}))
            .contains("limits.schedule_min_interval"));
        assert!(bad(serde_json::json!({"workflow": "w"})).contains("needs `cron`"));
        assert!(
            bad(serde_json::json!({"workflow": "w", "cron": "* * * * *", "every": "1m"}))
                .contains("not both")
        );
    }
}
