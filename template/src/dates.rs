//! Go's `time` package as sprig's date functions use it: instants with a location, Go's
//! layout-based formatting and parsing, and `time.Duration`'s text form. Time zones (the
//! system's tz database, TZif files with their POSIX TZ rules, the server's own zone) are
//! read by jiff; the calendar arithmetic is our own, as Go's years reach far beyond
//! jiff's -9999..=9999.

use super::*;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::sync::OnceLock;

pub(crate) const SECS_PER_DAY: i64 = 86_400;
pub(crate) const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the Unix epoch.
pub(crate) const ZERO_TIME_UNIX: i64 = -62_135_596_800;

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

// ---------------------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, as Go)
// ---------------------------------------------------------------------------------------

/// Days since 1970-01-01 of a civil date (`month` 1..=12, `day` may overflow the month).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1..=12, day 1..=31) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

pub(crate) fn days_in_month(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The fields of a wall-clock time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Civil {
    pub(crate) year: i64,
    pub(crate) month: i64,
    pub(crate) day: i64,
    pub(crate) hour: i64,
    pub(crate) minute: i64,
    pub(crate) second: i64,
    /// 0 is Sunday.
    pub(crate) weekday: usize,
    /// 1..=366.
    pub(crate) yday: i64,
}

pub(crate) fn civil(local_secs: i64) -> Civil {
    let days = local_secs.div_euclid(SECS_PER_DAY);
    let rem = local_secs.rem_euclid(SECS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        weekday: (days + 4).rem_euclid(7) as usize,
        yday: days - days_from_civil(year, 1, 1) + 1,
    }
}

// ---------------------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------------------

/// A time zone: Go's `*time.Location`.
#[derive(Debug)]
pub(crate) struct Location {
    pub(crate) name: Box<str>,
    zone: Zone,
    /// The zone's (abbreviation, offset) pairs in order of first use (Go's
    /// `Location.zone`, for `lookup_name`), gathered from its transitions on first need.
    types: OnceLock<Vec<(Box<str>, i64)>>,
}

/// Where a location's offsets come from.
#[derive(Debug)]
enum Zone {
    /// One abbreviation and offset for all time: UTC and the zones parsing makes up.
    Fixed { abbr: Box<str>, offset: i64 },
    /// A zone of the tz database or a TZif file (with its POSIX TZ rule), read by jiff.
    Tz(TimeZone),
}

/// What a location says about an instant: zone abbreviation and offset east of UTC.
#[derive(Debug, Clone)]
pub(crate) struct ZoneInfo {
    pub(crate) name: Box<str>,
    pub(crate) offset: i64,
}

/// Seconds in 400 Gregorian years, the period of the calendar and of POSIX TZ rules.
const CYCLE_SECS: i64 = 146_097 * SECS_PER_DAY;

/// The jiff timestamp of Unix seconds `sec`. jiff's instants span the years -9999..=9999
/// and Go's far more, so an instant outside moves by whole 400-year cycles into that span:
/// a POSIX TZ rule gives the same answer there, and before a zone's first transition the
/// answer is the same at any instant.
fn timestamp(sec: i64) -> Timestamp {
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    let sec = if sec > max {
        sec - ((sec - max - 1) / CYCLE_SECS + 1) * CYCLE_SECS
    } else if sec < min {
        sec + ((min - sec - 1) / CYCLE_SECS + 1) * CYCLE_SECS
    } else {
        sec
    };
    Timestamp::from_second(sec).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Location {
    pub(crate) fn utc() -> Arc<Location> {
        static UTC: OnceLock<Arc<Location>> = OnceLock::new();
        UTC.get_or_init(|| Arc::new(Location::fixed("UTC", "UTC", 0)))
            .clone()
    }

    /// Go's `time.FixedZone` named `zone_name`, shown as `loc_name`.
    pub(crate) fn fixed(loc_name: &str, zone_name: &str, offset: i64) -> Location {
        Location {
            name: loc_name.into(),
            zone: Zone::Fixed {
                abbr: zone_name.into(),
                offset,
            },
            types: OnceLock::new(),
        }
    }

    fn tz(name: &str, tz: TimeZone) -> Location {
        Location {
            name: name.into(),
            zone: Zone::Tz(tz),
            types: OnceLock::new(),
        }
    }

    /// Go's `Location.lookup` (without the zone period's bounds, which `local_to_unix`
    /// does not need).
    pub(crate) fn lookup(&self, sec: i64) -> ZoneInfo {
        match &self.zone {
            Zone::Fixed { abbr, offset } => ZoneInfo {
                name: abbr.clone(),
                offset: *offset,
            },
            Zone::Tz(tz) => {
                let info = tz.to_offset_info(timestamp(sec));
                ZoneInfo {
                    name: info.abbreviation().into(),
                    offset: i64::from(info.offset().seconds()),
                }
            }
        }
    }

    /// The zone's (abbreviation, offset) pairs: the one before its first transition, then
    /// those its transitions switch to up to 2100 (a tz database file's types, as Go
    /// lists them, all appear by then).
    fn types(&self) -> &[(Box<str>, i64)] {
        self.types.get_or_init(|| match &self.zone {
            Zone::Fixed { abbr, offset } => vec![(abbr.clone(), *offset)],
            Zone::Tz(tz) => {
                const Y2100: i64 = 4_102_444_800;
                let first = tz.to_offset_info(Timestamp::MIN);
                let mut types: Vec<(Box<str>, i64)> = vec![(
                    first.abbreviation().into(),
                    i64::from(first.offset().seconds()),
                )];
                for t in tz
                    .following(Timestamp::MIN)
                    .take_while(|t| t.timestamp().as_second() < Y2100)
                {
                    let found = types.iter().any(|(abbr, offset)| {
                        **abbr == *t.abbreviation() && *offset == i64::from(t.offset().seconds())
                    });
                    if !found {
                        types.push((t.abbreviation().into(), i64::from(t.offset().seconds())));
                    }
                }
                types
            }
        })
    }

    /// Go's `Location.lookupName`: the offset of a zone abbreviation, preferring the zone in
    /// effect at `unix`.
    pub(crate) fn lookup_name(&self, name: &str, unix: i64) -> Option<i64> {
        let types = self.types();
        for (abbr, offset) in types {
            if **abbr == *name {
                let info = self.lookup(unix.saturating_sub(*offset));
                if *info.name == *name {
                    return Some(info.offset);
                }
            }
        }
        types
            .iter()
            .find(|(abbr, _)| **abbr == *name)
            .map(|&(_, offset)| offset)
    }
}

/// Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" the server's zone, anything
/// else a zone of the system's tz database (jiff's: `$TZDIR`, else `/usr/share/zoneinfo`,
/// `/usr/share/lib/zoneinfo` or `/etc/zoneinfo`).
pub(crate) fn load_location(name: &str) -> Result<Arc<Location>, String> {
    match name {
        "" | "UTC" => return Ok(Location::utc()),
        "Local" => return Ok(local()),
        _ => {}
    }
    let bad = name.starts_with(['/', '\\']) || name.split(['/', '\\']).any(|p| p == "..");
    if bad {
        return Err("time: invalid location name".to_owned());
    }
    match TimeZone::get(name) {
        // jiff finds names in any ASCII case; Go's (file names) must match exactly.
        Ok(tz) if tz.iana_name() == Some(name) => Ok(Arc::new(Location::tz(name, tz))),
        _ => Err(format!("unknown time zone {name}")),
    }
}

/// The server's zone, chosen like Go's `time.Local`: `$TZ` when set (empty is UTC; a
/// path is a TZif file, anything else a tz database name), else the system's zone
/// (`/etc/localtime`), else UTC.
pub(crate) fn local() -> Arc<Location> {
    static LOCAL: OnceLock<Arc<Location>> = OnceLock::new();
    LOCAL.get_or_init(init_local).clone()
}

fn init_local() -> Arc<Location> {
    match std::env::var("TZ") {
        Err(_) => {
            if let Ok(tz) = TimeZone::try_system() {
                return Arc::new(Location::tz("Local", tz));
            }
        }
        Ok(tz) if !tz.is_empty() => {
            let tz = tz.strip_prefix(':').unwrap_or(&tz);
            if tz.starts_with('/') {
                let name = if tz == "/etc/localtime" { "Local" } else { tz };
                let file = std::fs::read(tz).ok();
                if let Some(zone) = file.and_then(|data| TimeZone::tzif(tz, &data).ok()) {
                    return Arc::new(Location::tz(name, zone));
                }
            } else if !tz.is_empty() && tz != "UTC" {
                if let Ok(loc) = load_location(tz) {
                    return loc;
                }
            }
        }
        Ok(_) => {}
    }
    Location::utc()
}

// ---------------------------------------------------------------------------------------
// Instants
// ---------------------------------------------------------------------------------------

/// Go's `time.Time`: an instant, the location it is shown in, and (for `now` and what
/// is computed from it) a monotonic clock reading in nanoseconds.
#[derive(Debug, Clone)]
pub(crate) struct Time {
    pub(crate) secs: i64,
    pub(crate) nanos: u32,
    pub(crate) loc: Arc<Location>,
    pub(crate) mono: Option<i64>,
}

impl Time {
    pub(crate) fn zero() -> Time {
        Time {
            secs: ZERO_TIME_UNIX,
            nanos: 0,
            loc: Location::utc(),
            mono: None,
        }
    }

    pub(crate) fn unix(secs: i64, loc: Arc<Location>) -> Time {
        Time {
            secs,
            nanos: 0,
            loc,
            mono: None,
        }
    }

    /// `time.Now()` in the server's zone.
    pub(crate) fn now() -> Time {
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        let start = *START.get_or_init(std::time::Instant::now);
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mono = i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX);
        Time {
            secs: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            nanos: since.subsec_nanos(),
            loc: local(),
            // Go's reading is never 0 (it starts at 1ns).
            mono: Some(mono + 1),
        }
    }

    pub(crate) fn in_loc(&self, loc: Arc<Location>) -> Time {
        Time {
            secs: self.secs,
            nanos: self.nanos,
            loc,
            mono: None,
        }
    }

    /// `t.Add(d)` for a duration in nanoseconds.
    pub(crate) fn add(&self, d: i64) -> Time {
        let total = i128::from(self.secs) * i128::from(NANOS_PER_SEC)
            + i128::from(self.nanos)
            + i128::from(d);
        let secs = total.div_euclid(i128::from(NANOS_PER_SEC));
        Time {
            secs: i64::try_from(secs).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX }),
            nanos: total.rem_euclid(i128::from(NANOS_PER_SEC)) as u32,
            loc: self.loc.clone(),
            mono: self.mono.map(|m| m.saturating_add(d)),
        }
    }

    /// Go's `Time.String`: `2006-01-02 15:04:05.999999999 -0700 MST` and, when the time
    /// has a monotonic reading, ` m=+1.234567890`.
    pub(crate) fn to_go_string(&self) -> String {
        let mut out = format_time(self, "2006-01-02 15:04:05.999999999 -0700 MST");
        if let Some(m) = self.mono {
            let sign = if m < 0 { '-' } else { '+' };
            let m = m.unsigned_abs();
            let _ = write!(
                out,
                " m={sign}{}.{:09}",
                m / 1_000_000_000,
                m % 1_000_000_000
            );
        }
        out
    }

    /// True for `eq`: the same instant, location and monotonic reading (Go's `==`).
    pub(crate) fn same(&self, other: &Time) -> bool {
        self.secs == other.secs
            && self.nanos == other.nanos
            && self.mono == other.mono
            && (Arc::ptr_eq(&self.loc, &other.loc) || self.loc.name == other.loc.name)
    }
}

