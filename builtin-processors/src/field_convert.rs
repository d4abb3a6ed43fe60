//! `field.convert`: change the type of one field of a record's key or payload.
//!
//! As in Conduit, the field's current value is first written out as text the way Go prints
//! it, then that text is read back as the target type with Go's `strconv`/`time` rules:
//!
//! * to text: a string as is, a whole number in decimal, a float in its shortest positional
//!   form (`123.345`, `54`, never an exponent), a boolean as `true`/`false`, or as `1`/`0`
//!   when the target is `int` or `float`; anything else as Go's `%v` shows it (`<nil>` for a
//!   missing field or null, `map[a:1 b:x]`, `[1 2]`, raw data as its byte values);
//! * `int`: Go's `strconv.Atoi`: base-10 digits with an optional sign, within 64 bits; so a
//!   float converts only if it is whole (`54.0` becomes `54`, `1.5` fails);
//! * `float`: Go's `strconv.ParseFloat`: decimal or hexadecimal (`0x1p-2`) notation, `_`
//!   between digits, `inf`/`infinity`/`nan`; a number beyond the float range fails;
//! * `bool`: Go's `strconv.ParseBool` (`1`, `t`, `T`, `true`, `TRUE`, `True` and the
//!   `0`/`f`/`false` spellings);
//! * `time`: a whole number is nanoseconds since the Unix epoch, in UTC; other text must be
//!   RFC 3339 with optional fractional seconds, as Go's `time.Parse(time.RFC3339Nano, ..)`
//!   reads it (a comma may stand for the point, the hour may have one digit);
//! * `string`: the text itself.
//!
//! Errors are Go's messages (`strconv.Atoi: parsing "x": invalid syntax`, `parsing time
//! ...`). Only fields under `.Key` and `.Payload` may be named. Culvert's structured data is
//! JSON, so two results are stored differently from Conduit's in-memory Go values: a time
//! becomes its RFC 3339 text (fraction trimmed, the parsed offset kept, `Z` for UTC), which
//! is what Conduit's record shows once serialised; and a NaN or infinite float, which JSON
//! cannot hold, fails the record.

use crate::gofmt::{go_float, go_sprint, go_sprint_map, GoFloat, Numbers};
use crate::params::{
    invalid, key_or_payload_field, reference, required_field, setting, under_key_or_payload,
    with_schema_parameters, KEY_OR_PAYLOAD_PATTERN,
};
use crate::per_record::{PerRecord, RecordProcessor};
use crate::reference::{FieldValue, Reference};
use crate::{AUTHOR, VERSION};
use culvert_domain::{parse_bool, Data, Record};
use culvert_plugins::processor::{Processor, ProcessorPlugin, ProcessorSpecification};
use culvert_plugins::spec::{Parameter, ParameterType, Validation};
use culvert_plugins::{PluginError, Settings};
use serde_json::{Number, Value};
use std::fmt::Write as _;

/// The values `type` may take.
const TYPES: [&str; 5] = ["string", "int", "float", "bool", "time"];
/// Go's `time.RFC3339Nano` layout, as its parse errors name it.
const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";
const SYNTAX: &str = "invalid syntax";
const RANGE: &str = "value out of range";

/// `field.convert`: convert a key or payload field to another type.
pub struct FieldConvert {
    spec: ProcessorSpecification,
}

impl FieldConvert {
    /// The plugin.
    pub fn new() -> Self {
        let parameters = with_schema_parameters(
            vec![
                key_or_payload_field(
                    "The field to convert: a reference into structured data under `.Key` or \
                     `.Payload` (e.g. `.Payload.After.age`).",
                ),
                Parameter::new(
                    "type",
                    ParameterType::String,
                    "The type the field gets: `string`, `int`, `float`, `bool` or `time`.",
                )
                .validate(Validation::Required)
                .validate(Validation::Inclusion(
                    TYPES.iter().map(|t| (*t).to_owned()).collect(),
                )),
            ],
            "true",
        );
        Self {
            spec: ProcessorSpecification {
                name: "field.convert",
                summary: "Change the type of one field (string, int, float, bool or time).",
                description: "Changes the type of one field, e.g. a string holding digits \
                              into an integer. Any of `string`, `int`, `float`, `bool` and \
                              `time` can be converted into any other; a boolean becomes 1 or \
                              0 as a number, and a whole number becomes a time as nanoseconds \
                              since the Unix epoch. Only fields in structured data under \
                              `.Key`, `.Payload.Before` and `.Payload.After` can be \
                              converted; decode raw JSON first (`json.decode`).",
                version: VERSION,
                author: AUTHOR,
                parameters,
                standalone: false,
            },
        }
    }
}

