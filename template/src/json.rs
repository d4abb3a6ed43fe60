//! JSON (Go's `encoding/json` form, for `toJson`) and base64 (`b64enc`, `b64dec`).

use super::*;

/// Encode like Go's `json.Marshal`: sorted object keys, HTML-safe strings, bytes as
/// base64; fails on NaN and infinities.
pub(crate) fn write_json(out: &mut String, v: &Value<'_>) -> Result<(), ()> {
    match v {
        Value::Missing | Value::Nil | Value::NilData => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => json_float(out, *f)?,
        Value::Str(s) => json_str(out, s),
        Value::Operation(op) => json_str(out, op.as_str()),
        Value::Raw(b) | Value::Position(b) => {
            out.push('"');
            out.push_str(&base64_encode(b));
            out.push('"');
        }
        Value::List(l) => {
            out.push('[');
            for i in 0..l.len() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, &l.get(i).unwrap_or(Value::Missing))?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.entries().into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(out, &k);
                out.push(':');
                write_json(out, &item)?;
            }
            out.push('}');
        }
        Value::Record(r) => {
            out.push_str("{\"position\":");
            write_json(out, &Value::Position(&r.position.0))?;
            out.push_str(",\"operation\":");
            json_str(out, r.operation.as_str());
            out.push_str(",\"metadata\":");
            write_json(out, &Value::Map(MapV::Meta(&r.metadata)))?;
            out.push_str(",\"key\":");
            write_json(out, &data_value(&r.key))?;
            out.push_str(",\"payload\":");
            write_json(out, &Value::Change(&r.payload))?;
            out.push('}');
        }
        Value::Time(t) => {
            let text = format_time(t, "2006-01-02T15:04:05.999999999Z07:00");
            // Go refuses years outside 0..=9999.
            if text.starts_with('-') || text.find('-') != Some(4) {
                return Err(());
            }
            json_str(out, &text);
        }
        Value::Change(c) => {
            out.push_str("{\"before\":");
            write_json(out, &data_value(&c.before))?;
            out.push_str(",\"after\":");
            write_json(out, &data_value(&c.after))?;
            out.push('}');
        }
    }
    Ok(())
}

/// Go's JSON number form of a float: plain unless < 1e-6 or >= 1e21.
pub(crate) fn json_float(out: &mut String, f: f64) -> Result<(), ()> {
    if !f.is_finite() {
        return Err(());
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let a = f.abs();
    let (digits, exp) = shortest_digits(a);
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        out.push_str(&digits[..1.min(digits.len())]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        if exp < 0 {
            let _ = write!(out, "e-{}", exp.unsigned_abs());
        } else {
            let _ = write!(out, "e+{exp:02}");
        }
    } else {
        out.push_str(&plain_form(&digits, exp));
    }
    Ok(())
}

pub(crate) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        let _ = match c {
            '"' => write!(out, "\\\""),
            '\\' => write!(out, "\\\\"),
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            '\x08' => write!(out, "\\b"),
            '\x0c' => write!(out, "\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => write!(out, "\\u{:04x}", c as u32),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32),
            c => {
                out.push(c);
                Ok(())
            }
        };
    }
    out.push('"');
}

pub(crate) const BASE64: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64 with padding, like Go's `base64.StdEncoding` (newlines ignored); the
/// error names the offending input byte as Go does. Written here rather than with the
/// `base64` crate because sprig's `b64dec` returns Go's error text as its result, and the
/// crate neither skips newlines nor reports offsets the way Go does.
pub(crate) fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let src = s.as_bytes();
    let illegal = |at: usize| format!("illegal base64 data at input byte {at}");
    let skip_newlines = |mut i: usize| {
        while i < src.len() && matches!(src[i], b'\r' | b'\n') {
            i += 1;
        }
        i
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let mut n: u32 = 0;
        let mut j = 0;
        while j < 4 {
            si = skip_newlines(si);
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                return Err(illegal(si - j));
            }
            let c = src[si];
            si += 1;
            if c == b'=' {
                if j < 2 {
                    return Err(illegal(si - 1));
                }
                if j == 2 {
                    // A second "=" must follow.
                    si = skip_newlines(si);
                    if si == src.len() {
                        return Err(illegal(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(illegal(si - 1));
                    }
                    si += 1;
                }
                si = skip_newlines(si);
                if si < src.len() {
                    return Err(illegal(si));
                }
                let bytes = [(n >> 16) as u8, (n >> 8) as u8];
                out.extend_from_slice(&bytes[..j - 1]);
                return Ok(out);
            }
            let value = BASE64
                .iter()
                .position(|&b| b == c)
                .ok_or_else(|| illegal(si - 1))?;
            n |= (value as u32) << (18 - 6 * j);
            j += 1;
        }
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
}

/// Go's `json.Indent` with no prefix and two spaces (what `json.MarshalIndent` does to
/// the compact form).
pub(crate) fn json_indent(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    let mut chars = compact.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out
}

/// The compact form without Go's HTML escaping (`SetEscapeHTML(false)`): `\u003c`,
/// `\u003e` and `\u0026` in strings become `<`, `>` and `&` again.
pub(crate) fn json_unescape_html(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len());
    let mut rest = compact;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let esc = &rest[at..];
        let plain = match esc.get(..6) {
            Some("\\u003c") => Some('<'),
            Some("\\u003e") => Some('>'),
            Some("\\u0026") => Some('&'),
            _ => None,
        };
        match plain {
            Some(c) => {
                out.push(c);
                rest = &esc[6..];
            }
            None => {
                // Some other escape: keep it and the character it escapes.
                let len = esc[1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&esc[..1 + len]);
                rest = &esc[1 + len..];
            }
        }
    }
    out.push_str(rest);
    out
}
