//! Random identifiers (UUID v4) and timestamps in the two forms the API writes.
//!
//! UUIDs come from the `uuid` crate, calendar arithmetic and timestamp parsing from `time`:
//! only valid dates and times are accepted (no 2026-02-31, no hour 25), since they feed purge
//! cutoffs. Owns no I/O besides reading the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// A fresh random UUID v4, lower-case hyphenated, as the API writes ids.
pub fn uuid_v4() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// The API's form: `2026-11-23T03:25:53.112Z`.
const API_FORM: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// A file-name stamp: `20261123T032553Z`.
const FILE_FORM: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// What the files hold: the API's form (fraction and `Z` optional) or SQL's
/// `CURRENT_TIMESTAMP` form `2026-11-23 03:25:53`.
const READ_FORM: &[BorrowedFormatItem<'static>] = format_description!(
    version = 2,
    "[year]-[month]-[day][first [T][ ]][hour]:[minute]:[second][optional [.[subsecond]]][optional [Z]]"
);

fn utc(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// Now as the API writes it: `2026-11-23T03:25:53.112Z`.
pub fn now_iso() -> String {
    iso_from(SystemTime::now())
}

pub fn iso_from(t: SystemTime) -> String {
    utc(t)
        .format(API_FORM)
        .expect("a UTC time formats in the API's form")
}

/// A stored time as monkctl prints it: SQLite's `datetime('now')` form (`2026-11-23 03:25:53`,
/// which the column defaults write) in the API's form (`2026-11-23T03:25:53.000Z`); any other
/// text as it is (the API's form already, or something this does not judge).
pub fn iso_shown(s: &str) -> std::borrow::Cow<'_, str> {
    let sql_form = s.len() == 19 && s.as_bytes().get(10) == Some(&b' ');
    match sql_form.then(|| parse_timestamp_ms(s)).flatten() {
        Some(ms) => {
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
            std::borrow::Cow::Owned(iso_from(t))
        }
        None => std::borrow::Cow::Borrowed(s),
    }
}

/// `serialize_with` for a stored time (see `iso_shown`).
pub fn serialize_iso<S: serde::Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(&iso_shown(s))
}

/// `serialize_with` for a stored time that may be absent (see `iso_shown`).
pub fn serialize_opt_iso<S: serde::Serializer>(
    s: &Option<String>,
    ser: S,
) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => ser.serialize_str(&iso_shown(s)),
        None => ser.serialize_none(),
    }
}

/// Compact UTC stamp for file names: `20261123T032553Z`.
pub fn file_stamp(t: SystemTime) -> String {
    utc(t)
        .format(FILE_FORM)
        .expect("a UTC time formats as a file stamp")
}

/// Parses both timestamp forms the files hold (`2026-11-23T03:25:53.112Z` and
/// `2026-11-23 03:25:53`) into seconds since the epoch, UTC. `None` for anything else,
/// impossible dates and times included.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    parse_timestamp_ms(s).map(|ms| ms.div_euclid(1000))
}

/// Like `parse_timestamp`, in milliseconds (the API's form carries them; the SQL form has none).
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let t = PrimitiveDateTime::parse(s.trim(), READ_FORM)
        .ok()?
        .assume_utc();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The one duration grammar of every flag that takes one (`--older-than`, `--busy-timeout`, ...):
/// a whole number and a unit, `ms`, `s`, `m`, `h`, `d` or `w` (`500ms`, `5s`, `30d`, `2w`); `0`
/// alone is zero. A bare number is refused: it would mean seconds to one reader and days to
/// another, and `--older-than 30` purging what was deleted 30 seconds ago is not a guess to make.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| {
        format!("'{s}' is not a duration: use a whole number and a unit (ms, s, m, h, d, w), like 500ms, 5s or 30d")
    })?;
    let ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "" if n == 0 => 1,
        "" => {
            return Err(format!(
                "'{s}' has no unit: write {s}s, {s}m, {s}d or another unit (ms, s, m, h, d, w)"
            ))
        }
        _ => {
            return Err(format!(
                "'{s}' has an unknown unit '{unit}': use ms, s, m, h, d or w"
            ))
        }
    };
    n.checked_mul(ms)
        .filter(|ms| *ms <= 1_000 * 365 * 86_400_000)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{s}' is longer than 1000 years"))
}

