//! Random identifiers (UUID v4) and timestamps in the two forms the API writes.
//!
//! Randomness comes from SQLite's own CSPRNG (seeded from the operating system), so no extra
//! dependency is needed. Owns no I/O besides reading the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fresh random UUID v4, lower-case hyphenated, as the API writes ids.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    // SAFETY: sqlite3_randomness writes exactly `len` bytes into the buffer it is given.
    unsafe { rusqlite::ffi::sqlite3_randomness(16, b.as_mut_ptr().cast()) };
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    // Written digit by digit: a clone asks for one id per row, and formatting each byte through
    // `format!` cost more than the SQL that uses the id.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[usize::from(x >> 4)] as char);
        out.push(HEX[usize::from(x & 0x0f)] as char);
    }
    out
}

/// Now as the API writes it: `2026-11-23T03:25:53.112Z`.
pub fn now_iso() -> String {
    iso_from(SystemTime::now())
}

pub fn iso_from(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, mo, da, h, mi, s) = civil(d.as_secs() as i64);
    format!(
        "{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// Compact UTC stamp for file names: `20261123T032553Z`.
pub fn file_stamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, mo, da, h, mi, s) = civil(d.as_secs() as i64);
    format!("{y:04}{mo:02}{da:02}T{h:02}{mi:02}{s:02}Z")
}

fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses both timestamp forms the files hold (`2026-11-23T03:25:53.112Z` and
/// `2026-11-23 03:25:53`) into seconds since the epoch, UTC. `None` for anything else.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' || mo == 0 || mo > 12 {
        return None;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // A leap second (60) is a time the clock can show.
    if d == 0 || d > days_in_month || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(
        days_from_civil(i64::from(y), mo, d) * 86_400
            + i64::from(h) * 3600
            + i64::from(mi) * 60
            + i64::from(se),
    )
}

/// Like `parse_timestamp`, in milliseconds (the API's form carries them; the SQL form has none).
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let secs = parse_timestamp(s)?;
    let s = s.trim();
    let ms = s
        .get(19..)
        .and_then(|rest| rest.strip_prefix('.'))
        .map(|f| {
            let digits: String = f.chars().take_while(char::is_ascii_digit).take(3).collect();
            format!("{digits:0<3}").parse::<i64>().unwrap_or(0)
        })
        .unwrap_or(0);
    Some(secs * 1000 + ms)
}

/// Parses a retention like `30d`, `12h`, `90m`, `45s`, `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' is not a duration: use a number and a unit, like 30d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "'{s}' has an unknown unit '{unit}': use s, m, h, d or w"
            ))
        }
    };
    n.checked_mul(mult)
        .filter(|s| *s <= 1_000 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is longer than 1000 years"))
}

/// A wait such as a busy timeout: a number with `ms`, `s` or `m`; a bare number is seconds.
/// At most one hour (SQLite's busy timeout counts milliseconds in an int).
pub fn parse_wait(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| {
        format!("'{s}' is not a wait: use a number and a unit, like 500ms, 5s or 2m")
    })?;
    let ms = match unit {
        "ms" => 1,
        "s" | "" => 1_000,
        "m" => 60_000,
        _ => {
            return Err(format!(
                "'{s}' has an unknown unit '{unit}': use ms, s or m (a bare number is seconds)"
            ))
        }
    };
    n.checked_mul(ms)
        .filter(|ms| *ms <= 3_600_000)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{s}' is longer than the one hour a wait may last"))
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_take_ms_s_m_and_bare_seconds() {
        assert_eq!(parse_wait("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_wait("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_wait("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_wait("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_wait("0"), Ok(Duration::ZERO));
        assert!(parse_wait("1d").unwrap_err().contains("unknown unit"));
        assert!(parse_wait("61m").unwrap_err().contains("one hour"));
        assert!(parse_wait("99999999999999999999").is_err());
        assert!(parse_wait("fast").is_err());
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
