//! Printing as Go's `fmt` does: `%v` of every value, `printf` verbs and flags, `%q` quoting.

use super::*;

/// Write an action's value: Go prints a missing or nil value as `<no value>`.
pub(crate) fn write_action(out: &mut String, v: &Value<'_>) {
    match v {
        Value::Str(s) => out.push_str(s),
        Value::Missing | Value::Nil => out.push_str("<no value>"),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        other => fmt_value(out, 'v', &Spec::default(), other, 0),
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) minus: bool,
    pub(crate) plus: bool,
    pub(crate) sharp: bool,
    pub(crate) space: bool,
    pub(crate) zero: bool,
    pub(crate) plus_v: bool,
    pub(crate) width: Option<usize>,
    pub(crate) prec: Option<usize>,
}

impl Spec {
    /// No flags, width or precision.
    pub(crate) fn is_plain(&self) -> bool {
        !(self.minus || self.plus || self.sharp || self.space || self.zero)
            && self.width.is_none()
            && self.prec.is_none()
    }
}

pub(crate) fn push_n(out: &mut String, c: char, n: usize) {
    out.extend(std::iter::repeat_n(c, n));
}

/// Pad to the width (in characters): spaces, or zeros on the left with the `0` flag.
pub(crate) fn pad(out: &mut String, s: &str, spec: &Spec) {
    let Some(width) = spec.width else {
        out.push_str(s);
        return;
    };
    let n = s.chars().count();
    if n >= width {
        out.push_str(s);
    } else if spec.minus {
        out.push_str(s);
        push_n(out, ' ', width - n);
    } else {
        push_n(out, if spec.zero { '0' } else { ' ' }, width - n);
        out.push_str(s);
    }
}

/// Pad a number: zero padding goes between the sign and the digits.
pub(crate) fn pad_number(out: &mut String, sign: &str, digits: &str, spec: &Spec, zero: bool) {
    let n = sign.len() + digits.len();
    match spec.width {
        Some(width) if n < width => {
            if spec.minus {
                out.push_str(sign);
                out.push_str(digits);
                push_n(out, ' ', width - n);
            } else if zero {
                out.push_str(sign);
                push_n(out, '0', width - n);
                out.push_str(digits);
            } else {
                push_n(out, ' ', width - n);
                out.push_str(sign);
                out.push_str(digits);
            }
        }
        _ => {
            out.push_str(sign);
            out.push_str(digits);
        }
    }
}

/// Go's `%!verb(type=value)` for a verb that does not apply to the value.
pub(crate) fn bad_verb(out: &mut String, verb: char, v: &Value<'_>) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if is_nilish(v) {
        out.push_str("<nil>");
    } else {
        out.push_str(type_name(v));
        out.push('=');
        fmt_value(out, 'v', &Spec::default(), v, 0);
    }
    out.push(')');
}

/// Format a value with a verb, like Go's fmt (`depth` > 0 inside lists, maps and structs).
pub(crate) fn fmt_value(out: &mut String, verb: char, spec: &Spec, v: &Value<'_>, depth: usize) {
    if spec.is_plain() {
        match (verb, v) {
            ('v' | 's', Value::Str(s)) => return out.push_str(s),
            ('v' | 'd', Value::Int(i)) => {
                let _ = write!(out, "{i}");
                return;
            }
            _ => {}
        }
    }
    if verb == 'T' {
        pad(out, type_name(v), spec);
        return;
    }
    match v {
        Value::Missing | Value::Nil | Value::NilData => {
            if verb == 'v' || depth > 0 {
                pad(out, "<nil>", spec);
            } else {
                bad_verb(out, verb, v);
            }
        }
        Value::Bool(b) => {
            if matches!(verb, 't' | 'v') {
                pad(out, if *b { "true" } else { "false" }, spec);
            } else {
                bad_verb(out, verb, v);
            }
        }
        Value::Int(i) => fmt_int(out, verb, spec, *i, v),
        Value::Float(f) => fmt_float(out, verb, spec, *f, v),
        Value::Str(s) => fmt_str(out, verb, spec, s, v),
        Value::Raw(b) => match verb {
            's' | 'q' | 'x' | 'X' => fmt_str(out, verb, spec, &String::from_utf8_lossy(b), v),
            _ => fmt_byte_list(out, verb, spec, b),
        },
        Value::Position(b) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => {
                fmt_str(out, verb, spec, &String::from_utf8_lossy(b), v);
            }
            _ => fmt_byte_list(out, verb, spec, b),
        },
        Value::Operation(op) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => fmt_str(out, verb, spec, op.as_str(), v),
            _ => fmt_int(out, verb, spec, op_number(*op), v),
        },
        Value::List(l) => {
            out.push('[');
            for i in 0..l.len() {
                if i > 0 {
                    out.push(' ');
                }
                let item = l.get(i).unwrap_or(Value::Missing);
                fmt_value(out, verb, spec, &item, depth + 1);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, item)) in m.entries().into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_value(out, verb, spec, &Value::Str(Cow::Borrowed(&k)), depth + 1);
                out.push(':');
                fmt_value(out, verb, spec, &item, depth + 1);
            }
            out.push(']');
        }
        Value::Record(r) => {
            let fields = [
                ("Position", Value::Position(&r.position.0)),
                ("Operation", Value::Operation(r.operation)),
                ("Metadata", Value::Map(MapV::Meta(&r.metadata))),
                ("Key", data_value(&r.key)),
                ("Payload", Value::Change(&r.payload)),
            ];
            fmt_struct(out, verb, spec, &fields, depth);
        }
        Value::Time(t) => fmt_str(out, verb, spec, &t.to_go_string(), v),
        Value::Change(c) => {
            let fields = [
                ("Before", data_value(&c.before)),
                ("After", data_value(&c.after)),
            ];
            fmt_struct(out, verb, spec, &fields, depth);
        }
    }
}