/// A wait such as a busy timeout: `parse_duration`, at most one hour (SQLite's busy timeout
/// counts milliseconds in an int).
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(3600) {
        return Err(format!(
            "'{}' is longer than the one hour a wait may last",
            s.trim()
        ));
    }
    Ok(d)
}

/// A wait as `parse_wait` reads it: `250ms`, `5s`, `2m`.
pub fn format_wait(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {

    #[test]
    fn stored_times_are_shown_in_one_form() {
        assert_eq!(iso_shown("2026-12-02 04:46:36"), "2026-12-02T04:46:36.000Z");
        assert_eq!(
            iso_shown("2026-12-02T04:46:36.123Z"),
            "2026-12-02T04:46:36.123Z"
        );
        // PostgreSQL's microseconds are kept; what is not a time is left as it is.
        assert_eq!(
            iso_shown("2026-12-02T04:46:36.123456Z"),
            "2026-12-02T04:46:36.123456Z"
        );
        assert_eq!(iso_shown("2026-02-31 04:46:36"), "2026-02-31 04:46:36");
        assert_eq!(iso_shown("soon"), "soon");
    }

    use super::*;

    #[test]
    fn one_duration_grammar_with_a_unit_always() {
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_wait("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_wait("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert_eq!(parse_wait("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_wait("5").unwrap_err().contains("no unit"));
        assert!(parse_wait("1d").unwrap_err().contains("one hour"));
        assert!(parse_wait("61m").unwrap_err().contains("one hour"));
        assert!(parse_wait("99999999999999999999").is_err());
        assert!(parse_wait("fast").is_err());
        assert!(parse_duration("30").unwrap_err().contains("30d"));
        assert!(parse_duration("3y").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_duration("2w").unwrap().as_secs(), 14 * 86_400);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        for w in ["250ms", "5s", "2m", "0s", "90s"] {
            assert_eq!(format_wait(parse_wait(w).unwrap()), w);
        }
    }

    #[test]
    fn uuid_has_v4_shape_and_differs() {
        let a = uuid_v4();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        for (i, c) in a.char_indices() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(c, '-', "{a}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{a}");
            }
        }
        assert_ne!(a, uuid_v4());
    }

    #[test]
    fn timestamps_round_trip_in_both_forms() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_404_353_112);
        let iso = iso_from(t);
        assert_eq!(iso, "2026-11-23T03:25:53.112Z");
        assert_eq!(parse_timestamp(&iso), Some(1_795_404_353));
        assert_eq!(parse_timestamp("2026-11-23 03:25:53"), Some(1_795_404_353));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp("2026-11-99 03:25:53"), None);
        assert_eq!(parse_timestamp("2026-02-29 03:25:53"), None);
        assert!(parse_timestamp("2024-02-29 03:25:53").is_some());
        assert_eq!(parse_timestamp("2026-11-23 24:00:00"), None);
        assert_eq!(parse_timestamp("2026-11-23 23:60:00"), None);
        assert_eq!(parse_timestamp_ms(&iso), Some(1_795_404_353_112));
        assert_eq!(
            parse_timestamp_ms("2026-11-23 03:25:53"),
            Some(1_795_404_353_000)
        );
        assert_eq!(file_stamp(t), "20261123T032553Z");
        // Only real dates and times: they feed purge cutoffs.
        for bad in [
            "2026-02-31 00:00:00",
            "2026-11-23 25:00:00",
            "2026-13-01T00:00:00Z",
            "2026-11-23T03:25:60.000Z",
            "2026-11-23",
            "2026-11-23T03:25:53.112Zjunk",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(parse_timestamp("2024-02-29 12:00:00"), Some(1_709_208_000));
        assert_eq!(parse_timestamp("1969-12-31 23:59:59"), Some(-1));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86_400);
        assert_eq!(parse_duration("12h").unwrap().as_secs(), 12 * 3600);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3y").is_err());
        assert!(parse_duration("200000000000000d").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
