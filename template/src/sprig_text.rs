//! Text algorithms behind sprig's string, encoding and float functions, written to give
//! the same output as the Go libraries sprig uses (xstrings, goutils, encoding/base32,
//! shopspring/decimal).

use super::*;
use std::sync::OnceLock;

/// Go's `unicode.IsPunct` (general category P).
pub(crate) fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation()
            && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    static PUNCT: OnceLock<Option<Regex>> = OnceLock::new();
    PUNCT
        .get_or_init(|| Regex::new(r"^\p{P}$").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(c.encode_utf8(&mut [0; 4])))
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// xstrings' `isAlphabet`: letters other than CJK ideographs.
fn is_alphabet(c: char) -> bool {
    c.is_alphabetic()
        && !matches!(c, '\u{4E00}'..='\u{9FCC}' | '\u{3400}'..='\u{4D85}' | '\u{20000}'..='\u{2B81D}')
}

fn lower_char(c: char) -> char {
    let mut low = c.to_lowercase();
    match (low.next(), low.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Invalid,
    Number,
    Upper,
    Alpha,
    Connector,
    Punct,
    Other,
}

/// xstrings' `nextWord`: the kind and text of the word at the start of `s`, and the rest.
fn next_word(s: &str) -> (Word, &str, &str) {
    let Some(first) = s.chars().next() else {
        return (Word::Invalid, "", "");
    };
    let split = |end: usize| (&s[..end], &s[end..]);
    let take_while = |start: usize, keep: &dyn Fn(char) -> bool| {
        s[start..]
            .char_indices()
            .find(|&(_, c)| !keep(c))
            .map_or(s.len(), |(i, _)| start + i)
    };
    let after_first = first.len_utf8();
    let (kind, end) = if first == char::REPLACEMENT_CHARACTER {
        (Word::Invalid, after_first)
    } else if is_connector(first) {
        (Word::Connector, take_while(after_first, &is_connector))
    } else if is_punct(first) {
        (Word::Punct, take_while(after_first, &is_punct))
    } else if first.is_uppercase() {
        let second = s[after_first..].chars().next();
        match second {
            Some(c) if c.is_uppercase() => {
                // A run of capitals; its last one starts the next word when a lower-case
                // letter follows ("HTTPServer" is "HTTP", "Server").
                let end = take_while(after_first, &|c: char| c.is_uppercase());
                let next = s[end..].chars().next();
                if next.is_some_and(is_alphabet) {
                    let last = s[..end].chars().next_back().map_or(0, char::len_utf8);
                    (Word::Upper, end - last)
                } else {
                    (Word::Upper, end)
                }
            }
            Some(c) if is_alphabet(c) => (
                Word::Upper,
                take_while(after_first, &|c: char| is_alphabet(c) && !c.is_uppercase()),
            ),
            _ => (Word::Upper, after_first),
        }
    } else if is_alphabet(first) {
        (
            Word::Alpha,
            take_while(after_first, &|c: char| is_alphabet(c) && !c.is_uppercase()),
        )
    } else if first.is_numeric() {
        (Word::Number, take_while(after_first, &char::is_numeric))
    } else {
        (
            Word::Other,
            take_while(after_first, &|c: char| {
                !(is_connector(c) || is_alphabet(c) || c.is_numeric() || is_punct(c))
            }),
        )
    };
    let (word, rest) = split(end);
    (kind, word, rest)
}

fn push_lower(out: &mut String, kind: Word, word: &str, connector: char) {
    if kind != Word::Upper && kind != Word::Connector {
        out.push_str(word);
        return;
    }
    for c in word.chars() {
        if is_connector(c) {
            out.push(connector);
        } else if c.is_uppercase() {
            out.push(lower_char(c));
        } else {
            out.push(c);
        }
    }
}

/// xstrings' `ToSnakeCase` (`_`) and `ToKebabCase` (`-`).
pub(crate) fn to_lower_words(s: &str, connector: char) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    if s.is_empty() {
        return out;
    }
    let (mut kind, mut word, mut rest) = next_word(s);
    while !rest.is_empty() {
        if kind != Word::Connector {
            push_lower(&mut out, kind, word, connector);
        }
        let (prev, last) = (kind, word);
        (kind, word, rest) = next_word(rest);
        match prev {
            Word::Number => {
                while kind == Word::Alpha || kind == Word::Number {
                    push_lower(&mut out, kind, word, connector);
                    (kind, word, rest) = next_word(rest);
                }
                if !matches!(kind, Word::Invalid | Word::Punct | Word::Connector) {
                    out.push(connector);
                }
            }
            Word::Connector => push_lower(&mut out, prev, last, connector),
            Word::Punct => {}
            _ => {
                if kind != Word::Number {
                    if kind != Word::Connector && kind != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                if rest.is_empty() {
                    continue;
                }
                let number = word;
                (kind, word, rest) = next_word(rest);
                if kind != Word::Alpha {
                    push_lower(&mut out, Word::Number, number, connector);
                    if kind != Word::Connector && kind != Word::Punct {
                        out.push(connector);
                    }
                    continue;
                }
                out.push(connector);
                push_lower(&mut out, Word::Number, number, connector);
                while kind == Word::Alpha || kind == Word::Number {
                    push_lower(&mut out, kind, word, connector);
                    (kind, word, rest) = next_word(rest);
                }
                if !matches!(kind, Word::Invalid | Word::Connector | Word::Punct) {
                    out.push(connector);
                }
            }
        }
    }
    push_lower(&mut out, kind, word, connector);
    out
}

/// xstrings' `ToPascalCase` (sprig's `camelcase`).
pub(crate) fn to_pascal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    let mut first_upper = false;
    let mut r0 = None;
    for c in chars.by_ref() {
        if !is_connector(c) {
            first_upper = c.is_uppercase();
            r0 = Some(upper_char(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else {
        // Only connectors: xstrings writes the last one twice.
        if let Some(last) = s.chars().next_back() {
            out.push(last);
        }
        return out;
    };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            first_upper = r0.is_uppercase();
            r0 = upper_char(r0);
        } else {
            if first_upper {
                if r0.is_uppercase() {
                    r0 = lower_char(r0);
                } else {
                    first_upper = false;
                }
            }
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

/// goutils' `SwapCase`: lower-case capitals, upper-case small letters (title-case after
/// white space).
pub(crate) fn swap_case(s: &str) -> String {
    let mut after_space = true;
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                after_space = false;
                lower_char(c)
            } else if c.is_lowercase() {
                after_space = false;
                upper_char(c)
            } else {
                after_space = c.is_whitespace();
                c
            }
        })
        .collect()
}

/// goutils' `Uncapitalize`: lower-case the first character of each white-space separated word.
pub(crate) fn untitle(s: &str) -> String {
    let mut next = true;
    s.chars()
        .map(|c| {
            if c.is_whitespace() {
                next = true;
                c
            } else if next {
                next = false;
                lower_char(c)
            } else {
                c
            }
        })
        .collect()
}

/// goutils reads some strings byte by byte, each byte as the character of that code point.
fn latin1(b: u8) -> char {
    char::from(b)
}

/// goutils' `DeleteWhiteSpace` (sprig's `nospace`), byte by byte as goutils does.
pub(crate) fn delete_white_space(s: &str) -> String {
    if !s.bytes().any(|b| latin1(b).is_whitespace()) {
        return s.to_owned();
    }
    s.bytes()
        .map(latin1)
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// goutils' `Initials`, byte by byte as goutils does.
pub(crate) fn initials(s: &str) -> String {
    let mut gap = true;
    let mut out = String::new();
    for c in s.bytes().map(latin1) {
        if c.is_whitespace() {
            gap = true;
        } else if gap {
            out.push(c);
            gap = false;
        }
    }
    out
}

/// goutils' `AbbreviateFull` as sprig calls it (errors give "").
pub(crate) fn abbreviate(s: &str, offset: i64, width: i64) -> String {
    let b = s.as_bytes();
    let len = b.len() as i64;
    if s.is_empty() || width < 4 {
        return String::new();
    }
    if len <= width {
        return s.to_owned();
    }
    let mut offset = offset.min(len);
    if len - offset < width - 3 {
        offset = len - (width - 3);
    }
    let lossy = |x: &[u8]| String::from_utf8_lossy(x).into_owned();
    if offset <= 4 {
        return lossy(&b[..(width - 3) as usize]) + "...";
    }
    if width < 7 {
        return String::new();
    }
    if offset + width - 3 < len {
        let tail = lossy(&b[offset as usize..]);
        return format!("...{}", abbreviate(&tail, 0, width - 3));
    }
    format!("...{}", lossy(&b[(len - (width - 3)) as usize..]))
}

/// goutils' `WrapCustom`: break lines at spaces so they are at most `width` bytes (longer
/// words are split only when `long_words`).
pub(crate) fn wrap(s: &str, width: i64, newline: &str, long_words: bool) -> String {
    if s.is_empty() {
        return String::new();
    }
    let newline = if newline.is_empty() { "\n" } else { newline };
    let width = width.max(1) as usize;
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len() + 8);
    let mut offset = 0usize;
    while b.len() - offset > width {
        if b[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = width + offset + 1;
        if let Some(space) = b[offset..end].iter().rposition(|&c| c == b' ') {
            let at = offset + space;
            out.extend_from_slice(&b[offset..at]);
            out.extend_from_slice(newline.as_bytes());
            offset = at + 1;
        } else if long_words {
            out.extend_from_slice(&b[offset..offset + width]);
            out.extend_from_slice(newline.as_bytes());
            offset += width;
        } else {
            let end = width + offset;
            match b[end..].iter().position(|&c| c == b' ') {
                None => {
                    out.extend_from_slice(&b[offset..]);
                    offset = b.len();
                }
                Some(i) => {
                    let at = end + i;
                    out.extend_from_slice(&b[offset..at]);
                    out.extend_from_slice(newline.as_bytes());
                    offset = at + 1;
                }
            }
        }
    }
    out.extend_from_slice(&b[offset..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// Go's `regexp.QuoteMeta`.
pub(crate) fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Go's `os.Expand` with a lookup of variables: `$NAME`, `${NAME}` and the special
/// one-character names (`$1`, `$*`, ...).
pub(crate) fn expand(s: &str, mut lookup: impl FnMut(&str) -> String) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&s[last..i]);
            let (name, w) = shell_name(&s[i + 1..]);
            if name.is_none() && w > 0 {
                // Bad syntax ("${}"): eat the characters.
            } else if let Some(name) = name {
                out.push_str(&lookup(name));
            } else {
                out.push('$');
            }
            i += w;
            last = i + 1;
        }
        i += 1;
    }
    if last == 0 {
        return s.to_owned();
    }
    out.push_str(&s[last.min(s.len())..]);
    out
}

fn is_shell_special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

fn is_alnum(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// Go's `getShellName`: the variable name after a `$`, and how many bytes it spans.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && is_shell_special(b[1]) && b[2] == b'}' {
            return (Some(&s[1..2]), 3);
        }
        for i in 1..b.len() {
            if b[i] == b'}' {
                if i == 1 {
                    return (None, 2);
                }
                return (Some(&s[1..i]), i + 1);
            }
        }
        return (None, 1);
    }
    if is_shell_special(b[0]) {
        return (Some(&s[..1]), 1);
    }
    let n = b.iter().take_while(|&&c| is_alnum(c)).count();
    if n == 0 {
        return (None, 0);
    }
    (Some(&s[..n]), n)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Adler-32 (Go's `hash/adler32`).
pub(crate) fn adler32(bytes: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in bytes.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Go's `base32.StdEncoding.EncodeToString`.
pub(crate) fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = buf.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(char::from(BASE32[((n >> (35 - 5 * i)) & 31) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `base32.StdEncoding.DecodeString`, with its error (offsets count from the input
/// with newlines removed).
pub(crate) fn base32_decode(s: &str) -> Result<Vec<u8>, String> {
    let src: Vec<u8> = s.bytes().filter(|&b| b != b'\r' && b != b'\n').collect();
    let illegal = |at: usize| format!("illegal base32 data at input byte {at}");
    let total = src.len();
    let mut out = Vec::with_capacity(total / 8 * 5);
    let mut at = 0usize;
    let mut end = false;
    while at < total && !end {
        let mut quantum = [0u8; 8];
        let mut len = 8;
        let mut j = 0;
        while j < 8 {
            if at == total {
                return Err(illegal(total - j));
            }
            let c = src[at];
            at += 1;
            let left = total - at;
            if c == b'=' && j >= 2 && left < 8 {
                if left + j < 7 {
                    return Err(illegal(total));
                }
                for k in 0..7 - j {
                    if left > k && src[at + k] != b'=' {
                        return Err(illegal(at + k - 1));
                    }
                }
                len = j;
                end = true;
                if matches!(len, 1 | 3 | 6) {
                    return Err(illegal(at - 1));
                }
                break;
            }
            let Some(v) = BASE32.iter().position(|&x| x == c) else {
                return Err(illegal(at - 1));
            };
            quantum[j] = v as u8;
            j += 1;
        }
        let n = quantum.iter().fold(0u64, |acc, &v| acc << 5 | u64::from(v));
        let bytes = match len {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => 0,
        };
        for i in 0..bytes {
            out.push((n >> (32 - 8 * i)) as u8);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Decimal arithmetic for addf, subf, mulf, divf (shopspring/decimal on each float's
// shortest decimal form)
// ---------------------------------------------------------------------------------------

/// `mant * 10^exp`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dec {
    mant: i128,
    exp: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl Dec {
    /// shopspring's `NewFromFloat`: the shortest decimal that reads back as `f`.
    pub(crate) fn from_f64(f: f64) -> Result<Dec, String> {
        if !f.is_finite() {
            let shown = if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "+Inf"
            } else {
                "-Inf"
            };
            return Err(format!("Cannot create a Decimal from {shown}"));
        }
        let text = format!("{f:e}");
        let (digits, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let neg = digits.starts_with('-');
        let digits = digits.trim_start_matches('-');
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let all = format!("{int}{frac}");
        let mant: i128 = all.parse().unwrap_or(0);
        Ok(Dec {
            mant: if neg { -mant } else { mant },
            exp: exp - frac.len() as i32,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.mant, self.exp)
            .parse()
            .unwrap_or(f64::NAN)
    }

    fn pow10(n: u32) -> Option<i128> {
        10i128.checked_pow(n)
    }

    fn align(a: Dec, b: Dec) -> Option<(i128, i128, i32)> {
        let exp = a.exp.min(b.exp);
        let scale = |d: Dec| d.mant.checked_mul(Self::pow10((d.exp - exp) as u32)?);
        Some((scale(a)?, scale(b)?, exp))
    }

    fn exact(a: Dec, b: Dec, op: DecOp) -> Result<Option<Dec>, String> {
        Ok(match op {
            DecOp::Add | DecOp::Sub => Self::align(a, b).and_then(|(x, y, exp)| {
                let mant = if op == DecOp::Add {
                    x.checked_add(y)
                } else {
                    x.checked_sub(y)
                }?;
                Some(Dec { mant, exp })
            }),
            DecOp::Mul => a.mant.checked_mul(b.mant).map(|mant| Dec {
                mant,
                exp: a.exp + b.exp,
            }),
            DecOp::Div => {
                if b.mant == 0 {
                    return Err("decimal division by 0".into());
                }
                // The quotient rounded (half away from zero) to 16 decimal places.
                let shift = a.exp - b.exp + 16;
                let (num, den) = if shift >= 0 {
                    match Self::pow10(shift as u32).and_then(|p| a.mant.checked_mul(p)) {
                        Some(n) => (n, b.mant),
                        None => return Ok(None),
                    }
                } else {
                    match Self::pow10((-shift) as u32).and_then(|p| b.mant.checked_mul(p)) {
                        Some(d) => (a.mant, d),
                        None => return Ok(None),
                    }
                };
                let (q, r) = (num / den, num % den);
                let away = r
                    .unsigned_abs()
                    .checked_mul(2)
                    .is_none_or(|r2| r2 >= den.unsigned_abs());
                let q = if away {
                    if (num < 0) != (den < 0) {
                        q - 1
                    } else {
                        q + 1
                    }
                } else {
                    q
                };
                Some(Dec { mant: q, exp: -16 })
            }
        })
    }

    /// One step of `execDecimalOp`; falls back to float arithmetic when the exact
    /// result does not fit.
    pub(crate) fn apply(self, other: Dec, op: DecOp) -> Result<Dec, String> {
        if let Some(d) = Self::exact(self, other, op)? {
            return Ok(d);
        }
        let (x, y) = (self.to_f64(), other.to_f64());
        let f = match op {
            DecOp::Add => x + y,
            DecOp::Sub => x - y,
            DecOp::Mul => x * y,
            DecOp::Div => x / y,
        };
        Dec::from_f64(f)
    }

    pub(crate) fn value(self) -> f64 {
        self.to_f64()
    }
}

// ---------------------------------------------------------------------------------------