impl Default for FieldConvert {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessorPlugin for FieldConvert {
    fn specification(&self) -> &ProcessorSpecification {
        &self.spec
    }

    fn configure(&self, settings: &Settings) -> Result<Box<dyn Processor>, PluginError> {
        let field = required_field(settings)?;
        if !under_key_or_payload(field) {
            let problem =
                format!("{field:?} must match {KEY_OR_PAYLOAD_PATTERN:?} (.Key or .Payload)");
            return Err(invalid("field", problem));
        }
        let field = reference("field", field)?;
        let ty = setting(settings, "type");
        let Some(target) = Target::parse(ty) else {
            return Err(invalid(
                "type",
                format!("{ty:?} must be one of {}", TYPES.join(", ")),
            ));
        };
        Ok(Box::new(PerRecord(ConvertProcessor { field, target })))
    }
}

/// The type to convert to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    String,
    Int,
    Float,
    Bool,
    Time,
}

impl Target {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "int" => Self::Int,
            "float" => Self::Float,
            "bool" => Self::Bool,
            "time" => Self::Time,
            _ => return None,
        })
    }

    /// Read `text` as this type, Go's way.
    fn read(self, text: &str) -> Result<FieldValue, String> {
        match self {
            Self::String => Ok(FieldValue::Text(text.to_owned())),
            Self::Int => go_atoi(text).map(|n| FieldValue::Json(n.into())),
            Self::Float => {
                let float = go_parse_float(text)?;
                Number::from_f64(float)
                    .map(|n| FieldValue::Json(Value::Number(n)))
                    .ok_or_else(|| {
                        format!(
                            "{} reads as the float {}, which structured data (JSON) cannot hold",
                            go_quote(text),
                            go_float(float, GoFloat::Verb)
                        )
                    })
            }
            Self::Bool => parse_bool(text)
                .map(|b| FieldValue::Json(Value::Bool(b)))
                .ok_or_else(|| format!("strconv.ParseBool: parsing {}: {SYNTAX}", go_quote(text))),
            Self::Time => match go_atoi(text) {
                Ok(nanos) => Ok(FieldValue::Text(unix_nanos_text(nanos))),
                Err(_) => parse_time(text).map(FieldValue::Text),
            },
        }
    }
}

struct ConvertProcessor {
    field: Reference,
    target: Target,
}

impl RecordProcessor for ConvertProcessor {
    fn process_record(&self, record: &mut Record) -> Result<(), String> {
        let current = self.field.get(record).map_err(|e| e.0)?;
        let value = self.target.read(&go_text(&current, self.target))?;
        self.field.set_value(record, value).map_err(|e| e.0)
    }
}

/// The text Conduit makes of a field's value before reading it as the target type.
fn go_text(value: &FieldValue, target: Target) -> String {
    match value {
        FieldValue::Json(Value::String(text)) | FieldValue::Text(text) => text.clone(),
        FieldValue::Json(Value::Bool(b)) if matches!(target, Target::Int | Target::Float) => {
            u8::from(*b).to_string()
        }
        FieldValue::Json(Value::Number(n)) => number_text(n),
        FieldValue::Json(other) => go_sprint(other, Numbers::AsHeld),
        FieldValue::Bytes(bytes) | FieldValue::Position(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        FieldValue::Data(data) => data_v(data.as_ref()),
        FieldValue::Payload(change) => format!(
            "{{{} {}}}",
            data_v(change.before.as_ref()),
            data_v(change.after.as_ref())
        ),
        FieldValue::Operation(op) => op.as_str().to_owned(),
        FieldValue::Metadata(metadata) => go_sprint(&serde_json::json!(metadata), Numbers::AsHeld),
    }
}

/// A number alone as Go prints an `int` (digits) or a `float64` (in its shortest
/// positional form, `FormatFloat(f, 'f', -1, 64)`, which is Rust's `Display`).
fn number_text(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => f.to_string(),
        _ => n.to_string(),
    }
}

/// Go's `%v` of record data: `<nil>`, raw bytes as `[1 2 3]`, structured as `map[..]`.
fn data_v(data: Option<&Data>) -> String {
    match data {
        None => "<nil>".to_owned(),
        Some(Data::Raw(bytes)) => go_sprint(&serde_json::json!(bytes), Numbers::AsHeld),
        Some(Data::Structured(map)) => go_sprint_map(map, Numbers::AsHeld),
    }
}