/// A struct like Go prints it: `{a b}`, or `{A:a B:b}` for `%+v`.
pub(crate) fn fmt_struct(
    out: &mut String,
    verb: char,
    spec: &Spec,
    fields: &[(&str, Value<'_>)],
    depth: usize,
) {
    out.push('{');
    for (i, (name, item)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if spec.plus_v {
            out.push_str(name);
            out.push(':');
        }
        fmt_value(out, verb, spec, item, depth + 1);
    }
    out.push('}');
}

pub(crate) fn fmt_byte_list(out: &mut String, verb: char, spec: &Spec, bytes: &[u8]) {
    out.push('[');
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let v = Value::Int(i64::from(*b));
        fmt_int(out, verb, spec, i64::from(*b), &v);
    }
    out.push(']');
}

pub(crate) fn fmt_int(out: &mut String, verb: char, spec: &Spec, i: i64, orig: &Value<'_>) {
    let mag = i.unsigned_abs();
    let mut digits = match verb {
        'v' | 'd' => mag.to_string(),
        'b' => format!("{mag:b}"),
        'o' => format!("{mag:o}"),
        'x' => format!("{mag:x}"),
        'X' => format!("{mag:X}"),
        'c' => {
            pad(out, &rune(i).to_string(), spec);
            return;
        }
        'q' => {
            let mut s = String::from('\'');
            quote_char(&mut s, rune(i), '\'', spec.plus);
            s.push('\'');
            pad(out, &s, spec);
            return;
        }
        'U' => {
            let mut s = format!("U+{:04X}", i as u64);
            let c = rune(i);
            if spec.sharp && u32::try_from(i).is_ok_and(|u| u == c as u32) && is_printable(c) {
                let _ = write!(s, " '{c}'");
            }
            pad(
                out,
                &s,
                &Spec {
                    zero: false,
                    ..*spec
                },
            );
            return;
        }
        _ => {
            bad_verb(out, verb, orig);
            return;
        }
    };
    // Go pads with zeros through the precision: %.3d, or %03d when there is none.
    let no_zero = Spec {
        zero: false,
        ..*spec
    };
    let prec = match spec.prec {
        Some(0) if mag == 0 => {
            pad(out, "", &no_zero);
            return;
        }
        Some(p) => p,
        None if spec.zero && !spec.minus => spec.width.map_or(0, |w| {
            w.saturating_sub(usize::from(i < 0 || spec.plus || spec.space))
        }),
        None => 0,
    };
    if digits.len() < prec {
        digits.insert_str(0, &"0".repeat(prec - digits.len()));
    }
    let mut s = String::with_capacity(digits.len() + 3);
    if i < 0 {
        s.push('-');
    } else if spec.plus {
        s.push('+');
    } else if spec.space {
        s.push(' ');
    }
    if spec.sharp {
        match verb {
            'x' => s.push_str("0x"),
            'X' => s.push_str("0X"),
            'b' => s.push_str("0b"),
            'o' if !digits.starts_with('0') => s.push('0'),
            _ => {}
        }
    }
    s.push_str(&digits);
    pad(out, &s, &no_zero);
}

pub(crate) fn rune(i: i64) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

pub(crate) fn fmt_float(out: &mut String, verb: char, spec: &Spec, f: f64, orig: &Value<'_>) {
    if !matches!(verb, 'v' | 'g' | 'G' | 'f' | 'F' | 'e' | 'E') {
        bad_verb(out, verb, orig);
        return;
    }
    let a = f.abs();
    let upper = matches!(verb, 'E' | 'G');
    let body = if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        "Inf".to_owned()
    } else if matches!(verb, 'f' | 'F') {
        format!("{:.*}", spec.prec.unwrap_or(6), a)
    } else if matches!(verb, 'e' | 'E') {
        let (digits, exp) = exp_digits(a, spec.prec.unwrap_or(6));
        e_form(&digits, exp, upper)
    } else {
        format_g(a, spec.prec, upper)
    };
    let sign = if f.is_nan() {
        if spec.plus {
            "+"
        } else if spec.space {
            " "
        } else {
            ""
        }
    } else if f.is_sign_negative() {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else if f.is_infinite() {
        "+"
    } else {
        ""
    };
    let zero = spec.zero && !spec.minus && f.is_finite();
    pad_number(out, sign, &body, spec, zero);
}

/// Shortest decimal digits of a non-negative finite float and its decimal exponent
/// (the value is `d.ddd × 10^exp`).
pub(crate) fn shortest_digits(a: f64) -> (String, i32) {
    split_exp(&format!("{a:e}"))
}

/// `prec + 1` significant digits, correctly rounded, and the exponent.
pub(crate) fn exp_digits(a: f64, prec: usize) -> (String, i32) {
    split_exp(&format!("{a:.prec$e}"))
}

pub(crate) fn split_exp(s: &str) -> (String, i32) {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `d.ddde±XX`, Go's exponent form (at least two exponent digits).
pub(crate) fn e_form(digits: &str, exp: i32, upper: bool) -> String {
    let mut s = String::with_capacity(digits.len() + 6);
    s.push_str(&digits[..1.min(digits.len())]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    s.push(if upper { 'E' } else { 'e' });
    s.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        s.push('0');
    }
    let _ = write!(s, "{abs}");
    s
}

/// Plain decimal form of `0.digits × 10^(exp+1)`.
pub(crate) fn plain_form(digits: &str, exp: i32) -> String {
    let mut s = String::with_capacity(digits.len() + 8);
    if exp < 0 {
        s.push_str("0.");
        push_n(&mut s, '0', (-exp - 1) as usize);
        s.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            s.push_str(digits);
            push_n(&mut s, '0', int_len - digits.len());
        } else {
            s.push_str(&digits[..int_len]);
            s.push('.');
            s.push_str(&digits[int_len..]);
        }
    }
    s
}

/// Go's `%g` (and `%v`) of a non-negative finite float: shortest digits without a
/// precision, exponent form when the exponent is < -4 or >= the precision (6 for the
/// shortest form).
pub(crate) fn format_g(a: f64, prec: Option<usize>, upper: bool) -> String {
    let (digits, exp, eprec) = match prec {
        None => {
            let (digits, exp) = shortest_digits(a);
            (digits, exp, 6)
        }
        Some(p) => {
            let p = p.max(1);
            let (digits, exp) = exp_digits(a, p - 1);
            let trimmed = digits.trim_end_matches('0');
            let digits = if trimmed.is_empty() { "0" } else { trimmed }.to_owned();
            let nd = digits.len() as i32;
            let mut eprec = p as i32;
            if eprec > nd && nd > exp {
                eprec = nd;
            }
            (digits, exp, eprec)
        }
    };
    if exp < -4 || exp >= eprec {
        e_form(&digits, exp, upper)
    } else {
        plain_form(&digits, exp)
    }
}

pub(crate) fn fmt_str(out: &mut String, verb: char, spec: &Spec, s: &str, orig: &Value<'_>) {
    let truncated = match spec.prec {
        Some(p) => s.char_indices().nth(p).map_or(s, |(i, _)| &s[..i]),
        None => s,
    };
    match verb {
        'v' | 's' => pad(out, truncated, spec),
        'q' => {
            let mut q = String::with_capacity(truncated.len() + 2);
            if spec.sharp && can_backquote(truncated) {
                q.push('`');
                q.push_str(truncated);
                q.push('`');
            } else {
                quote_str(&mut q, truncated, spec.plus);
            }
            pad(out, &q, spec);
        }
        'x' | 'X' => {
            let bytes = match spec.prec {
                Some(p) => &s.as_bytes()[..p.min(s.len())],
                None => s.as_bytes(),
            };
            let mut hex = String::with_capacity(bytes.len() * 3);
            for (i, b) in bytes.iter().enumerate() {
                if spec.space && i > 0 {
                    hex.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    hex.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                let _ = if verb == 'x' {
                    write!(hex, "{b:02x}")
                } else {
                    write!(hex, "{b:02X}")
                };
            }
            pad(out, &hex, spec);
        }
        _ => bad_verb(out, verb, orig),
    }
}

/// Go's `fmt.Sprint` / `fmt.Sprintln`.
pub(crate) fn sprint(args: &[Value<'_>], line: bool) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::Str(_));
        if i > 0 && (line || (!is_string && !prev_string)) {
            out.push(' ');
        }
        fmt_value(&mut out, 'v', &Spec::default(), arg, 0);
        prev_string = is_string;
    }
    if line {
        out.push('\n');
    }
    out
}

pub(crate) const VERBS: &str = "vsdqtfFeEgGxXcobUT";
pub(crate) const MAX_WIDTH: usize = 1_000_000;

/// Go's `fmt.Sprintf` for the supported verbs; unsupported verbs and features are errors.
pub(crate) fn sprintf(format: &str, args: &[Value<'_>]) -> Result<String, String> {
    let mut out = String::with_capacity(format.len() + 16);
    let mut arg = 0;
    let mut rest = format;
    while let Some(pct) = rest.find('%') {
        out.push_str(&rest[..pct]);
        let mut chars = rest[pct + 1..].char_indices().peekable();
        let mut spec = Spec::default();
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            let mut n: Option<usize> = None;
            while let Some(&(_, c)) = chars.peek() {
                let Some(d) = c.to_digit(10) else { break };
                n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                chars.next();
            }
            n
        };
        spec.width = number(&mut chars);
        if chars.peek().is_some_and(|&(_, c)| c == '.') {
            chars.next();
            spec.prec = Some(number(&mut chars).unwrap_or(0));
        }
        let Some((offset, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            rest = "";
            break;
        };
        rest = &rest[pct + 1 + offset + verb.len_utf8()..];
        match verb {
            '%' => {
                out.push('%');
                continue;
            }
            '*' => return Err("printf: '*' widths and precisions are not supported".into()),
            '[' => return Err("printf: explicit argument indexes are not supported".into()),
            'v' if spec.sharp => return Err("printf: %#v is not supported".into()),
            'v' => {
                // %+v adds field names to structs; it is not a sign flag.
                spec.plus_v = spec.plus;
                spec.plus = false;
            }
            v if !VERBS.contains(v) => return Err(format!("printf: unsupported verb %{v}")),
            _ => {}
        }
        if spec.width.is_some_and(|w| w > MAX_WIDTH) || spec.prec.is_some_and(|p| p > MAX_WIDTH) {
            out.push_str("%!(BADWIDTH)");
            continue;
        }
        match args.get(arg) {
            Some(v) => fmt_value(&mut out, verb, &spec, v, 0),
            None => {
                out.push_str("%!");
                out.push(verb);
                out.push_str("(MISSING)");
            }
        }
        arg += 1;
    }
    out.push_str(rest);
    if arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, v) in args[arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            if is_nilish(v) {
                out.push_str("<nil>");
            } else {
                out.push_str(type_name(v));
                out.push('=');
                fmt_value(&mut out, 'v', &Spec::default(), v, 0);
            }
        }
        out.push(')');
    }
    Ok(out)
}

/// Go's `unicode.IsPrint`, approximately: no control, format, private-use or non-ASCII
/// space characters (unassigned code points are not detected).
pub(crate) fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    let format_or_private = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFDD0..=0xFDEF);
    !format_or_private && (u & 0xFFFE) != 0xFFFE
}