// ---------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    /// A numeric zone offset (`-0700`, `Z07:00`, ...).
    Zone(ZoneShape),
    /// Fractional seconds: separator, digits, and whether trailing zeros are trimmed.
    Frac(u8, usize, bool),
}

/// How a numeric zone element writes (and reads) an offset: the ten layouts `-07`,
/// `-0700`, `-07:00`, `-070000`, `-07:00:00` and their `Z07...` forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZoneShape {
    /// A `Z07...` element: UTC is written `Z` (the `-07...` ones write `+0000`).
    iso: bool,
    /// `:` between hours, minutes and seconds.
    colon: bool,
    /// Hours only (`-07`).
    short: bool,
    /// Seconds after the minutes (`-070000`).
    seconds: bool,
}

impl ZoneShape {
    /// The shape named by a layout element's text after its `-` or `Z`.
    const fn of(iso: bool, text: &str) -> Self {
        let colon = text.len() == 5 || text.len() == 8;
        ZoneShape {
            iso,
            colon,
            short: text.len() == 2,
            seconds: text.len() == 6 || text.len() == 8,
        }
    }

    /// Byte length of an offset written in this shape, sign included.
    fn len(self) -> usize {
        match (self.short, self.seconds, self.colon) {
            (true, _, _) => 3,
            (false, false, false) => 5,
            (false, false, true) => 6,
            (false, true, false) => 7,
            (false, true, true) => 9,
        }
    }
}

