//! Units, the one place: durations (parse, serde adapters, display), byte sizes (the
//! `ByteSize` of config files and flags, parse, display), UTC stamps for file names,
//! and the clock. The `humantime` and `bytesize` crates are named here only.
//!
//! Every module that reads a duration from a file or a flag, prints a size or a
//! duration, or asks "what time is it" comes here, so `15s` means the same thing in
//! the config file, a dump schedule and `leakwatch watch --every`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer};

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------

/// Parses a duration such as `15s`, `500ms`, `5m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Like [`parse_duration`], for flags where zero makes no sense.
pub fn parse_nonzero_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be greater than 0"));
    }
    Ok(d)
}

/// A schedule: `off`, `0` and zero durations turn it off (`None`).
pub fn parse_every(s: &str) -> Result<Option<Duration>, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("off") || t == "0" {
        return Ok(None);
    }
    let d = parse_duration(t)?;
    Ok((!d.is_zero()).then_some(d))
}

/// Reads a duration string inside the deserializer's own call, so a bad value is
/// reported at its key and line (`targets[0].interval: ... at line 4 column 15`).
struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a duration such as 500ms, 15s, 5m or 1h")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
    }
}

/// `#[serde(deserialize_with = "crate::units::de_duration")]`
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(DurationVisitor)
}

struct OptDurationVisitor;

impl<'de> serde::de::Visitor<'de> for OptDurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a duration such as 500ms, 15s, 5m or 1h")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        de_duration(d).map(Some)
    }
}

/// An optional duration (`null`/absent is `None`).
pub fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_option(OptDurationVisitor)
}

/// A present duration for an `Option<Duration>` override field (absent is left to
/// `#[serde(default)]`).
pub fn de_some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A schedule (`off` or a duration).
pub fn de_every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_every(&s).map_err(serde::de::Error::custom)
}

/// A present schedule for an override field.
pub fn de_some_every<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Duration>>, D::Error> {
    de_every(d).map(Some)
}

/// `1h 30m`, `15s`, `500ms` (humantime's form): a setting as page and terminal
/// headers show it.
pub fn fmt_duration_human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// An RFC 3339 time such as `2025-11-24T16:00:00Z`.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339(s).map_err(|e| e.to_string())
}

/// `1h30m`, `10m`, `45s`.
pub fn fmt_duration(seconds: f64) -> String {
    let s = if seconds.is_finite() && seconds > 0.0 {
        seconds.round() as u64
    } else {
        0
    };
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m, sec) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

// ---------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------

/// A byte size as the config file and flags write it (`64MiB`, `1GiB`, a plain number
/// of bytes), with its serde and `FromStr` forms.
pub use bytesize::ByteSize;

/// A size from text such as `5MB`, `512KiB` or `1024` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>().map(|b| b.as_u64())
}

/// `2.0 GiB`, `64.0 MiB`, `1 B` (IEC units): a size limit as errors and flags show it.
pub fn fmt_size(bytes: u64) -> String {
    ByteSize::b(bytes).display().iec().to_string()
}

/// `12.3 MiB`, `-512 B`, with a sign for negative values.
pub fn fmt_bytes(v: f64) -> String {
    let abs = v.abs();
    let sign = if v < 0.0 { "-" } else { "" };
    let units = [("GiB", MIB * 1024.0), ("MiB", MIB), ("KiB", 1024.0)];
    for (name, size) in units {
        if abs >= size {
            return format!("{sign}{:.1} {name}", abs / size);
        }
    }
    format!("{sign}{abs:.0} B")
}

// ---------------------------------------------------------------------------------
// Clock and UTC stamps
// ---------------------------------------------------------------------------------

/// Seconds since the Unix epoch of `t` (0 before the epoch).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch of `t` (0 before the epoch).
pub fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now, in whole seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    unix_secs(SystemTime::now())
}

/// Fractional seconds since the Unix epoch of `t` (0 before the epoch), for gauges.
pub fn unix_secs_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Now, in fractional seconds since the Unix epoch (for Prometheus gauges).
pub fn unix_now_f64() -> f64 {
    unix_secs_f64(SystemTime::now())
}

/// Unix seconds as `YYYYMMDDTHHMMSSZ` (UTC, ISO 8601 basic format).
pub fn format_utc(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The inverse of [`format_utc`]; None unless `s` is a valid time it could have written.
pub fn parse_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if y < 1970 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    // from_calendar_date rejects impossible dates such as Feb 30.
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(se).ok()?,
    )
    .ok()?;
    u64::try_from(date.with_time(t).assume_utc().unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("15s", Some(15_000)),
            ("500ms", Some(500)),
            (" 5m ", Some(300_000)),
            ("1h30m", Some(5_400_000)),
            ("0s", Some(0)),
            ("15", None),
            ("soon", None),
            ("", None),
        ];
        for (s, want) in cases {
            let got = parse_duration(s).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, want, "{s:?}");
        }
        assert!(parse_nonzero_duration("0s").is_err());
        assert_eq!(parse_every("off").unwrap(), None);
        assert_eq!(parse_every("0").unwrap(), None);
        assert_eq!(parse_every("0s").unwrap(), None);
        assert_eq!(parse_every("1h").unwrap(), Some(Duration::from_secs(3600)));
        assert!(parse_every("never").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_bytes(12.0 * MIB + 300.0 * 1024.0), "12.3 MiB");
        assert_eq!(fmt_bytes(-512.0), "-512 B");
        assert_eq!(fmt_bytes(3.0 * 1024.0 * MIB), "3.0 GiB");
        assert_eq!(fmt_duration(1800.0), "30m");
        assert_eq!(fmt_duration(5400.0), "1h30m");
        assert_eq!(fmt_duration(95.0), "1m35s");
        assert_eq!(fmt_duration(5.0), "5s");
        assert_eq!(fmt_duration(f64::NAN), "0s");
        assert_eq!(fmt_duration_human(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(fmt_duration_human(Duration::from_millis(500)), "500ms");
        assert_eq!(fmt_size(1), "1 B");
        assert_eq!(fmt_size(2 << 30), "2.0 GiB");
        assert_eq!(fmt_size(1 << 50), "1.0 PiB");
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert!(parse_size("lots").is_err());
        assert_eq!(
            parse_rfc3339("2025-11-24T16:00:00Z"),
            Ok(UNIX_EPOCH + Duration::from_secs(1_764_000_000))
        );
    }

    #[test]
    fn utc_round_trip() {
        let cases = [
            (0, "19700101T000000Z"),
            (951_782_400, "20000229T000000Z"),
            (1_764_000_000, "20251124T160000Z"),
            (1_795_685_415, "20261126T093015Z"),
            (4_102_444_799, "20991231T235959Z"),
        ];
        for (secs, s) in cases {
            assert_eq!(format_utc(secs), s);
            assert_eq!(parse_utc(s), Some(secs), "{s}");
        }
        for bad in [
            "20250230T000000Z",
            "20251324T000000Z",
            "20251124T240000Z",
            "19691231T235959Z",
            "2025112T160000ZZ",
            "20251124t160000Z",
            "+0251124T160000Z",
            "20261126 093015Z",
            "2026112T0093015Z",
            "2026-11-26T09:30",
            "20261126T09301ZZ",
            "",
        ] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
