//! Units, the one place: durations (parse, serde adapters, display), byte sizes (the
//! `ByteSize` of config files and flags, parse, display), UTC stamps for file names,
//! and the clock. The `humantime` and `bytesize` crates are named here only.
//!
//! Every module that reads a duration from a file or a flag, prints a size or a
//! duration, or asks "what time is it" comes here, so `15s` means the same thing in
//! the config file, a dump schedule and `leakwatch watch --every`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserializer;

const MIB: f64 = 1024.0 * 1024.0;

// ---------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------

/// What a duration looks like, for error messages.
pub const DURATION_EXPECTED: &str = "a duration such as 500ms, 15s, 5m or 1h30m";
/// What a schedule looks like, for error messages.
pub const EVERY_EXPECTED: &str = "a duration such as 30s, 5m or 1h, or off";
/// What a size looks like, for error messages.
pub const SIZE_EXPECTED: &str = "a size such as 64MiB, 512KiB, 1GB or a number of bytes";

/// Parses a duration such as `15s`, `500ms`, `5m`, `1h30m`; the error says what is
/// wrong with it and what a duration looks like.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!(
            "invalid duration {s:?} ({}), expected {DURATION_EXPECTED}",
            duration_problem(s.trim(), &e)
        )
    })
}

/// What is wrong with a duration humantime refused, in a few words.
fn duration_problem(s: &str, e: &humantime::DurationError) -> String {
    use humantime::DurationError as E;
    match e {
        E::Empty => "empty".to_string(),
        E::NumberOverflow => "too large".to_string(),
        E::UnknownUnit { unit, .. } if unit.is_empty() => "no unit".to_string(),
        E::UnknownUnit { unit, .. } => format!("unknown unit {unit:?}"),
        E::NumberExpected(_) if s.chars().next().is_some_and(|c| c == '-') => {
            "negative".to_string()
        }
        E::NumberExpected(_) => "no number".to_string(),
        E::InvalidCharacter(at) => match s.get(*at..).and_then(|r| r.chars().next()) {
            Some('-') => "negative".to_string(),
            Some(c) => format!("unexpected {c:?}"),
            None => "unexpected character".to_string(),
        },
    }
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
    let d = humantime::parse_duration(t).map_err(|e| {
        format!(
            "invalid duration {s:?} ({}), expected {EVERY_EXPECTED}",
            duration_problem(t, &e)
        )
    })?;
    Ok((!d.is_zero()).then_some(d))
}

/// Reads a duration (or, for a schedule, `off`) inside the deserializer's own call, so
/// a bad value is reported at its key, line and column
/// (`targets[0].interval: invalid duration "5" (no unit), expected ... at line 4 column 15`).
/// Every duration of the config file is read through it, whatever its Rust type.
#[derive(Clone, Copy)]
struct DurationVisitor {
    /// A schedule: `off`, `0` and `0s` mean none.
    every: bool,
}

impl DurationVisitor {
    fn parse<E: serde::de::Error>(self, v: &str) -> Result<Option<Duration>, E> {
        if self.every {
            parse_every(v).map_err(E::custom)
        } else {
            parse_duration(v).map(Some).map_err(E::custom)
        }
    }
}

impl<'de> serde::de::Visitor<'de> for DurationVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(if self.every {
            EVERY_EXPECTED
        } else {
            DURATION_EXPECTED
        })
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.parse(v)
    }

    // A bare number in YAML: refused as "no unit" (which unit would it be?), except a
    // schedule's `0` (off).
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.parse(&v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.parse(&v.to_string())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        self.parse(&v.to_string())
    }
}

/// An optional reading: `null` (or `~`) is `None`, anything else goes to the visitor.
struct Nullable(DurationVisitor);

impl<'de> serde::de::Visitor<'de> for Nullable {
    type Value = Option<Option<Duration>>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self.0).map(Some)
    }
}

fn read<'de, D: Deserializer<'de>>(d: D, every: bool) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(DurationVisitor { every })
}

/// `#[serde(deserialize_with = "crate::units::de_duration")]`
pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    read(d, false).map(|d| d.unwrap_or_default())
}

/// An optional duration (`null`/absent is `None`).
pub fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_option(Nullable(DurationVisitor { every: false }))
        .map(Option::flatten)
}

/// A present duration for an `Option<Duration>` override field (absent is left to
/// `#[serde(default)]`).
pub fn de_some_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

/// A schedule (`off` or a duration).
pub fn de_every<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    read(d, true)
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
/// of bytes). Read from the config file by its own visitor, so a bad one is reported at
/// its key and line with what a size looks like (`bytesize`'s own reader says only
/// "expected parsable string").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(u64);

impl ByteSize {
    pub const fn b(bytes: u64) -> ByteSize {
        ByteSize(bytes)
    }

    pub const fn kib(n: u64) -> ByteSize {
        ByteSize(n * 1024)
    }

    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024)
    }

    pub const fn gib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024 * 1024)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&fmt_size(self.0))
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;

    /// `64MiB`, `100MB`, `1.5GiB`, `1024`; the error says what a size looks like.
    fn from_str(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        if t.starts_with('-') {
            return Err(format!(
                "invalid size {s:?} (negative), expected {SIZE_EXPECTED}"
            ));
        }
        t.parse::<bytesize::ByteSize>()
            .map(|b| ByteSize(b.as_u64()))
            .map_err(|_| format!("invalid size {s:?}, expected {SIZE_EXPECTED}"))
    }
}

struct SizeVisitor;

impl serde::de::Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(SIZE_EXPECTED)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v).map(ByteSize).map_err(|_| {
            E::custom(format!(
                "invalid size {v} (negative), expected {SIZE_EXPECTED}"
            ))
        })
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ByteSize, E> {
        Err(E::custom(format!(
            "invalid size {v} (a fraction of a byte), expected {SIZE_EXPECTED}"
        )))
    }
}

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

/// A size from text such as `5MB`, `512KiB` or `1024` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<ByteSize>().map(|b| b.as_u64())
}

/// `2.0 GiB`, `64.0 MiB`, `1 B` (IEC units): a size limit as errors and flags show it.
pub fn fmt_size(bytes: u64) -> String {
    bytesize::ByteSize::b(bytes).display().iec().to_string()
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