/// Go's `strconv.Quote`. Which characters Go deems printable is approximated: controls,
/// spaces other than ' ' and the common invisible format characters are escaped.
fn go_quote(s: &str) -> String {
    const ESCAPES: [(char, &str); 9] = [
        ('"', "\\\""),
        ('\\', "\\\\"),
        ('\x07', "\\a"),
        ('\x08', "\\b"),
        ('\x0c', "\\f"),
        ('\n', "\\n"),
        ('\r', "\\r"),
        ('\t', "\\t"),
        ('\x0b', "\\v"),
    ];
    let invisible = |c: char| {
        c.is_control()
            || (c.is_whitespace() && c != ' ')
            || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}')
            || matches!(c, '\u{2060}'..='\u{2064}' | '\u{feff}')
    };
    let mut out = String::from('"');
    for c in s.chars() {
        let n = c as u32;
        let _ = match ESCAPES.iter().find(|(k, _)| *k == c) {
            Some((_, escaped)) => write!(out, "{escaped}"),
            None if !invisible(c) => write!(out, "{c}"),
            None if n < 0x20 || n == 0x7f => write!(out, "\\x{n:02x}"),
            None if n < 0x10000 => write!(out, "\\u{n:04x}"),
            None => write!(out, "\\U{n:08x}"),
        };
    }
    out.push('"');
    out
}

/// Go's `strconv.Atoi` on a 64-bit platform.
fn go_atoi(s: &str) -> Result<i64, String> {
    let fail = |why: &str| format!("strconv.Atoi: parsing {}: {why}", go_quote(s));
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(fail(SYNTAX));
    }
    // Digits are read in order and the first problem met is the one reported.
    let mut magnitude: u64 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return Err(fail(SYNTAX));
        }
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| fail(RANGE))?;
    }
    let signed = if negative {
        -i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    i64::try_from(signed).map_err(|_| fail(RANGE))
}

/// Go's `strconv.ParseFloat(s, 64)`.
fn go_parse_float(s: &str) -> Result<f64, String> {
    let fail = |why: &str| format!("strconv.ParseFloat: parsing {}: {why}", go_quote(s));
    let lower = s.to_ascii_lowercase();
    let unsigned = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    let value = if lower == "nan" {
        f64::NAN
    } else if unsigned == "inf" || unsigned == "infinity" {
        f64::INFINITY * if lower.starts_with('-') { -1.0 } else { 1.0 }
    } else {
        let scanned = scan_float(s.as_bytes()).ok_or_else(|| fail(SYNTAX))?;
        let value = match scanned {
            Scanned::Hex { .. } => hex_float(scanned),
            // Go's syntax without `_` is also Rust's, and both round correctly.
            Scanned::Decimal => s.replace('_', "").parse().map_err(|_| fail(SYNTAX))?,
        };
        if value.is_infinite() {
            return Err(fail(RANGE));
        }
        value
    };
    Ok(value)
}

/// A float literal that follows Go's syntax; a hexadecimal one with its mantissa (the
/// first 16 digits; `sticky` if a later one is not 0) and binary exponent.
#[derive(Clone, Copy)]
enum Scanned {
    Decimal,
    Hex {
        negative: bool,
        mantissa: u64,
        exponent: i64,
        sticky: bool,
    },
}

