//! Lexing: the template text into text items and actions, actions into tokens (Go's literals and escapes).

use super::*;

pub(crate) const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];
pub(crate) const MAX_DEPTH: usize = 100;
/// Go's keywords: never function names.
pub(crate) const KEYWORDS: [&str; 10] = [
    "if", "else", "end", "with", "range", "break", "continue", "define", "template", "block",
];

pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

pub(crate) fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Space,
    Pipe,
    LParen,
    RParen,
    Dot,
    Field(Box<str>),
    Var(Box<str>),
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Ident(Box<str>),
    Assign,
    Declare,
    Comma,
}

impl Tok {
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Space => "space".into(),
            Tok::Pipe => "\"|\"".into(),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::Dot => "\".\"".into(),
            Tok::Field(f) => format!("field .{f}"),
            Tok::Var(v) => format!("variable ${v}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Int(i) => format!("number {i}"),
            Tok::Float(f) => format!("number {f}"),
            Tok::Bool(b) => format!("{b}"),
            Tok::Nil => "nil".into(),
            Tok::Ident(i) => format!("{i:?}"),
            Tok::Assign => "\"=\"".into(),
            Tok::Declare => "\":=\"".into(),
            Tok::Comma => "\",\"".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Span,
}

pub(crate) enum Item {
    Text(Box<str>),
    Action { toks: Vec<Token>, at: usize },
}

/// Split the source into text and action items, applying trim markers and dropping
/// comments. Also reports whether the source has no `{{` at all.
pub(crate) fn scan(src: &str) -> Result<(Vec<Item>, bool), PErr> {
    let mut items = Vec::new();
    let mut pos = 0;
    let mut trim_next = false;
    let mut literal = true;
    let bytes = src.as_bytes();
    loop {
        let open = src[pos..].find("{{").map(|i| pos + i);
        let mut text = &src[pos..open.unwrap_or(src.len())];
        if trim_next {
            text = text.trim_start_matches(SPACE);
        }
        let Some(open) = open else {
            push_text(&mut items, text);
            break;
        };
        literal = false;
        let mut body = open + 2;
        if bytes.get(body) == Some(&b'-') && bytes.get(body + 1).is_some_and(|&b| is_space(b)) {
            text = text.trim_end_matches(SPACE);
            body += 2;
        }
        push_text(&mut items, text);
        if src[body..].starts_with("/*") {
            let close = src[body + 2..]
                .find("*/")
                .map(|i| body + 2 + i + 2)
                .ok_or_else(|| PErr::new("unclosed comment", open))?;
            let (end, trim) = right_delim(src, close)
                .ok_or_else(|| PErr::new("comment ends before closing delimiter", close))?;
            pos = end;
            trim_next = trim;
            continue;
        }
        let (toks, end, trim) = lex_action(src, body, open)?;
        items.push(Item::Action { toks, at: open });
        pos = end;
        trim_next = trim;
    }
    Ok((items, literal))
}

pub(crate) fn push_text(items: &mut Vec<Item>, text: &str) {
    if !text.is_empty() {
        items.push(Item::Text(text.into()));
    }
}

/// If a closing delimiter (`}}` or ` -}}`) starts at `i`, where the action ends and
/// whether the following text is trimmed.
pub(crate) fn right_delim(src: &str, i: usize) -> Option<(usize, bool)> {
    let rest = src.get(i..)?;
    if rest.starts_with("}}") {
        return Some((i + 2, false));
    }
    let b = rest.as_bytes();
    if b.first().is_some_and(|&c| is_space(c)) && rest[1..].starts_with("-}}") {
        return Some((i + 4, true));
    }
    None
}

/// Tokenize one action starting at `start` (after `{{` and any trim marker).
pub(crate) fn lex_action(
    src: &str,
    start: usize,
    open: usize,
) -> Result<(Vec<Token>, usize, bool), PErr> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = start;
    let mut depth: usize = 0;
    loop {
        if let Some((end, trim)) = right_delim(src, i) {
            if depth > 0 {
                return Err(PErr::new("unclosed left paren", i));
            }
            return Ok((toks, end, trim));
        }
        let Some(c) = src[i..].chars().next() else {
            return Err(PErr::new("unclosed action", open));
        };
        let tok_start = i;
        let tok = match c {
            ' ' | '\t' | '\r' | '\n' => {
                let mut j = i;
                while j < b.len() && is_space(b[j]) {
                    if src[j + 1..].starts_with("-}}") && j > i {
                        break;
                    }
                    j += 1;
                }
                i = j;
                Tok::Space
            }
            '|' => {
                i += 1;
                Tok::Pipe
            }
            '(' => {
                i += 1;
                depth += 1;
                Tok::LParen
            }
            ')' => {
                if depth == 0 {
                    return Err(PErr::new("unexpected right paren", i));
                }
                depth -= 1;
                i += 1;
                Tok::RParen
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '=' => {
                i += 1;
                Tok::Assign
            }
            ':' => {
                if b.get(i + 1) != Some(&b'=') {
                    return Err(PErr::new("expected :=", i));
                }
                i += 2;
                Tok::Declare
            }
            '"' => {
                let (s, end) = lex_quoted(src, i)?;
                i = end;
                Tok::Str(s.into())
            }
            '`' => {
                let Some(len) = src[i + 1..].find('`') else {
                    return Err(PErr::new("unterminated raw quoted string", i));
                };
                let raw = src[i + 1..i + 1 + len].replace('\r', "");
                i += len + 2;
                Tok::Str(raw.into())
            }
            '\'' => {
                let (value, end) = lex_char(src, i)?;
                i = end;
                Tok::Int(value)
            }
            '$' => {
                let end = scan_name(src, i + 1);
                check_terminator(src, end)?;
                let name = &src[i + 1..end];
                i = end;
                Tok::Var(name.into())
            }
            '.' => {
                let next = src[i + 1..].chars().next();
                if next.is_some_and(|n| n.is_ascii_digit()) {
                    let (tok, end) = lex_number(src, i)?;
                    i = end;
                    tok
                } else if next.is_some_and(is_alnum) {
                    let end = scan_name(src, i + 1);
                    check_terminator(src, end)?;
                    let name = &src[i + 1..end];
                    i = end;
                    Tok::Field(name.into())
                } else {
                    i += 1;
                    Tok::Dot
                }
            }
            '+' | '-' | '0'..='9' => {
                let (tok, end) = lex_number(src, i)?;
                i = end;
                tok
            }
            c if is_alnum(c) => {
                let end = scan_name(src, i);
                check_terminator(src, end)?;
                let word = &src[i..end];
                i = end;
                match word {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    _ => Tok::Ident(word.into()),
                }
            }
            c if c.is_ascii_graphic() => {
                return Err(PErr::new(format!("unexpected {c:?} in command"), i));
            }
            c => {
                return Err(PErr::new(
                    format!("unrecognized character in action: U+{:04X}", c as u32),
                    i,
                ));
            }
        };
        toks.push(Token {
            tok,
            span: Span {
                start: tok_start,
                end: i,
            },
        });
    }
}

pub(crate) fn scan_name(src: &str, from: usize) -> usize {
    src[from..]
        .char_indices()
        .find(|&(_, c)| !is_alnum(c))
        .map_or(src.len(), |(k, _)| from + k)
}

/// After an identifier, field or variable Go requires a space, `.`, `,`, `|`, `:`, a
/// parenthesis or the closing delimiter.
pub(crate) fn check_terminator(src: &str, at: usize) -> Result<(), PErr> {
    match src[at..].chars().next() {
        None => Ok(()),
        Some(c) if SPACE.contains(&c) || ".,|:()".contains(c) => Ok(()),
        Some(_) if src[at..].starts_with("}}") => Ok(()),
        Some(c) => Err(PErr::new(format!("bad character {c:?}"), at)),
    }
}

/// A double-quoted string starting at `at`; returns the value and the end offset.
pub(crate) fn lex_quoted(src: &str, at: usize) -> Result<(String, usize), PErr> {
    let b = src.as_bytes();
    let mut j = at + 1;
    loop {
        match b.get(j) {
            None | Some(b'\n') => return Err(PErr::new("unterminated quoted string", at)),
            Some(b'\\') => {
                if matches!(b.get(j + 1), None | Some(b'\n')) {
                    return Err(PErr::new("unterminated quoted string", at));
                }
                j += 2;
            }
            Some(b'"') => break,
            Some(_) => j += 1,
        }
    }
    let value = unescape(&src[at + 1..j], '"').map_err(|m| PErr::new(m, at))?;
    Ok((value, j + 1))
}

/// A character constant starting at `at`; returns its code point and the end offset.
pub(crate) fn lex_char(src: &str, at: usize) -> Result<(i64, usize), PErr> {
    let b = src.as_bytes();
    let mut j = at + 1;
    loop {
        match b.get(j) {
            None | Some(b'\n') => return Err(PErr::new("unterminated character constant", at)),
            Some(b'\\') => {
                if matches!(b.get(j + 1), None | Some(b'\n')) {
                    return Err(PErr::new("unterminated character constant", at));
                }
                j += 2;
            }
            Some(b'\'') => break,
            Some(_) => j += 1,
        }
    }
    let body = &src[at + 1..j];
    let value = unescape(body, '\'').map_err(|m| PErr::new(m, at))?;
    let mut chars = value.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok((i64::from(u32::from(c)), j + 1)),
        _ => Err(PErr::new(
            format!("malformed character constant: '{body}'"),
            at,
        )),
    }
}