fn starts_lower(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_lowercase)
}

/// Go's `nextStdChunk`: the text before the next layout element, the element, and the
/// byte length of the element's text.
pub(crate) fn next_std(layout: &str) -> Option<(usize, Std, usize)> {
    let l = layout.as_bytes();
    let has = |i: usize, s: &str| l.get(i..i + s.len()) == Some(s.as_bytes());
    let digit = |i: usize| l.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = 0;
    while i < l.len() {
        let found: Option<(Std, usize)> = match l[i] {
            b'J' if has(i, "Jan") => {
                if has(i, "January") {
                    Some((Std::LongMonth, 7))
                } else if !starts_lower(&l[i + 3..]) {
                    Some((Std::Month, 3))
                } else {
                    None
                }
            }
            b'M' if has(i, "Mon") => {
                if has(i, "Monday") {
                    Some((Std::LongWeekDay, 6))
                } else if !starts_lower(&l[i + 3..]) {
                    Some((Std::WeekDay, 3))
                } else {
                    None
                }
            }
            b'M' if has(i, "MST") => Some((Std::Tz, 3)),
            b'0' if l.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => {
                let std = [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][usize::from(l[i + 1] - b'1')];
                Some((std, 2))
            }
            b'0' if has(i, "002") => Some((Std::ZeroYearDay, 3)),
            b'1' if has(i, "15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if has(i, "2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if has(i, "_2") => {
                if has(i + 1, "2006") {
                    // "_2006" is a literal "_" and then the year.
                    return Some((i + 1, Std::LongYear, 4));
                }
                Some((Std::UnderDay, 2))
            }
            b'_' if has(i, "__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, "PM") => Some((Std::PM, 2)),
            b'p' if has(i, "pm") => Some((Std::Pm, 2)),
            c @ (b'-' | b'Z') => ["070000", "07:00:00", "0700", "07:00", "07"]
                .into_iter()
                .find(|s| l[i + 1..].starts_with(s.as_bytes()))
                .map(|s| (Std::Zone(ZoneShape::of(c == b'Z', s)), 1 + s.len())),
            c @ (b'.' | b',') if matches!(l.get(i + 1), Some(b'0' | b'9')) => {
                let ch = l[i + 1];
                let mut j = i + 1;
                while j < l.len() && l[j] == ch {
                    j += 1;
                }
                if digit(j) {
                    None
                } else {
                    Some((Std::Frac(c, j - i - 1, ch == b'9'), j - i))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = found {
            return Some((i, std, len));
        }
        i += 1;
    }
    None
}

fn push_int(out: &mut String, n: i64, width: usize) {
    if n < 0 {
        out.push('-');
    }
    let _ = write!(out, "{:0width$}", n.unsigned_abs());
}

/// Go's `Time.Format`.
pub(crate) fn format_time(t: &Time, layout: &str) -> String {
    let zone = t.loc.lookup(t.secs);
    let c = civil(t.secs.saturating_add(zone.offset));
    let mut out = String::with_capacity(layout.len() + 10);
    let mut rest = layout;
    while let Some((at, std, len)) = next_std(rest) {
        out.push_str(&rest[..at]);
        rest = &rest[at + len..];
        match std {
            Std::Year => push_int(&mut out, c.year.rem_euclid(100), 2),
            Std::LongYear => push_int(&mut out, c.year, 4),
            Std::Month => out.push_str(&LONG_MONTHS[c.month as usize - 1][..3]),
            Std::LongMonth => out.push_str(LONG_MONTHS[c.month as usize - 1]),
            Std::NumMonth => push_int(&mut out, c.month, 0),
            Std::ZeroMonth => push_int(&mut out, c.month, 2),
            Std::WeekDay => out.push_str(&LONG_DAYS[c.weekday][..3]),
            Std::LongWeekDay => out.push_str(LONG_DAYS[c.weekday]),
            Std::Day => push_int(&mut out, c.day, 0),
            Std::UnderDay => {
                if c.day < 10 {
                    out.push(' ');
                }
                push_int(&mut out, c.day, 0);
            }
            Std::ZeroDay => push_int(&mut out, c.day, 2),
            Std::UnderYearDay => {
                if c.yday < 100 {
                    out.push(' ');
                    if c.yday < 10 {
                        out.push(' ');
                    }
                }
                push_int(&mut out, c.yday, 0);
            }
            Std::ZeroYearDay => push_int(&mut out, c.yday, 3),
            Std::Hour => push_int(&mut out, c.hour, 2),
            Std::Hour12 | Std::ZeroHour12 => {
                let h = match c.hour % 12 {
                    0 => 12,
                    h => h,
                };
                push_int(&mut out, h, if std == Std::Hour12 { 0 } else { 2 });
            }
            Std::Minute => push_int(&mut out, c.minute, 0),
            Std::ZeroMinute => push_int(&mut out, c.minute, 2),
            Std::Second => push_int(&mut out, c.second, 0),
            Std::ZeroSecond => push_int(&mut out, c.second, 2),
            Std::PM => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Std::Pm => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Std::Zone(shape) => {
                if shape.iso && zone.offset == 0 {
                    out.push('Z');
                    continue;
                }
                let mut minutes = zone.offset / 60;
                let mut abs = zone.offset;
                if minutes < 0 {
                    out.push('-');
                    minutes = -minutes;
                    abs = -abs;
                } else {
                    out.push('+');
                }
                push_int(&mut out, minutes / 60, 2);
                if shape.colon {
                    out.push(':');
                }
                if !shape.short {
                    push_int(&mut out, minutes % 60, 2);
                }
                if shape.seconds {
                    if shape.colon {
                        out.push(':');
                    }
                    push_int(&mut out, abs % 60, 2);
                }
            }
            Std::Tz => {
                if !zone.name.is_empty() {
                    out.push_str(&zone.name);
                } else {
                    let mut minutes = zone.offset / 60;
                    if minutes < 0 {
                        out.push('-');
                        minutes = -minutes;
                    } else {
                        out.push('+');
                    }
                    push_int(&mut out, minutes / 60, 2);
                    push_int(&mut out, minutes % 60, 2);
                }
            }
            Std::Frac(sep, digits, trim) => {
                if trim && (digits == 0 || t.nanos == 0) {
                    continue;
                }
                let all = format!("{:09}", t.nanos);
                let mut frac = &all[..digits.min(9)];
                if trim {
                    frac = frac.trim_end_matches('0');
                    if frac.is_empty() {
                        continue;
                    }
                }
                out.push(char::from(sep));
                out.push_str(frac);
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------
// Parsing (Go's `time.ParseInLocation`)
// ---------------------------------------------------------------------------------------

/// Go's quoting in time's error messages.
pub(crate) fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn getnum(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    if !b.get(1).is_some_and(u8::is_ascii_digit) {
        if fixed {
            return None;
        }
        return Some((i64::from(b[0] - b'0'), &s[1..]));
    }
    Some((
        i64::from(b[0] - b'0') * 10 + i64::from(b[1] - b'0'),
        &s[2..],
    ))
}

fn getnum3(s: &str, fixed: bool) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    let mut n = 0;
    let mut i = 0;
    while i < 3 && b.get(i).is_some_and(u8::is_ascii_digit) {
        n = n * 10 + i64::from(b[i] - b'0');
        i += 1;
    }
    if i == 0 || (fixed && i != 3) {
        return None;
    }
    Some((n, &s[i..]))
}

fn lookup_name<'v>(names: &[&str], len: Option<usize>, v: &'v str) -> Option<(usize, &'v str)> {
    names.iter().enumerate().find_map(|(i, name)| {
        let name = match len {
            Some(n) => &name[..n],
            None => name,
        };
        let head = v.get(..name.len())?;
        head.eq_ignore_ascii_case(name)
            .then(|| (i, &v[name.len()..]))
    })
}

/// Go's `skip`: match the layout's literal text; a space matches any run of spaces.
fn skip<'v>(mut value: &'v str, mut prefix: &str) -> Result<&'v str, ()> {
    while !prefix.is_empty() {
        if let Some(p) = prefix.strip_prefix(' ') {
            if !value.is_empty() && !value.starts_with(' ') {
                return Err(());
            }
            prefix = p.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        let c = prefix.chars().next().unwrap_or(' ');
        match value.strip_prefix(c) {
            Some(v) => value = v,
            None => return Err(()),
        }
        prefix = &prefix[c.len_utf8()..];
    }
    Ok(value)
}

fn parse_nanos(value: &str, nbytes: usize) -> Result<(i64, Option<&'static str>), ()> {
    if !value.starts_with(['.', ',']) {
        return Err(());
    }
    let nbytes = nbytes.min(10);
    let digits = value.get(1..nbytes).ok_or(())?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let mut ns: i64 = digits.parse().map_err(|_| ())?;
    for _ in 0..10 - nbytes {
        ns *= 10;
    }
    Ok((ns, None))
}

/// Length of a time zone abbreviation at the start of `value` (Go's `parseTimeZone`).
fn zone_abbr_len(value: &str) -> Option<usize> {
    let b = value.as_bytes();
    if b.len() < 3 {
        return None;
    }
    if b.len() >= 4 && (&b[..4] == b"ChST" || &b[..4] == b"MeST") {
        return Some(4);
    }
    if &b[..3] == b"GMT" {
        return Some(3 + signed_offset_len(&value[3..]));
    }
    if b[0] == b'+' || b[0] == b'-' {
        let n = signed_offset_len(value);
        return (n > 0).then_some(n);
    }
    let upper = b
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if b[3] == b'T' || &b[..4] == b"WITA" => Some(4),
        5 if b[4] == b'T' => Some(5),
        _ => None,
    }
}

fn signed_offset_len(value: &str) -> usize {
    let b = value.as_bytes();
    if !matches!(b.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let digits = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return 0;
    }
    match value[1..1 + digits].parse::<i64>() {
        Ok(x) if x <= 23 => 1 + digits,
        _ => 0,
    }
}

/// Go's `time.ParseInLocation(layout, value, loc)`, with Go's error messages.
pub(crate) fn parse_time(layout: &str, value: &str, loc: &Arc<Location>) -> Result<Time, String> {
    let (alayout, avalue) = (layout, value);
    let err = |layout_elem: &str, value_elem: &str, msg: &str| {
        if msg.is_empty() {
            format!(
                "parsing time {} as {}: cannot parse {} as {}",
                time_quote(avalue),
                time_quote(alayout),
                time_quote(value_elem),
                time_quote(layout_elem)
            )
        } else {
            format!("parsing time {}{msg}", time_quote(avalue))
        }
    };
    let mut layout = layout;
    let mut value = value;
    let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
    let (mut hour, mut min, mut sec, mut nsec) = (0i64, 0i64, 0i64, 0i64);
    let (mut pm_set, mut am_set) = (false, false);
    let mut utc = false;
    let mut zone_offset: Option<i64> = None;
    let mut zone_name = String::new();
    loop {
        let next = next_std(layout);
        let (prefix, std, std_str, suffix) = match next {
            Some((at, std, len)) => (
                &layout[..at],
                Some(std),
                &layout[at..at + len],
                &layout[at + len..],
            ),
            None => (layout, None, "", ""),
        };
        value = match skip(value, prefix) {
            Ok(v) => v,
            Err(()) => return Err(err(prefix, value, "")),
        };
        let Some(std) = std else {
            if !value.is_empty() {
                return Err(err(
                    "",
                    value,
                    &format!(": extra text: {}", time_quote(value)),
                ));
            }
            break;
        };
        layout = suffix;
        let hold = value;
        let mut range_err: Option<&str> = None;
        let ok: Option<()> = (|| {
            match std {
                Std::Year => {
                    let p = value.get(..2)?;
                    let y: i64 = p
                        .parse()
                        .ok()
                        .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))?;
                    value = &value[2..];
                    year = if y >= 69 { y + 1900 } else { y + 2000 };
                }
                Std::LongYear => {
                    let p = value.get(..4)?;
                    if !p.bytes().all(|b| b.is_ascii_digit()) {
                        return None;
                    }
                    year = p.parse().ok()?;
                    value = &value[4..];
                }
                Std::Month | Std::LongMonth => {
                    let len = (std == Std::Month).then_some(3);
                    let (m, rest) = lookup_name(&LONG_MONTHS, len, value)?;
                    month = m as i64 + 1;
                    value = rest;
                }
                Std::NumMonth | Std::ZeroMonth => {
                    let (m, rest) = getnum(value, std == Std::ZeroMonth)?;
                    value = rest;
                    month = m;
                    if !(1..=12).contains(&m) {
                        range_err = Some("month");
                    }
                }
                Std::WeekDay | Std::LongWeekDay => {
                    let len = (std == Std::WeekDay).then_some(3);
                    let (_, rest) = lookup_name(&LONG_DAYS, len, value)?;
                    value = rest;
                }
                Std::Day | Std::UnderDay | Std::ZeroDay => {
                    if std == Std::UnderDay && value.starts_with(' ') {
                        value = &value[1..];
                    }
                    let (d, rest) = getnum(value, std == Std::ZeroDay)?;
                    value = rest;
                    day = d;
                }
                Std::UnderYearDay | Std::ZeroYearDay => {
                    for _ in 0..2 {
                        if std == Std::UnderYearDay && value.starts_with(' ') {
                            value = &value[1..];
                        }
                    }
                    let (d, rest) = getnum3(value, std == Std::ZeroYearDay)?;
                    value = rest;
                    yday = d;
                    if !(1..=366).contains(&d) {
                        range_err = Some("day-of-year");
                    }
                }
                Std::Hour => {
                    let (h, rest) = getnum(value, false)?;
                    value = rest;
                    hour = h;
                    if h >= 24 {
                        range_err = Some("hour");
                    }
                }
                Std::Hour12 | Std::ZeroHour12 => {
                    let (h, rest) = getnum(value, std == Std::ZeroHour12)?;
                    value = rest;
                    hour = h;
                    if h > 12 {
                        range_err = Some("hour");
                    }
                }
                Std::Minute | Std::ZeroMinute => {
                    let (m, rest) = getnum(value, std == Std::ZeroMinute)?;
                    value = rest;
                    min = m;
                    if m >= 60 {
                        range_err = Some("minute");
                    }
                }
                Std::Second | Std::ZeroSecond => {
                    let (s, rest) = getnum(value, std == Std::ZeroSecond)?;
                    value = rest;
                    sec = s;
                    if s >= 60 {
                        range_err = Some("second");
                        return Some(());
                    }
                    // A fraction after the seconds that the layout does not spell out.
                    let b = value.as_bytes();
                    if b.len() >= 2 && matches!(b[0], b'.' | b',') && b[1].is_ascii_digit() {
                        if let Some((_, Std::Frac(..), _)) = next_std(layout) {
                            return Some(());
                        }
                        let n = 2 + b[2..].iter().take_while(|c| c.is_ascii_digit()).count();
                        nsec = parse_nanos(value, n).ok()?.0;
                        value = &value[n..];
                    }
                }
                Std::PM | Std::Pm => {
                    let p = value.get(..2)?;
                    let (pm, am) = if std == Std::PM {
                        ("PM", "AM")
                    } else {
                        ("pm", "am")
                    };
                    if p == pm {
                        pm_set = true;
                    } else if p == am {
                        am_set = true;
                    } else {
                        return None;
                    }
                    value = &value[2..];
                }
                Std::Zone(shape) => {
                    if shape.iso && value.starts_with('Z') {
                        value = &value[1..];
                        utc = true;
                        return Some(());
                    }
                    let n = shape.len();
                    let b = value.as_bytes();
                    if b.len() < n {
                        return None;
                    }
                    let step = if shape.colon { 3 } else { 2 };
                    if shape.colon && (b[3] != b':' || (shape.seconds && b[6] != b':')) {
                        return None;
                    }
                    // `get`, not indexing: the value may hold non-ASCII text where the
                    // digits should be.
                    let field = |k: usize| value.get(1 + k * step..3 + k * step);
                    let sign = b[0];
                    let h = field(0)?;
                    let m = if shape.short { "00" } else { field(1)? };
                    let s = if shape.seconds { field(2)? } else { "00" };
                    let num = |x: &str| getnum(x, true).map(|(n, _)| n);
                    let (hr, mm, ss) = (num(h)?, num(m)?, num(s)?);
                    value = value.get(n..)?;
                    if hr > 24 {
                        range_err = Some("time zone offset hour");
                    }
                    if mm > 60 {
                        range_err = Some("time zone offset minute");
                    }
                    if ss > 60 {
                        range_err = Some("time zone offset second");
                    }
                    let off = (hr * 60 + mm) * 60 + ss;
                    zone_offset = Some(match sign {
                        b'+' => off,
                        b'-' => -off,
                        _ => return None,
                    });
                }
                Std::Tz => {
                    if value.starts_with("UTC") {
                        utc = true;
                        value = &value[3..];
                        return Some(());
                    }
                    let n = zone_abbr_len(value)?;
                    zone_name = value[..n].to_owned();
                    value = &value[n..];
                }
                Std::Frac(_, digits, false) => {
                    let n = 1 + digits;
                    if value.len() < n {
                        return None;
                    }
                    nsec = parse_nanos(value, n).ok()?.0;
                    value = &value[n..];
                }
                Std::Frac(_, _, true) => {
                    let b = value.as_bytes();
                    if b.len() < 2 || !matches!(b[0], b'.' | b',') || !b[1].is_ascii_digit() {
                        return Some(());
                    }
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nsec = parse_nanos(value, n).ok()?.0;
                    value = &value[n..];
                }
            }
            Some(())
        })();
        if let Some(what) = range_err {
            return Err(err(std_str, value, &format!(": {what} out of range")));
        }
        if ok.is_none() {
            return Err(err(std_str, hold, ""));
        }
    }
    if pm_set && hour < 12 {
        hour += 12;
    } else if am_set && hour == 12 {
        hour = 0;
    }
    if yday >= 0 {
        let mut yd = yday;
        let (mut m, mut d) = (0, 0);
        if is_leap(year) {
            if yd == 31 + 29 {
                m = 2;
                d = 29;
            } else if yd > 31 + 29 {
                yd -= 1;
            }
        }
        if m == 0 {
            let before = |m: i64| days_from_civil(2001, m, 1) - days_from_civil(2001, 1, 1);
            m = yd / 31 + 1;
            if before(m + 1) < yd {
                m += 1;
            }
            d = yd - before(m);
        }
        if month >= 0 && month != m {
            return Err(err("", value, ": day-of-year does not match month"));
        }
        month = m;
        if day >= 0 && day != d {
            return Err(err("", value, ": day-of-year does not match day"));
        }
        day = d;
    } else {
        if month < 0 {
            month = 1;
        }
        if day < 0 {
            day = 1;
        }
    }
    if day < 1 || day > days_in_month(month, year) {
        return Err(err("", value, ": day out of range"));
    }
    let wall = days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + min * 60 + sec;
    let at = |secs: i64, loc: Arc<Location>| Time {
        secs,
        nanos: nsec as u32,
        loc,
        mono: None,
    };
    if utc {
        return Ok(at(wall, Location::utc()));
    }
    if let Some(off) = zone_offset {
        let unix = wall - off;
        let info = loc.lookup(unix);
        if info.offset == off && (zone_name.is_empty() || *info.name == *zone_name) {
            return Ok(at(unix, loc.clone()));
        }
        return Ok(at(
            unix,
            Arc::new(Location::fixed(&zone_name, &zone_name, off)),
        ));
    }
    if !zone_name.is_empty() {
        if let Some(off) = loc.lookup_name(&zone_name, wall) {
            return Ok(at(wall - off, loc.clone()));
        }
        // An unknown abbreviation gets a made-up zone; Go keeps the wall clock as UTC
        // even when the name says GMT+h.
        let mut off = 0;
        if zone_name.len() > 3 && zone_name.starts_with("GMT") {
            off = zone_name[3..].parse::<i64>().unwrap_or(0) * 3600;
        }
        return Ok(at(
            wall,
            Arc::new(Location::fixed(&zone_name, &zone_name, off)),
        ));
    }
    Ok(at(local_to_unix(wall, loc), loc.clone()))
}

/// Go's `time.Date` offset resolution: the instant a wall-clock time names in `loc`. Go
/// takes the offset in effect at `wall` read as UTC and, unless the instant that gives is
/// still in that zone period, the offset in effect at that instant: the latter in both
/// cases.
pub(crate) fn local_to_unix(wall: i64, loc: &Location) -> i64 {
    let offset = loc.lookup(wall).offset;
    if offset == 0 {
        return wall;
    }
    wall - loc.lookup(wall.saturating_sub(offset)).offset
}

// ---------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------

/// Go's `Duration.String` of nanoseconds: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn format_duration(d: i64) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let frac = |u: u64, prec: u32| -> (String, u64) {
        let p = 10u64.pow(prec);
        let (int, f) = (u / p, u % p);
        if f == 0 {
            return (String::new(), int);
        }
        let digits = format!("{f:0width$}", width = prec as usize);
        (format!(".{}", digits.trim_end_matches('0')), int)
    };
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".into(),
            1..=999 => (0, "ns"),
            1_000..=999_999 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (f, int) = frac(u, prec);
        let _ = write!(out, "{int}{f}{unit}");
    } else {
        let (f, secs) = frac(u, 9);
        u = secs;
        let s = u % 60;
        u /= 60;
        if u > 0 {
            let m = u % 60;
            u /= 60;
            if u > 0 {
                let _ = write!(out, "{u}h");
            }
            let _ = write!(out, "{m}m");
        }
        let _ = write!(out, "{s}{f}s");
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Go's `time.ParseDuration`, with its error messages.
pub(crate) fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", time_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix(['-', '+']) {
        neg = s.starts_with('-');
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            if v > (LIMIT - 1) / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        let pre = int_len > 0;
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let n = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for c in s[..n].bytes() {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = n > 0;
            s = &s[n..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(orig)
            ));
        }
        let unit_name = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u64 = match unit_name {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(unit_name),
                    time_quote(orig)
                ))
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i64).wrapping_neg());
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

// ---------------------------------------------------------------------------------------