/// Check all of `s` against Go's float syntax (`None`: a syntax error).
fn scan_float(s: &[u8]) -> Option<Scanned> {
    let negative = s.first() == Some(&b'-');
    let mut i = usize::from(matches!(s.first(), Some(b'+' | b'-')));
    let hex = i + 2 < s.len() && s[i] == b'0' && s[i + 1].eq_ignore_ascii_case(&b'x');
    let (base, max_digits, exponent_char) = if hex { (16, 16, b'p') } else { (10, 19, b'e') };
    i += if hex { 2 } else { 0 };
    let (mut underscores, mut dot, mut any_digit) = (false, false, false);
    let (mut digits, mut kept, mut point, mut mantissa, mut sticky) =
        (0i64, 0i64, 0i64, 0u64, false);
    while let Some(&c) = s.get(i) {
        let digit = (c as char).to_digit(base);
        match (c, digit) {
            (b'_', _) => underscores = true,
            (b'.', _) if dot => break,
            (b'.', _) => {
                dot = true;
                point = digits;
            }
            (b'0', _) if digits == 0 => {
                // Leading zeros only move the point.
                any_digit = true;
                point -= 1;
            }
            (_, Some(d)) => {
                any_digit = true;
                digits += 1;
                if kept < max_digits {
                    mantissa = mantissa * u64::from(base) + u64::from(d);
                    kept += 1;
                } else if d != 0 {
                    sticky = true;
                }
            }
            _ => break,
        }
        i += 1;
    }
    if !any_digit {
        return None;
    }
    point = if dot { point } else { digits };
    if hex {
        point *= 4;
        kept *= 4;
    }
    if s.get(i).map(u8::to_ascii_lowercase) == Some(exponent_char) {
        i += 1;
        let sign = if s.get(i) == Some(&b'-') { -1 } else { 1 };
        i += usize::from(matches!(s.get(i), Some(b'+' | b'-')));
        if !s.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let mut e: i64 = 0;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit() || **c == b'_') {
            if c == b'_' {
                underscores = true;
            } else if e < 10_000 {
                e = e * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        point += e * sign;
    } else if hex {
        return None; // a hexadecimal mantissa needs a `p` exponent
    }
    if i != s.len() || (underscores && !underscores_ok(s)) {
        return None;
    }
    Some(if hex {
        let exponent = if mantissa == 0 { 0 } else { point - kept };
        Scanned::Hex {
            negative,
            mantissa,
            exponent,
            sticky,
        }
    } else {
        Scanned::Decimal
    })
}

/// Go's rule for `_` in numbers: only between digits, or after a base prefix.
fn underscores_ok(s: &[u8]) -> bool {
    let s = s
        .strip_prefix(b"+")
        .or_else(|| s.strip_prefix(b"-"))
        .unwrap_or(s);
    let prefixed = s.len() >= 2 && s[0] == b'0' && matches!(s[1] | 0x20, b'b' | b'o' | b'x');
    let hex = prefixed && s[1] | 0x20 == b'x';
    // What came last: b'^' the start, b'0' a digit (or the prefix), b'_', b'!' other.
    let mut saw = if prefixed { b'0' } else { b'^' };
    for &c in &s[if prefixed { 2 } else { 0 }..] {
        saw = match c {
            _ if c.is_ascii_digit() || (hex && (b'a'..=b'f').contains(&(c | 0x20))) => b'0',
            b'_' if saw != b'0' => return false,
            b'_' => b'_',
            _ if saw == b'_' => return false,
            _ => b'!',
        };
    }
    saw != b'_'
}

/// The float64 nearest `mantissa * 2^exponent`, ties to even (Go's rounding of hex
/// literals, subnormals included); infinite beyond the range.
fn hex_float(scanned: Scanned) -> f64 {
    let Scanned::Hex {
        negative,
        mantissa: mut m,
        exponent,
        sticky,
    } = scanned
    else {
        unreachable!("only hexadecimal literals are rounded here")
    };
    let mut exp = exponent + 52;
    // 53 bits plus two rounding bits, the last one sticky; fewer when subnormal.
    while m != 0 && m >> 54 == 0 {
        m <<= 1;
        exp -= 1;
    }
    m |= u64::from(sticky);
    while m >> 55 != 0 || (m > 1 && exp < -1024) {
        m = (m >> 1) | (m & 1);
        exp += 1;
    }
    let round = (m & 3) | ((m >> 2) & 1);
    m >>= 2;
    exp += 2;
    if round == 3 {
        m += 1;
        if m == 1 << 53 {
            m >>= 1;
            exp += 1;
        }
    }
    if m >> 52 == 0 {
        exp = -1023;
    }
    if exp > 1023 {
        return f64::INFINITY * if negative { -1.0 } else { 1.0 };
    }
    let biased = u64::try_from(exp + 1023).expect("the exponent is in range");
    f64::from_bits((m & ((1 << 52) - 1)) | (biased << 52) | (u64::from(negative) << 63))
}

/// A Unix time in nanoseconds as RFC 3339 text in UTC.
fn unix_nanos_text(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let of_day = seconds.rem_euclid(86_400);
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    rfc3339_text([year, month, day, hour, minute, second], fraction, 0)
}

/// The date `days` after 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = shifted_month + if shifted_month < 10 { 3 } else { -9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `[year, month, day, hour, minute, second]`, nanoseconds and a UTC offset in seconds as
/// Go's `RFC3339Nano` prints them.
fn rfc3339_text(fields: [i64; 6], nanos: i64, offset: i64) -> String {
    let [year, month, day, hour, minute, second] = fields;
    let mut out = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}");
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    if offset == 0 {
        out.push('Z');
    } else {
        let minutes = offset.abs() / 60;
        let sign = if offset < 0 { '-' } else { '+' };
        let _ = write!(out, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
    }
    out
}

/// Go's `time.Parse(time.RFC3339Nano, value)`, the result as RFC 3339 text in the parsed
/// offset. Errors are Go's.
fn parse_time(value: &str) -> Result<String, String> {
    let whole = value.as_bytes();
    let quoted = time_quote(whole);
    let cannot = |rest: &[u8], element: &str| {
        format!(
            "parsing time {quoted} as {}: cannot parse {} as {}",
            time_quote(RFC3339_NANO.as_bytes()),
            time_quote(rest),
            time_quote(element.as_bytes())
        )
    };
    let out_of_range = |what: &str| format!("parsing time {quoted}: {what} out of range");

    let mut rest = whole;
    if rest.len() < 4 || !rest[..4].iter().all(u8::is_ascii_digit) {
        return Err(cannot(rest, "2006"));
    }
    let mut fields = [0i64; 6];
    fields[0] = rest[..4]
        .iter()
        .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
    rest = &rest[4..];
    // Separator, layout element, whether two digits are needed, highest value, its name.
    let elements = [
        (b'-', "01", true, 12, "month"),
        (b'-', "02", true, 99, "day"),
        (b'T', "15", false, 23, "hour"),
        (b':', "04", true, 59, "minute"),
        (b':', "05", true, 59, "second"),
    ];
    for (i, (separator, element, fixed, max, name)) in elements.into_iter().enumerate() {
        rest = match rest.split_first() {
            Some((c, after)) if *c == separator => after,
            _ => return Err(cannot(rest, &char::from(separator).to_string())),
        };
        let (n, after) = getnum(rest, fixed).ok_or_else(|| cannot(rest, element))?;
        if n > max || (name == "month" && n == 0) {
            return Err(out_of_range(name));
        }
        fields[i + 1] = n;
        rest = after;
    }

    // Optional fraction: any number of digits after `.` or `,`; the first nine count.
    let mut nanos = 0;
    if rest.len() >= 2 && matches!(rest[0], b'.' | b',') && rest[1].is_ascii_digit() {
        let end = 1 + rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        let kept = &rest[1..end.min(10)];
        let scale = 10i64.pow(9 - u32::try_from(kept.len()).expect("at most 9 digits"));
        nanos = kept.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')) * scale;
        rest = &rest[end..];
    }

    // `Z` or `±hh:mm`; Go allows up to 24 hours and 60 minutes.
    let offset = if let Some(after) = rest.strip_prefix(b"Z") {
        rest = after;
        0
    } else {
        let hold = rest;
        if rest.len() < 6 || rest[3] != b':' {
            return Err(cannot(hold, "Z07:00"));
        }
        let hours = getnum(&rest[1..3], true).map(|(n, _)| n);
        let minutes = hours.and(getnum(&rest[4..6], true).map(|(n, _)| n));
        let (h, m) = (hours.unwrap_or(0), minutes.unwrap_or(0));
        if m > 60 {
            return Err(out_of_range("time zone offset minute"));
        }
        if h > 24 {
            return Err(out_of_range("time zone offset hour"));
        }
        let sign = match (rest[0], minutes) {
            (b'+', Some(_)) => 1,
            (b'-', Some(_)) => -1,
            _ => return Err(cannot(hold, "Z07:00")),
        };
        rest = &rest[6..];
        sign * (h * 60 + m) * 60
    };
    if !rest.is_empty() {
        return Err(format!(
            "parsing time {quoted}: extra text: {}",
            time_quote(rest)
        ));
    }
    if fields[2] < 1 || fields[2] > days_in(fields[1], fields[0]) {
        return Err(out_of_range("day"));
    }
    Ok(rfc3339_text(fields, nanos, offset))
}

/// Go's `time` number reader: one or two digits (exactly two when `fixed`).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let digit = |i: usize| {
        s.get(i)
            .filter(|b| b.is_ascii_digit())
            .map(|b| i64::from(b - b'0'))
    };
    let first = digit(0)?;
    match digit(1) {
        Some(second) => Some((first * 10 + second, &s[2..])),
        None if fixed => None,
        None => Some((first, &s[1..])),
    }
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The `time` package's quoting: `"` and `\` escaped, control and non-ASCII bytes as `\xNN`.
fn time_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        if !(b' '..0x80).contains(&b) {
            let _ = write!(out, "\\x{b:02x}");
        } else {
            if b == b'"' || b == b'\\' {
                out.push('\\');
            }
            out.push(char::from(b));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        assert_parameters, configure, refusal, run, settings, validated_settings,
    };
    use culvert_domain::{Change, Operation};
    use culvert_plugins::processor::Outcome;
    use serde_json::json;

    /// Structured data from a JSON object, none from null.
    fn data(value: Value) -> Option<Data> {
        match value {
            Value::Object(map) => Some(Data::Structured(map.into())),
            Value::Null => None,
            other => panic!("not an object: {other}"),
        }
    }

    fn record(operation: Operation, key: Value, after: Value) -> Record {
        let payload = Change {
            before: None,
            after: data(after),
        };
        Record {
            operation,
            key: data(key),
            payload,
            ..Record::default()
        }
    }

    /// Validate the settings (defaults applied) and configure, as the registry does.
    fn processor(field: &str, ty: &str) -> Box<dyn Processor> {
        configure(&FieldConvert::new(), &[("field", field), ("type", ty)]).unwrap()
    }

    /// Convert `.Key.id` holding `id` (JSON text): its new value, or the record's error.
    fn convert_id(ty: &str, id: &str) -> Result<Value, String> {
        let id: Value = serde_json::from_str(id).unwrap();
        let mut records = [record(Operation::Create, json!({ "id": id }), Value::Null)];
        match run(processor(".Key.id", ty).as_mut(), &mut records).remove(0) {
            Outcome::Keep => Ok(match &records[0].key {
                Some(Data::Structured(key)) => key["id"].clone(),
                other => panic!("key is {other:?}"),
            }),
            Outcome::Fail(error) => Err(error),
            other => panic!("{other:?}"),
        }
    }

    fn failed(outcome: &Outcome, want: &str) -> bool {
        matches!(outcome, Outcome::Fail(e) if e.contains(want))
    }

    #[test]
    #[rustfmt::skip]
    fn conduit_examples() {
        let (create, update) = (Operation::Create, Operation::Update);
        let examples = [
            ("Convert `string` to `int`", [".Key.id", "int"],
             record(update, json!({"id": "123"}), json!({"foo": "bar"})),
             record(update, json!({"id": 123}), json!({"foo": "bar"}))),
            ("Convert `int` to `bool`", [".Payload.After.done", "bool"],
             record(update, json!({"id": "123"}), json!({"done": 1})),
             record(update, json!({"id": "123"}), json!({"done": true}))),
            ("Convert `float` to `string`", [".Key.id", "string"],
             record(update, json!({"id": 123.345}), json!({"foo": "bar"})),
             record(update, json!({"id": "123.345"}), json!({"foo": "bar"}))),
            ("Convert `int` to `time`", [".Payload.After.createdAt", "time"],
             record(create, json!({"id": 123.345}), json!({"createdAt": 1704198896123456789i64})),
             record(create, json!({"id": 123.345}), json!({"createdAt": "2024-01-02T12:34:56.123456789Z"}))),
        ];
        for (summary, [field, ty], have, want) in examples {
            let mut records = [have];
            let outcomes = run(processor(field, ty).as_mut(), &mut records);
            assert_eq!(outcomes, [Outcome::Keep], "{summary}");
            assert_eq!(records, [want], "{summary}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn conversions_conduit_tests_and_go_edge_cases() {
        for (ty, have, want) in [
            // Conduit's own tests (all but `[]byte` to string: JSON has no bytes).
            ("int", r#""54""#, "54"), ("float", r#""54""#, "54.0"), ("bool", r#""1""#, "true"),
            ("string", r#""54""#, r#""54""#), ("int", "54", "54"), ("float", "54", "54.0"),
            ("bool", "1", "true"), ("string", "54", r#""54""#), ("int", "54.0", "54"),
            ("float", "54.0", "54.0"), ("bool", "1.0", "true"), ("string", "54.0", r#""54""#),
            ("int", "true", "1"), ("float", "false", "0.0"), ("bool", "true", "true"),
            ("string", "false", r#""false""#),
            ("time", "1611254412345678999", r#""2021-01-21T18:40:12.345678999Z""#),
            ("time", r#""2021-01-21T18:40:12.345678999Z""#, r#""2021-01-21T18:40:12.345678999Z""#),
            // Go's strconv and time rules, checked against Go.
            ("int", r#""+0012""#, "12"), ("int", r#""-9223372036854775808""#, "-9223372036854775808"),
            ("float", r#""1_000.5""#, "1000.5"), ("float", r#"".5""#, "0.5"),
            ("float", r#""1e1_0""#, "1e10"), ("float", r#""1e-400""#, "0.0"),
            ("float", r#""0x1p-2""#, "0.25"), ("float", r#""0X_1P+2""#, "4.0"),
            ("float", r#""0x1p-1074""#, "5e-324"), ("float", r#""0x3p-1076""#, "5e-324"),
            ("float", r#""0x1.8p-1074""#, "1e-323"),
            ("float", r#""0x1.fffffffffffff7ffp1023""#, "1.7976931348623157e308"),
            ("float", r#""0x123456789abcdef12p0""#, "2.0988295479420645e19"),
            ("float", r#""0x1.00000000000008p0""#, "1.0"),
            ("float", r#""0x1.000000000000081p0""#, "1.0000000000000002"),
            ("float", r#""0x1.00000000000018p0""#, "1.0000000000000004"),
            ("bool", r#""T""#, "true"), ("bool", "0", "false"),
            ("string", "1e21", r#""1000000000000000000000""#),
            ("string", "-0.00000015", r#""-0.00000015""#), ("string", "null", r#""<nil>""#),
            ("string", r#"{"b": [1234567.0, "x y", null], "a": 1.5}"#,
             r#""map[a:1.5 b:[1.234567e+06 x y <nil>]]""#),
            ("string", "[1, 0.00001, -0.00000015]", r#""[1 1e-05 -1.5e-07]""#),
            ("time", "-1", r#""1969-12-31T23:59:59.999999999Z""#),
            ("time", "-9223372036854775808", r#""1677-09-21T00:12:43.145224192Z""#),
            ("time", r#""2021-01-21T8:40:12,5+02:60""#, r#""2021-01-21T08:40:12.5+03:00""#),
            ("time", r#""2021-01-21T18:40:12.1234567891234-00:00""#, r#""2021-01-21T18:40:12.123456789Z""#),
            ("time", r#""2024-02-29T00:00:00.000-00:30""#, r#""2024-02-29T00:00:00-00:30""#),
        ] {
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(convert_id(ty, have), Ok(want), "{have} to {ty}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn conversions_that_fail_the_record() {
        let layout = r#"as "2006-01-02T15:04:05.999999999Z07:00": cannot parse"#;
        for (ty, have, want) in [
            // Conduit's own tests.
            ("int", r#""9999999999999999999""#, r#"strconv.Atoi: parsing "9999999999999999999": value out of range"#.to_owned()),
            ("int", r#""nan""#, r#"strconv.Atoi: parsing "nan": invalid syntax"#.to_owned()),
            ("int", "9999999999999999999.0", r#"strconv.Atoi: parsing "10000000000000000000": value out of range"#.to_owned()),
            ("time", r#""21.01.2021 18:40:12""#, format!(r#"parsing time "21.01.2021 18:40:12" {layout} "21.01.2021 18:40:12" as "2006""#)),
            // More of Go's rules, checked against Go.
            ("int", "123.345", r#"strconv.Atoi: parsing "123.345": invalid syntax"#.to_owned()),
            ("int", r#""1_000""#, r#"strconv.Atoi: parsing "1_000": invalid syntax"#.to_owned()),
            ("int", r#""a\"\n\u200b\u00a0\u007f\u0000é""#, r#"strconv.Atoi: parsing "a\"\n\u200b\u00a0\x7f\x00é": invalid syntax"#.to_owned()),
            ("float", r#""1e400""#, r#"strconv.ParseFloat: parsing "1e400": value out of range"#.to_owned()),
            ("float", r#""0x1""#, r#"strconv.ParseFloat: parsing "0x1": invalid syntax"#.to_owned()),
            ("float", r#""0x1_p0""#, r#"strconv.ParseFloat: parsing "0x1_p0": invalid syntax"#.to_owned()),
            ("float", r#""1_e5""#, r#"strconv.ParseFloat: parsing "1_e5": invalid syntax"#.to_owned()),
            ("float", r#""+nan""#, r#"strconv.ParseFloat: parsing "+nan": invalid syntax"#.to_owned()),
            ("float", r#""Infinity""#, r#""Infinity" reads as the float +Inf, which structured data (JSON) cannot hold"#.to_owned()),
            ("bool", r#""yes""#, r#"strconv.ParseBool: parsing "yes": invalid syntax"#.to_owned()),
            ("bool", "2", r#"strconv.ParseBool: parsing "2": invalid syntax"#.to_owned()),
            ("time", r#""é""#, format!(r#"parsing time "\xc3\xa9" {layout} "\xc3\xa9" as "2006""#)),
            ("time", r#""2021-00-21T18:40:12Z""#, r#"parsing time "2021-00-21T18:40:12Z": month out of range"#.to_owned()),
            ("time", r#""2021-02-29T18:40:12Z""#, r#"parsing time "2021-02-29T18:40:12Z": day out of range"#.to_owned()),
            ("time", r#""2021-01-21T18:40:12Zjunk""#, r#"parsing time "2021-01-21T18:40:12Zjunk": extra text: "junk""#.to_owned()),
            ("time", r#""2021-01-21T18:40:12+25:00""#, r#"parsing time "2021-01-21T18:40:12+25:00": time zone offset hour out of range"#.to_owned()),
            ("time", r#""2021-01-21t18:40:12Z""#, format!(r#"parsing time "2021-01-21t18:40:12Z" {layout} "t18:40:12Z" as "T""#)),
            ("time", r#""2021-1-21T18:40:12Z""#, format!(r#"parsing time "2021-1-21T18:40:12Z" {layout} "1-21T18:40:12Z" as "01""#)),
            ("time", r#""2021-01-21T18:40:12""#, format!(r#"parsing time "2021-01-21T18:40:12" {layout} "" as "Z07:00""#)),
            ("time", r#""2021-01-21T18:40:12+02:0x""#, format!(r#"parsing time "2021-01-21T18:40:12+02:0x" {layout} "+02:0x" as "Z07:00""#)),
        ] {
            assert_eq!(convert_id(ty, have), Err(want), "{have} to {ty}");
        }
    }

    #[test]
    fn references_into_the_record() {
        // A missing field reads as `<nil>`; the objects on the way are created.
        let mut records = [record(Operation::Create, Value::Null, Value::Null)];
        let outcomes = run(
            processor(".Payload.After.a.b", "string").as_mut(),
            &mut records,
        );
        assert_eq!(outcomes, [Outcome::Keep]);
        assert_eq!(records[0].payload.after, data(json!({"a": {"b": "<nil>"}})));
        // Whole data reads as Go prints it (raw data as its bytes) and is set as raw data.
        let mut raw = record(Operation::Create, Value::Null, json!({"x": 1}));
        raw.key = Some(Data::Raw(b"123".to_vec()));
        let mut records = [raw.clone(), raw.clone(), raw.clone(), raw];
        run(processor(".Key", "string").as_mut(), &mut records[..1]);
        assert_eq!(records[0].key, Some(Data::Raw(b"[49 50 51]".to_vec())));
        run(
            processor(".Payload.After", "string").as_mut(),
            &mut records[1..2],
        );
        assert_eq!(
            records[1].payload.after,
            Some(Data::Raw(b"map[x:1]".to_vec()))
        );
        let outcomes = run(processor(".Key.id", "int").as_mut(), &mut records[2..3]);
        assert!(
            failed(&outcomes[0], ".Key does not contain structured data"),
            "{outcomes:?}"
        );
        let outcomes = run(processor(".Payload", "string").as_mut(), &mut records[3..]);
        assert!(
            failed(&outcomes[0], "can't set type string for .Payload"),
            "{outcomes:?}"
        );
        // One record failing does not stop the others.
        let mut records = [
            record(Operation::Create, json!({"id": "x"}), Value::Null),
            record(Operation::Create, json!({"id": "7"}), Value::Null),
        ];
        let outcomes = run(processor(".Key.id", "int").as_mut(), &mut records);
        assert!(failed(&outcomes[0], "invalid syntax") && outcomes[1] == Outcome::Keep);
        assert_eq!(records[1].key, data(json!({"id": 7})));
    }

    #[test]
    #[rustfmt::skip]
    fn settings_are_validated() {
        let plugin = FieldConvert::new();
        assert_parameters(&plugin, &[("field", ""), ("type", "")], "true");
        let pairs = [("field", ".Payload.After.foo"), ("type", "int")];
        configure(&plugin, &pairs).unwrap();
        let validated = validated_settings(&plugin, &pairs);
        assert_eq!(validated["sdk.schema.encode.payload.enabled"], "true", "defaults applied");
        // Conduit's configuration tests, and more.
        for (pairs, key, problem) in [
            (&[("field", ".Metadata.foo"), ("type", "int")][..], "field", "must match"),
            (&[("field", "aPayload.foo"), ("type", "int")], "field", "must match"),
            (&[("field", ".payload.after.foo"), ("type", "int")], "field", "must match"),
            (&[("field", ".Key.foo"), ("type", "map")], "type", "must be one of"),
            (&[], "field", "required"),
            (&[("field", ".Key.foo")], "type", "required"),
            (&[("field", ".Payload.After."), ("type", "int")], "field", "invalid reference"),
            (&[("field", ".Payloads"), ("type", "int")], "field", "unexpected field"),
        ] {
            let error = refusal(&plugin, pairs);
            assert!(error.contains(&format!("{key:?}")) && error.contains(problem), "{pairs:?}: {error}");
        }
        // Unvalidated settings are checked by `configure` too, naming the setting.
        for (pairs, key) in [
            (&[("field", ".Metadata.foo"), ("type", "int")][..], "field"),
            (&[("type", "int")], "field"),
            (&[("field", ".Key.foo"), ("type", "map")], "type"),
        ] {
            let Err(PluginError::InvalidSettings(error)) = plugin.configure(&settings(pairs)) else {
                panic!("{pairs:?} accepted")
            };
            assert_eq!(error.0[0].key, key, "{pairs:?}");
        }
    }
}