pub(crate) fn quote_char(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_printable(c) && (c.is_ascii() || !ascii_only) {
        out.push(c);
        return;
    }
    let _ = match c {
        '\x07' => write!(out, "\\a"),
        '\x08' => write!(out, "\\b"),
        '\x0c' => write!(out, "\\f"),
        '\n' => write!(out, "\\n"),
        '\r' => write!(out, "\\r"),
        '\t' => write!(out, "\\t"),
        '\x0b' => write!(out, "\\v"),
        c if (c as u32) < 0x20 || c == '\x7f' => write!(out, "\\x{:02x}", c as u32),
        c if (c as u32) < 0x10000 => write!(out, "\\u{:04x}", c as u32),
        c => write!(out, "\\U{:08x}", c as u32),
    };
}

/// Go's `strconv.Quote` (`QuoteToASCII` with `ascii_only`).
pub(crate) fn quote_str(out: &mut String, s: &str, ascii_only: bool) {
    out.push('"');
    for c in s.chars() {
        quote_char(out, c, '"', ascii_only);
    }
    out.push('"');
}

/// Go's `strconv.CanBackquote`.
pub(crate) fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| !((c < ' ' && c != '\t') || c == '`' || c == '\u{7f}' || c == '\u{feff}'))
}

// ---------------------------------------------------------------------------------------
