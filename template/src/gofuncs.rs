//! Go's built-in functions `slice`, `html`, `js`, `urlquery` and `call`.

use super::*;

/// Go's `slice item i j k`: strings, lists and byte slices (raw data, position).
pub(crate) fn slice_value<'a>(item: Value<'a>, indexes: &[Value<'a>]) -> Result<Value<'a>, String> {
    if is_nilish(&item) {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match &item {
        Value::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        Value::Raw(b) | Value::Position(b) => b.len(),
        other => return Err(format!("can't slice item of type {}", type_name(other))),
    };
    let mut idx = [0, len, len];
    for (slot, ix) in idx.iter_mut().zip(indexes) {
        *slot = match ix {
            Value::Int(i) => usize::try_from(*i)
                .ok()
                .filter(|&i| i <= len)
                .ok_or_else(|| format!("index out of range: {i}"))?,
            v if is_nilish(v) => return Err("cannot index slice/array with nil".into()),
            other => {
                return Err(format!(
                    "cannot index slice/array with type {}",
                    type_name(other)
                ))
            }
        };
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    let (a, b) = (idx[0], idx[1]);
    Ok(match item {
        Value::Str(s) => Value::Str(byte_slice(s, a, b)),
        Value::List(List::Json(items)) => Value::List(List::Json(&items[a..b])),
        Value::List(List::Owned(items)) => Value::List(List::Owned(items[a..b].to_vec())),
        Value::Raw(bytes) => Value::Raw(&bytes[a..b]),
        Value::Position(bytes) => Value::Position(&bytes[a..b]),
        other => other,
    })
}

/// The text the escaping functions work on: one string as is, otherwise Go's
/// `fmt.Sprint` of the arguments with missing and nil values as `<no value>`.
pub(crate) fn escaper_text<'v>(args: &'v [Value<'_>]) -> Cow<'v, str> {
    if let [Value::Str(s)] = args {
        return Cow::Borrowed(s);
    }
    let printable: Vec<Value<'_>> = args
        .iter()
        .map(|v| {
            if is_nilish(v) {
                Value::Str(Cow::Borrowed("<no value>"))
            } else {
                v.clone()
            }
        })
        .collect();
    Cow::Owned(sprint(&printable, false))
}

/// Go's `template.HTMLEscapeString`.
pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub(crate) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if c.is_ascii() || is_printable(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// Go's `call`: there are no function values in a record, so it always fails; `text`
/// is the function argument's source text.
pub(crate) fn call_error(f: &Value<'_>, text: &str) -> String {
    if is_nilish(f) {
        return "call of nil".into();
    }
    format!("non-function {text} of type {}", type_name(f))
}