/// Go's escapes in a quoted string or character constant.
pub(crate) fn unescape(body: &str, quote: char) -> Result<String, String> {
    if !body.contains('\\') {
        return Ok(body.to_owned());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let mut buf = [0u8; 4];
    let bad = || format!("invalid syntax in quoted text {body:?}");
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some(e) = chars.next() else {
            return Err(bad());
        };
        let simple = match e {
            'a' => Some(0x07u8),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '\\' => Some(b'\\'),
            c if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            continue;
        }
        match e {
            'x' => {
                let hex: String = chars.by_ref().take(2).collect();
                let v = (hex.len() == 2)
                    .then(|| u8::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(bad)?;
                out.push(v);
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let digits = format!("{e}{rest}");
                let v = (digits.len() == 3)
                    .then(|| u8::from_str_radix(&digits, 8).ok())
                    .flatten()
                    .ok_or_else(bad)?;
                out.push(v);
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let hex: String = chars.by_ref().take(n).collect();
                let c = (hex.len() == n)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(bad)?;
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(bad()),
        }
    }
    Ok(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// A number literal starting at `at` (which may be a sign or a `.`).
pub(crate) fn lex_number(src: &str, at: usize) -> Result<(Tok, usize), PErr> {
    let b = src.as_bytes();
    let mut j = at;
    if matches!(b.get(j), Some(b'+' | b'-')) {
        j += 1;
    }
    let mut hex = false;
    if b.get(j) == Some(&b'0') && matches!(b.get(j + 1), Some(b'x' | b'X')) {
        hex = true;
        j += 2;
    }
    while let Some(&c) = b.get(j) {
        let exp_sign = matches!(c, b'+' | b'-')
            && j > at
            && if hex {
                matches!(b[j - 1], b'p' | b'P')
            } else {
                matches!(b[j - 1], b'e' | b'E')
            };
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign {
            j += 1;
        } else {
            break;
        }
    }
    let text = &src[at..j];
    check_terminator(src, j)?;
    let tok = parse_number(text).map_err(|m| PErr::new(m, at))?;
    Ok((tok, j))
}

pub(crate) fn parse_number(text: &str) -> Result<Tok, String> {
    let bad = || format!("bad number syntax: {text:?}");
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text:?}"));
    }
    let lower = body.to_ascii_lowercase();
    let is_hex = lower.starts_with("0x");
    if is_hex && lower.contains('p') {
        return Err(format!(
            "hexadecimal floating-point numbers are not supported: {text:?}"
        ));
    }
    if !is_hex && (lower.contains('.') || lower.contains('e')) {
        let cleaned: String = body.chars().filter(|&c| c != '_').collect();
        if cleaned.contains("inf") || cleaned.contains("nan") || cleaned.is_empty() {
            return Err(bad());
        }
        let f: f64 = cleaned.parse().map_err(|_| bad())?;
        return Ok(Tok::Float(if neg { -f } else { f }));
    }
    let signed = if neg {
        format!("-{body}")
    } else {
        body.to_owned()
    };
    match parse_int_base0(&signed) {
        IntParse::Ok(i) => Ok(Tok::Int(i)),
        IntParse::Overflow => Err(format!("integer overflow: {text:?} does not fit an int64")),
        IntParse::Invalid => Err(bad()),
    }
}

pub(crate) enum IntParse {
    Ok(i64),
    Overflow,
    Invalid,
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b`/leading-zero prefixes,
/// underscores between digits.
pub(crate) fn parse_int_base0(s: &str) -> IntParse {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d, true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d, true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d, true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..], true)
    } else {
        (10, lower.as_str(), false)
    };
    // Underscores only between digits (or right after a prefix).
    let valid_underscores =
        !digits.ends_with('_') && !digits.contains("__") && (prefixed || !digits.starts_with('_'));
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    if cleaned.is_empty() || !valid_underscores || !cleaned.chars().all(|c| c.is_digit(radix)) {
        return IntParse::Invalid;
    }
    match u64::from_str_radix(&cleaned, radix) {
        Ok(mag) => {
            if neg {
                if mag <= 1u64 << 63 {
                    IntParse::Ok((mag as i64).wrapping_neg())
                } else {
                    IntParse::Overflow
                }
            } else {
                i64::try_from(mag).map_or(IntParse::Overflow, IntParse::Ok)
            }
        }
        Err(_) => IntParse::Overflow,
    }
}

// ---------------------------------------------------------------------------------------
