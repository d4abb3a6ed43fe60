//! A subset of Go's `text/template`, with a subset of the sprig function library,
//! evaluated against an OpenCDC [`Record`].
//!
//! Conduit evaluates processor `condition`s (render, then [`parse_bool`]) and the `value` of
//! the `field.set` processor as Go templates with sprig's functions, with the record as
//! the data (`.`). This module parses such a template once ([`Template::parse`]) and renders
//! it per record ([`Template::render`]) without re-parsing, navigating the record by
//! reference and only copying the values it prints.
//!
//! # Supported syntax
//!
//! * Text outside `{{ }}` is copied. Comments `{{/* ... */}}`. Trim markers `{{- ` and
//!   ` -}}` (the marker needs a space, tab or newline next to it) remove all adjacent
//!   white space of the neighbouring text.
//! * Actions `{{ pipeline }}`, and `{{ if P }} .. {{ else if P }} .. {{ else }} .. {{ end }}`.
//! * Pipelines: commands separated by `|`, each result passed as the last argument of the
//!   next command; parenthesised pipelines as arguments, optionally followed by a field
//!   chain (`(index .Metadata "x").y`).
//! * Operands: `.` and `$` (both the record), field chains `.A.B.C` and `$.A.B`, string
//!   literals with Go's escapes and raw `` `strings` ``, character constants (`'a'` is an
//!   int, like Go), integers (decimal, `0x`, `0o`, `0b`, leading-zero octal, `_`
//!   separators), floats, `true`, `false`, `nil`, and a function name used as an argument
//!   (called with no arguments).
//! * Record fields: `.Position`, `.Operation`, `.Metadata`, `.Key`, `.Payload`,
//!   `.Payload.Before`, `.Payload.After`, then map look-ups into metadata and structured
//!   data (`.Metadata.table`, `.Payload.After.a.b`); the methods `.Operation.String` and
//!   `.Position.String`.
//!
//! Rejected when parsing (Go would accept them): `range`, `with`, `define`, `template`,
//! `block`, `break`, `continue`, variables (`$x`, `:=`, `=`), hexadecimal float and
//! imaginary literals. Also rejected when parsing, where Go only fails when the action
//! runs: a non-function command given arguments (`{{ .A "x" }}`), a non-function command
//! after a `|`, and `nil` as a command. An unknown function is a parse error, as in Go.
//!
//! # Values
//!
//! No value (a missing map key), nil (JSON `null`), nil data (a record without key or
//! payload side), bool, int (`i64`; JSON integers stay ints), float (`f64`), string, raw
//! bytes (raw data), position, operation, list (JSON array), map (JSON object, metadata,
//! or the result of `split`), and the record and its payload. Printing follows Go's `%v`:
//! floats in Go's shortest `%g` form (`1e+06`, `3.5`, `1e-05`), raw data as `[104 105]`,
//! maps as `map[a:1 b:x]` with sorted keys, lists as `[1 2 3]`, nil inside data as
//! `<nil>`, and an action whose value is missing or nil as `<no value>`. The record prints
//! like Go prints the struct: `{position operation map[..] key {before after}}`.
//! Truthiness is Go's: false, 0, 0.0, "", nil, no value, and empty maps, lists and raw data
//! are false.
//!
//! # Functions
//!
//! Go's `and`, `or` (short-circuit, returning the deciding argument), `not`, `eq`, `ne`,
//! `lt`, `le`, `gt`, `ge`, `len`, `index`, `print`, `println`, `printf`; and sprig's
//! `contains`, `hasPrefix`, `hasSuffix`, `lower`, `upper`, `title`, `trim`, `trimPrefix`,
//! `trimSuffix`, `trimAll`, `replace`, `repeat`, `substr`, `trunc`, `quote`, `squote`,
//! `default`, `empty`, `coalesce`, `ternary`, `toString`, `toJson`, `atoi`, `int`,
//! `int64`, `float64`, `add`, `sub`, `mul`, `div`, `mod`, `max`, `min`, `regexMatch`,
//! `regexFind`, `regexReplaceAll`, `split`, `join`, `hasKey`, `keys`, `list`, `b64enc`,
//! `b64dec`, with sprig's argument order (the piped value is the last argument).
//!
//! # Deviations from Go
//!
//! * Comparisons are lenient where Go fails: ints and floats compare numerically
//!   (`eq 30 30.0` is true, Go reports incompatible types), and the operation compares
//!   equal to its name and to its number (`eq .Operation "create"`; Go only accepts the
//!   number, or `.Operation.String`). The operation is also accepted where a function
//!   wants a string (`.Operation | upper`). Comparing no value or nil with anything is
//!   false for `eq` (true for `ne`) and never an error, as in Go.
//! * JSON integers are ints: `1000000` in a payload prints `1000000`. A Go connector that
//!   decodes JSON into `float64` would print `1e+06`.
//! * `keys` returns its keys sorted (Go's order is random); `hasKey` and `keys` accept
//!   metadata as well as structured data.
//! * `printf` supports the verbs `v s d q t f F e E g G x X c o b U T` and `%%`, flags
//!   `+ - # 0` and space, and literal width and precision; `*` widths, argument indexes
//!   (`%[1]d`), `%#v` (Go syntax) and other verbs are exec errors. Hexadecimal float
//!   formatting (`%x` of a float) prints Go's bad-verb form instead. Wrong argument kinds print Go's bad-verb form
//!   (`%!d(string=x)`), missing and extra arguments `%!d(MISSING)` / `%!(EXTRA ...)`.
//! * `regexMatch`, `regexFind` and `regexReplaceAll` use Rust's `regex` crate (RE2-like,
//!   as Go). `\d \w \s \b` (and their negations) are translated to Go's ASCII meaning;
//!   `\Q...\E` is not supported. An invalid pattern makes `regexMatch` false (as sprig
//!   does) and the other two an exec error (sprig panics). Literal patterns are compiled
//!   when parsing; others are compiled once and cached per template.
//! * Go string escapes that produce invalid UTF-8 (`"\xff"`) become U+FFFD, as do slices
//!   (`substr`, `trunc`, `index` results are bytes like Go) that split a character.
//! * `%q` and `quote` escape control, format, private-use and non-ASCII space characters;
//!   unassigned code points are not detected (Go escapes them). `upper`, `lower` and
//!   `title` use per-character case mapping and keep characters whose upper case is
//!   several characters (`ß`), approximating Go's simple case mapping.
//! * An exec error yields no output at all (Go has written the output before the error).
//! * An integer literal that overflows `int64` is a parse error (an exec error in Go).
//! * An empty position prints as an empty string and encodes as `""` in `toJson`; Go
//!   prints a nil position as `<nil>` and encodes it as `null`.
//! * Type names in messages and in `%T` say `opencdc.RawData`, `[]interface {}`,
//!   `map[string]interface {}` and so on, close to, but not always exactly, what Go says.

use culvert_domain::opencdc::{Change, Data, Operation, Record};
use regex::Regex;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/// A parsed template, ready to be rendered against any number of records.
///
/// Parsing checks everything that can be checked without a record (syntax, function
/// names, unsupported keywords); rendering walks the parsed tree.
pub struct Template {
    source: Box<str>,
    nodes: Vec<Node>,
    literal: bool,
    size_hint: usize,
    regex_cache: RegexCache,
}

/// Why a template could not be parsed or rendered.
///
/// Messages follow Go's form: `template: :LINE: message` for parse errors and
/// `template: :LINE:COL: executing at <ACTION>: message` for exec errors.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TemplateError {
    /// The template text is not a valid template of the supported subset.
    #[error("{0}")]
    Parse(String),
    /// Rendering failed for this record (a missing field of the record type, a function
    /// given the wrong number or kind of arguments, ...).
    #[error("{0}")]
    Exec(String),
}

impl Template {
    /// Parse a template.
    ///
    /// Every unknown function, unclosed action, comment, string or parenthesis,
    /// unbalanced `if`/`else`/`end`, and unsupported keyword (`range`, `with`, `define`,
    /// `template`, `block`, `break`, `continue`, variables) is an error here, not when
    /// rendering.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let (items, literal) = scan(text).map_err(|e| e.into_error(text))?;
        let size_hint = items
            .iter()
            .map(|item| match item {
                Item::Text(t) => t.len(),
                Item::Action { .. } => 8,
            })
            .sum();
        let mut parser = TreeParser {
            src: text,
            items: items.into_iter(),
            depth: 0,
        };
        let nodes = parser.top().map_err(|e| e.into_error(text))?;
        Ok(Template {
            source: text.into(),
            nodes,
            literal,
            size_hint,
            regex_cache: RegexCache::default(),
        })
    }

    /// Render the template against a record.
    pub fn render(&self, record: &Record) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.size_hint);
        let exec = Exec {
            template: self,
            record,
        };
        match exec.list(&self.nodes, &mut out) {
            Ok(()) => Ok(out),
            Err(fail) => Err(fail.into_error(&self.source)),
        }
    }

    /// True if the template has no actions or comments at all, so rendering always
    /// returns the template text unchanged and callers may skip it.
    pub fn is_literal(&self) -> bool {
        self.literal
    }
}

impl Clone for Template {
    fn clone(&self) -> Self {
        Template {
            source: self.source.clone(),
            nodes: self.nodes.clone(),
            literal: self.literal,
            size_hint: self.size_hint,
            regex_cache: RegexCache::default(),
        }
    }
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True` are true, `0 f F FALSE false False`
/// are false, anything else is `None`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Errors with positions
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

/// A parse error at a byte offset of the source.
#[derive(Debug)]
struct PErr {
    msg: String,
    at: usize,
}

impl PErr {
    fn new(msg: impl Into<String>, at: usize) -> Self {
        PErr {
            msg: msg.into(),
            at,
        }
    }

    fn into_error(self, src: &str) -> TemplateError {
        let (line, _) = line_col(src, self.at);
        TemplateError::Parse(format!("template: :{line}: {}", self.msg))
    }
}

/// An exec error, located at the innermost node that has a span.
#[derive(Debug)]
struct Fail {
    msg: String,
    span: Option<Span>,
}

impl Fail {
    fn new(msg: impl Into<String>) -> Self {
        Fail {
            msg: msg.into(),
            span: None,
        }
    }

    fn at(mut self, span: Span) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
        }
        self
    }

    fn into_error(self, src: &str) -> TemplateError {
        match self.span {
            Some(span) => {
                let (line, col) = line_col(src, span.start);
                let text = src.get(span.start..span.end).unwrap_or("").trim();
                TemplateError::Exec(format!(
                    "template: :{line}:{col}: executing at <{text}>: {}",
                    self.msg
                ))
            }
            None => TemplateError::Exec(format!("template: {}", self.msg)),
        }
    }
}

/// 1-based line and 0-based byte column of an offset, like Go's messages.
fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = &src.as_bytes()[..at];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => at - nl - 1,
        None => at,
    };
    (line, col)
}

// ---------------------------------------------------------------------------------------
// Lexing
// ---------------------------------------------------------------------------------------

const SPACE: [char; 4] = [' ', '\t', '\r', '\n'];
const MAX_DEPTH: usize = 100;
const UNSUPPORTED: [&str; 7] = [
    "range", "with", "define", "template", "block", "break", "continue",
];

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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
    fn describe(&self) -> String {
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
struct Token {
    tok: Tok,
    span: Span,
}

enum Item {
    Text(Box<str>),
    Action { toks: Vec<Token>, at: usize },
}

/// Split the source into text and action items, applying trim markers and dropping
/// comments. Also reports whether the source has no `{{` at all.
fn scan(src: &str) -> Result<(Vec<Item>, bool), PErr> {
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

fn push_text(items: &mut Vec<Item>, text: &str) {
    if !text.is_empty() {
        items.push(Item::Text(text.into()));
    }
}

/// If a closing delimiter (`}}` or ` -}}`) starts at `i`, where the action ends and
/// whether the following text is trimmed.
fn right_delim(src: &str, i: usize) -> Option<(usize, bool)> {
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
fn lex_action(src: &str, start: usize, open: usize) -> Result<(Vec<Token>, usize, bool), PErr> {
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

fn scan_name(src: &str, from: usize) -> usize {
    src[from..]
        .char_indices()
        .find(|&(_, c)| !is_alnum(c))
        .map_or(src.len(), |(k, _)| from + k)
}

/// After an identifier, field or variable Go requires a space, `.`, `,`, `|`, `:`, a
/// parenthesis or the closing delimiter.
fn check_terminator(src: &str, at: usize) -> Result<(), PErr> {
    match src[at..].chars().next() {
        None => Ok(()),
        Some(c) if SPACE.contains(&c) || ".,|:()".contains(c) => Ok(()),
        Some(_) if src[at..].starts_with("}}") => Ok(()),
        Some(c) => Err(PErr::new(format!("bad character {c:?}"), at)),
    }
}

/// A double-quoted string starting at `at`; returns the value and the end offset.
fn lex_quoted(src: &str, at: usize) -> Result<(String, usize), PErr> {
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
fn lex_char(src: &str, at: usize) -> Result<(i64, usize), PErr> {
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
fn unescape(body: &str, quote: char) -> Result<String, String> {
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
fn lex_number(src: &str, at: usize) -> Result<(Tok, usize), PErr> {
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

fn parse_number(text: &str) -> Result<Tok, String> {
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

enum IntParse {
    Ok(i64),
    Overflow,
    Invalid,
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b`/leading-zero prefixes,
/// underscores between digits.
fn parse_int_base0(s: &str) -> IntParse {
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
// Parse tree
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Node {
    Text(Box<str>),
    Action(Pipeline),
    If(Box<IfNode>),
}

#[derive(Debug, Clone)]
struct IfNode {
    branches: Vec<(Pipeline, Vec<Node>)>,
    otherwise: Vec<Node>,
}

#[derive(Debug, Clone)]
struct Pipeline {
    cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command {
    kind: CmdKind,
    span: Span,
}

#[derive(Debug, Clone)]
enum CmdKind {
    Call(Call),
    Operand(Operand),
}

#[derive(Debug, Clone)]
struct Call {
    func: Func,
    args: Vec<Operand>,
    /// The compiled pattern when a regex function's pattern is a string literal.
    regex: Option<Result<Regex, String>>,
}

#[derive(Debug, Clone)]
struct Operand {
    term: Term,
    /// Field names applied to the term's value, in order.
    chain: Box<[Box<str>]>,
    span: Span,
}

#[derive(Debug, Clone)]
enum Term {
    /// `.` or `$`, with the record fields of the chain already resolved.
    Record(Base),
    Lit(Lit),
    Pipe(Box<Pipeline>),
    /// A function name used as an argument: called with no arguments.
    Func(Func),
}

#[derive(Debug, Clone)]
enum Lit {
    Str(Box<str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
}

/// Where a field chain on the record lands, resolved when parsing.
#[derive(Debug, Clone)]
enum Base {
    Record,
    Position,
    PositionString,
    Operation,
    OperationString,
    Metadata,
    Key,
    Payload,
    Before,
    After,
    /// A field the record type does not have: an exec error when evaluated.
    Bad(Box<str>),
}

/// Resolve the record part of a field chain; returns the rest of the chain.
fn resolve(chain: Vec<Box<str>>) -> (Base, Vec<Box<str>>) {
    let mut base = Base::Record;
    let mut used = 0;
    for name in &chain {
        let next = match (&base, &**name) {
            (Base::Record, "Position") => Base::Position,
            (Base::Record, "Operation") => Base::Operation,
            (Base::Record, "Metadata") => Base::Metadata,
            (Base::Record, "Key") => Base::Key,
            (Base::Record, "Payload") => Base::Payload,
            (Base::Record, other) => {
                Base::Bad(format!("can't evaluate field {other} in type opencdc.Record").into())
            }
            (Base::Payload, "Before") => Base::Before,
            (Base::Payload, "After") => Base::After,
            (Base::Payload, other) => {
                Base::Bad(format!("can't evaluate field {other} in type opencdc.Change").into())
            }
            (Base::Position, "String") => Base::PositionString,
            (Base::Operation, "String") => Base::OperationString,
            _ => break,
        };
        base = next;
        used += 1;
        if matches!(base, Base::Bad(_)) {
            break;
        }
    }
    let rest = chain.into_iter().skip(used).collect();
    (base, rest)
}

enum Act {
    Pipeline(Pipeline),
    If(Pipeline),
    ElseIf(Pipeline),
    Else,
    End,
}

enum Stop {
    Eof,
    Else(usize),
    ElseIf(Pipeline, usize),
    End(usize),
}

struct TreeParser<'s> {
    src: &'s str,
    items: std::vec::IntoIter<Item>,
    depth: usize,
}

impl TreeParser<'_> {
    fn top(&mut self) -> Result<Vec<Node>, PErr> {
        let (nodes, stop) = self.list()?;
        match stop {
            Stop::Eof => Ok(nodes),
            Stop::End(at) => Err(PErr::new("unexpected {{end}}", at)),
            Stop::Else(at) | Stop::ElseIf(_, at) => Err(PErr::new("unexpected {{else}}", at)),
        }
    }

    fn list(&mut self) -> Result<(Vec<Node>, Stop), PErr> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            match item {
                Item::Text(t) => nodes.push(Node::Text(t)),
                Item::Action { toks, at } => match classify(&toks, at, self.src)? {
                    Act::Pipeline(p) => nodes.push(Node::Action(p)),
                    Act::If(p) => nodes.push(self.if_node(p, at)?),
                    Act::Else => return Ok((nodes, Stop::Else(at))),
                    Act::ElseIf(p) => return Ok((nodes, Stop::ElseIf(p, at))),
                    Act::End => return Ok((nodes, Stop::End(at))),
                },
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn if_node(&mut self, cond: Pipeline, at: usize) -> Result<Node, PErr> {
        if self.depth >= MAX_DEPTH {
            return Err(PErr::new("{{if}} nested too deeply", at));
        }
        self.depth += 1;
        let mut branches = Vec::new();
        let mut cond = cond;
        let unclosed = || PErr::new("unexpected EOF: {{if}} has no matching {{end}}", at);
        let otherwise = loop {
            let (body, stop) = self.list()?;
            branches.push((cond, body));
            match stop {
                Stop::End(_) => break Vec::new(),
                Stop::ElseIf(p, _) => cond = p,
                Stop::Else(_) => {
                    let (body, stop) = self.list()?;
                    match stop {
                        Stop::End(_) => break body,
                        Stop::Else(p) | Stop::ElseIf(_, p) => {
                            return Err(PErr::new("expected {{end}}; found {{else}}", p))
                        }
                        Stop::Eof => return Err(unclosed()),
                    }
                }
                Stop::Eof => return Err(unclosed()),
            }
        };
        self.depth -= 1;
        Ok(Node::If(Box::new(IfNode {
            branches,
            otherwise,
        })))
    }
}

/// Decide what an action is: a pipeline, or an `if`/`else`/`end` delimiter.
fn classify(toks: &[Token], at: usize, src: &str) -> Result<Act, PErr> {
    if let Some(t) = toks
        .iter()
        .find(|t| matches!(t.tok, Tok::Assign | Tok::Declare | Tok::Comma))
    {
        return Err(PErr::new(
            "variable declarations are not supported by this template subset",
            t.span.start,
        ));
    }
    let mut tp = Tp {
        toks,
        i: 0,
        depth: 0,
        src,
        end: at,
    };
    tp.skip_space();
    let Some(first) = tp.peek() else {
        return Err(PErr::new("missing value for command", at));
    };
    if let Tok::Ident(word) = &first.tok {
        let pos = first.span.start;
        match &**word {
            "if" => {
                tp.i += 1;
                return Ok(Act::If(tp.condition(pos)?));
            }
            "else" => {
                tp.i += 1;
                tp.skip_space();
                return match tp.peek() {
                    None => Ok(Act::Else),
                    Some(Token {
                        tok: Tok::Ident(w),
                        span,
                    }) => {
                        if &**w == "if" {
                            tp.i += 1;
                            Ok(Act::ElseIf(tp.condition(span.start)?))
                        } else if UNSUPPORTED.contains(&&**w) {
                            Err(unsupported(w, span.start))
                        } else {
                            Err(PErr::new(format!("unexpected {w:?} in else"), span.start))
                        }
                    }
                    Some(t) => Err(PErr::new(
                        format!("unexpected {} in else", t.tok.describe()),
                        t.span.start,
                    )),
                };
            }
            "end" => {
                tp.i += 1;
                tp.skip_space();
                return match tp.peek() {
                    None => Ok(Act::End),
                    Some(t) => Err(PErr::new(
                        format!("unexpected {} in end", t.tok.describe()),
                        t.span.start,
                    )),
                };
            }
            w if UNSUPPORTED.contains(&w) => return Err(unsupported(w, pos)),
            _ => {}
        }
    }
    Ok(Act::Pipeline(tp.pipeline(false)?))
}

fn unsupported(word: &str, at: usize) -> PErr {
    PErr::new(
        format!("{{{{{word}}}}} is not supported by this template subset (only if/else/end)"),
        at,
    )
}

/// The token parser of one action.
struct Tp<'t> {
    toks: &'t [Token],
    i: usize,
    depth: usize,
    src: &'t str,
    /// Where to report errors at the end of the action.
    end: usize,
}

impl<'t> Tp<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.toks.get(self.i)
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.span.start)
    }

    fn skip_space(&mut self) {
        while matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Space,
                ..
            })
        ) {
            self.i += 1;
        }
    }

    fn condition(&mut self, at: usize) -> Result<Pipeline, PErr> {
        self.skip_space();
        if self.peek().is_none() {
            return Err(PErr::new("missing value for if", at));
        }
        self.pipeline(false)
    }

    fn pipeline(&mut self, nested: bool) -> Result<Pipeline, PErr> {
        let mut cmds: Vec<Command> = Vec::new();
        loop {
            let cmd = self.command()?;
            if !cmds.is_empty() && matches!(cmd.kind, CmdKind::Operand(_)) {
                return Err(PErr::new(
                    format!(
                        "non executable command in pipeline stage {}",
                        cmds.len() + 1
                    ),
                    cmd.span.start,
                ));
            }
            cmds.push(cmd);
            self.skip_space();
            match self.peek() {
                Some(Token { tok: Tok::Pipe, .. }) => self.i += 1,
                Some(Token {
                    tok: Tok::RParen,
                    span,
                }) => {
                    if nested {
                        break;
                    }
                    return Err(PErr::new("unexpected right paren", span.start));
                }
                None => {
                    if nested {
                        return Err(PErr::new("unclosed left paren", self.end));
                    }
                    break;
                }
                Some(t) => {
                    return Err(PErr::new(
                        format!("unexpected {} in command", t.tok.describe()),
                        t.span.start,
                    ))
                }
            }
        }
        Ok(Pipeline { cmds })
    }

    fn command(&mut self) -> Result<Command, PErr> {
        let mut ops: Vec<Operand> = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None
                | Some(Token {
                    tok: Tok::Pipe | Tok::RParen,
                    ..
                }) => break,
                Some(_) => {}
            }
            ops.push(self.operand()?);
            match self.peek() {
                None
                | Some(Token {
                    tok: Tok::Space | Tok::Pipe | Tok::RParen,
                    ..
                }) => {}
                Some(t) => {
                    return Err(PErr::new(
                        format!("unexpected {} in operand", t.tok.describe()),
                        t.span.start,
                    ))
                }
            }
        }
        let (Some(first_span), Some(last_span)) =
            (ops.first().map(|o| o.span), ops.last().map(|o| o.span))
        else {
            return Err(PErr::new("missing value for command", self.pos()));
        };
        let span = Span {
            start: first_span.start,
            end: last_span.end,
        };
        let mut it = ops.into_iter();
        let Some(first) = it.next() else {
            return Err(PErr::new("missing value for command", self.pos()));
        };
        let kind = match first.term {
            Term::Func(func) => {
                let args: Vec<Operand> = it.collect();
                let regex = precompile(func, &args);
                CmdKind::Call(Call { func, args, regex })
            }
            Term::Lit(Lit::Nil) => return Err(PErr::new("nil is not a command", span.start)),
            _ => {
                if it.next().is_some() {
                    let text = self.src.get(first.span.start..first.span.end).unwrap_or("");
                    return Err(PErr::new(
                        format!("can't give argument to non-function {text}"),
                        span.start,
                    ));
                }
                CmdKind::Operand(first)
            }
        };
        Ok(Command { kind, span })
    }

    fn operand(&mut self) -> Result<Operand, PErr> {
        enum Head {
            Dot,
            Lit(Lit),
            Pipe(Pipeline),
            Func(Func),
        }
        let Some(tok) = self.peek() else {
            return Err(PErr::new("missing operand", self.end));
        };
        self.i += 1;
        let start = tok.span.start;
        let mut end = tok.span.end;
        let mut chain: Vec<Box<str>> = Vec::new();
        let head = match &tok.tok {
            Tok::Dot => Head::Dot,
            Tok::Field(name) => {
                chain.push(name.clone());
                Head::Dot
            }
            Tok::Var(name) if name.is_empty() => Head::Dot,
            Tok::Var(name) => {
                return Err(PErr::new(
                    format!("variables are not supported by this template subset: ${name}"),
                    start,
                ))
            }
            Tok::Str(s) => Head::Lit(Lit::Str(s.clone())),
            Tok::Int(i) => Head::Lit(Lit::Int(*i)),
            Tok::Float(f) => Head::Lit(Lit::Float(*f)),
            Tok::Bool(b) => Head::Lit(Lit::Bool(*b)),
            Tok::Nil => Head::Lit(Lit::Nil),
            Tok::Ident(name) => match Func::lookup(name) {
                Some(f) => Head::Func(f),
                None if UNSUPPORTED.contains(&&**name)
                    || matches!(&**name, "if" | "else" | "end") =>
                {
                    return Err(PErr::new(
                        format!("unexpected keyword {name:?} in command"),
                        start,
                    ))
                }
                None => return Err(PErr::new(format!("function {name:?} not defined"), start)),
            },
            Tok::LParen => {
                if self.depth >= MAX_DEPTH {
                    return Err(PErr::new("parentheses nested too deeply", start));
                }
                self.depth += 1;
                let p = self.pipeline(true)?;
                self.depth -= 1;
                match self.peek() {
                    Some(Token {
                        tok: Tok::RParen,
                        span,
                    }) => {
                        end = span.end;
                        self.i += 1;
                    }
                    _ => return Err(PErr::new("unclosed left paren", start)),
                }
                Head::Pipe(p)
            }
            Tok::RParen => return Err(PErr::new("unexpected right paren", start)),
            other => {
                return Err(PErr::new(
                    format!("unexpected {} in operand", other.describe()),
                    start,
                ))
            }
        };
        while let Some(Token {
            tok: Tok::Field(name),
            span,
        }) = self.peek()
        {
            chain.push(name.clone());
            end = span.end;
            self.i += 1;
        }
        if let Some(Token {
            tok: Tok::Dot,
            span,
        }) = self.peek()
        {
            return Err(PErr::new("unexpected . after term", span.start));
        }
        let span = Span { start, end };
        let after_term = |chain: &[Box<str>]| {
            if chain.is_empty() {
                Ok(())
            } else {
                Err(PErr::new(
                    format!("unexpected .{} after term", chain.join(".")),
                    start,
                ))
            }
        };
        let (term, chain) = match head {
            Head::Dot => {
                let (base, rest) = resolve(chain);
                (Term::Record(base), rest)
            }
            Head::Lit(lit) => {
                after_term(&chain)?;
                (Term::Lit(lit), chain)
            }
            Head::Func(f) => {
                after_term(&chain)?;
                (Term::Func(f), chain)
            }
            Head::Pipe(p) => (Term::Pipe(Box::new(p)), chain),
        };
        Ok(Operand {
            term,
            chain: chain.into_boxed_slice(),
            span,
        })
    }
}

/// Compile a regex function's pattern when it is a string literal.
fn precompile(func: Func, args: &[Operand]) -> Option<Result<Regex, String>> {
    if !matches!(
        func,
        Func::RegexMatch | Func::RegexFind | Func::RegexReplaceAll
    ) {
        return None;
    }
    match args.first() {
        Some(Operand {
            term: Term::Lit(Lit::Str(pattern)),
            chain,
            ..
        }) if chain.is_empty() => Some(compile_regex(pattern)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    And,
    Or,
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Len,
    Index,
    Print,
    Println,
    Printf,
    Contains,
    HasPrefix,
    HasSuffix,
    Lower,
    Upper,
    Title,
    Trim,
    TrimPrefix,
    TrimSuffix,
    TrimAll,
    Replace,
    Repeat,
    Substr,
    Trunc,
    Quote,
    Squote,
    Default,
    Empty,
    Coalesce,
    Ternary,
    ToString,
    ToJson,
    Atoi,
    Int,
    Int64,
    Float64,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Max,
    Min,
    RegexMatch,
    RegexFind,
    RegexReplaceAll,
    Split,
    Join,
    HasKey,
    Keys,
    List,
    B64enc,
    B64dec,
}

const FUNCS: &[(&str, Func)] = &[
    ("and", Func::And),
    ("or", Func::Or),
    ("not", Func::Not),
    ("eq", Func::Eq),
    ("ne", Func::Ne),
    ("lt", Func::Lt),
    ("le", Func::Le),
    ("gt", Func::Gt),
    ("ge", Func::Ge),
    ("len", Func::Len),
    ("index", Func::Index),
    ("print", Func::Print),
    ("println", Func::Println),
    ("printf", Func::Printf),
    ("contains", Func::Contains),
    ("hasPrefix", Func::HasPrefix),
    ("hasSuffix", Func::HasSuffix),
    ("lower", Func::Lower),
    ("upper", Func::Upper),
    ("title", Func::Title),
    ("trim", Func::Trim),
    ("trimPrefix", Func::TrimPrefix),
    ("trimSuffix", Func::TrimSuffix),
    ("trimAll", Func::TrimAll),
    ("replace", Func::Replace),
    ("repeat", Func::Repeat),
    ("substr", Func::Substr),
    ("trunc", Func::Trunc),
    ("quote", Func::Quote),
    ("squote", Func::Squote),
    ("default", Func::Default),
    ("empty", Func::Empty),
    ("coalesce", Func::Coalesce),
    ("ternary", Func::Ternary),
    ("toString", Func::ToString),
    ("toJson", Func::ToJson),
    ("atoi", Func::Atoi),
    ("int", Func::Int),
    ("int64", Func::Int64),
    ("float64", Func::Float64),
    ("add", Func::Add),
    ("sub", Func::Sub),
    ("mul", Func::Mul),
    ("div", Func::Div),
    ("mod", Func::Mod),
    ("max", Func::Max),
    ("min", Func::Min),
    ("regexMatch", Func::RegexMatch),
    ("regexFind", Func::RegexFind),
    ("regexReplaceAll", Func::RegexReplaceAll),
    ("split", Func::Split),
    ("join", Func::Join),
    ("hasKey", Func::HasKey),
    ("keys", Func::Keys),
    ("list", Func::List),
    ("b64enc", Func::B64enc),
    ("b64dec", Func::B64dec),
];

impl Func {
    fn lookup(name: &str) -> Option<Func> {
        FUNCS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
    }

    fn name(self) -> &'static str {
        FUNCS
            .iter()
            .find(|&&(_, f)| f == self)
            .map_or("?", |&(n, _)| n)
    }
}

// ---------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------

type JsonMap = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone)]
enum Value<'a> {
    /// A missing map key, "no value" (Go's invalid `reflect.Value`).
    Missing,
    /// JSON `null` or the `nil` literal.
    Nil,
    /// A record's absent key or payload side (a nil `opencdc.Data`).
    NilData,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    Raw(&'a [u8]),
    Position(&'a [u8]),
    Operation(Operation),
    List(List<'a>),
    Map(MapV<'a>),
    Record(&'a Record),
    Change(&'a Change),
}

#[derive(Debug, Clone)]
enum List<'a> {
    Json(&'a [serde_json::Value]),
    Owned(Vec<Value<'a>>),
}

impl<'a> List<'a> {
    fn len(&self) -> usize {
        match self {
            List::Json(items) => items.len(),
            List::Owned(items) => items.len(),
        }
    }

    fn get(&self, i: usize) -> Option<Value<'a>> {
        match self {
            List::Json(items) => items.get(i).map(from_json),
            List::Owned(items) => items.get(i).cloned(),
        }
    }
}

#[derive(Debug, Clone)]
enum MapV<'a> {
    Json(&'a JsonMap),
    Meta(&'a BTreeMap<String, String>),
    /// The result of `split` (Go's `map[string]string`).
    Owned(BTreeMap<String, Value<'a>>),
}

impl<'a> MapV<'a> {
    fn len(&self) -> usize {
        match self {
            MapV::Json(m) => m.len(),
            MapV::Meta(m) => m.len(),
            MapV::Owned(m) => m.len(),
        }
    }

    fn get(&self, key: &str) -> Option<Value<'a>> {
        match self {
            MapV::Json(m) => m.get(key).map(from_json),
            MapV::Meta(m) => m.get(key).map(|v| Value::Str(Cow::Borrowed(v.as_str()))),
            MapV::Owned(m) => m.get(key).cloned(),
        }
    }

    /// What `index` returns for a missing key: the zero value of the map's element type.
    fn zero(&self) -> Value<'a> {
        match self {
            MapV::Json(_) => Value::Nil,
            MapV::Meta(_) | MapV::Owned(_) => Value::Str(Cow::Borrowed("")),
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = match self {
            MapV::Json(m) => m.keys().map(String::as_str).collect(),
            MapV::Meta(m) => m.keys().map(String::as_str).collect(),
            MapV::Owned(m) => m.keys().map(String::as_str).collect(),
        };
        keys.sort_unstable();
        keys
    }

    /// Entries sorted by key, as Go prints and encodes maps.
    fn entries(&self) -> Vec<(&str, Value<'a>)> {
        let mut entries: Vec<(&str, Value<'a>)> = match self {
            MapV::Json(m) => m.iter().map(|(k, v)| (k.as_str(), from_json(v))).collect(),
            MapV::Meta(m) => m
                .iter()
                .map(|(k, v)| (k.as_str(), Value::Str(Cow::Borrowed(v.as_str()))))
                .collect(),
            MapV::Owned(m) => m.iter().map(|(k, v)| (k.as_str(), v.clone())).collect(),
        };
        // Already sorted unless serde_json keeps insertion order (its preserve_order).
        if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        entries
    }
}

fn from_json(v: &serde_json::Value) -> Value<'_> {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::Str(Cow::Borrowed(s)),
        J::Array(items) => Value::List(List::Json(items)),
        J::Object(m) => Value::Map(MapV::Json(m)),
    }
}

fn data_value(data: &Option<Data>) -> Value<'_> {
    match data {
        None => Value::NilData,
        Some(Data::Raw(bytes)) => Value::Raw(bytes),
        Some(Data::Structured(m)) => Value::Map(MapV::Json(m)),
    }
}

fn is_nilish(v: &Value<'_>) -> bool {
    matches!(v, Value::Missing | Value::Nil | Value::NilData)
}

/// Go's truth: false for zero values, nil and empty collections.
fn truthy(v: &Value<'_>) -> bool {
    match v {
        Value::Missing | Value::Nil | Value::NilData => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Raw(b) | Value::Position(b) => !b.is_empty(),
        Value::Operation(_) | Value::Record(_) | Value::Change(_) => true,
        Value::List(l) => l.len() > 0,
        Value::Map(m) => m.len() > 0,
    }
}

fn type_name(v: &Value<'_>) -> &'static str {
    match v {
        Value::Missing | Value::Nil => "<nil>",
        Value::NilData => "opencdc.Data",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::Raw(_) => "opencdc.RawData",
        Value::Position(_) => "opencdc.Position",
        Value::Operation(_) => "opencdc.Operation",
        Value::List(_) => "[]interface {}",
        Value::Map(MapV::Json(_)) => "map[string]interface {}",
        Value::Map(MapV::Meta(_)) => "opencdc.Metadata",
        Value::Map(MapV::Owned(_)) => "map[string]string",
        Value::Record(_) => "opencdc.Record",
        Value::Change(_) => "opencdc.Change",
    }
}

/// Conduit's numbering of operations (`opencdc.Operation` is an int in Go).
fn op_number(op: Operation) -> i64 {
    match op {
        Operation::Create => 1,
        Operation::Update => 2,
        Operation::Delete => 3,
        Operation::Snapshot => 4,
    }
}

/// A field of the value: a map look-up, or a field of the record or its payload.
fn field<'a>(v: Value<'a>, name: &str) -> Result<Value<'a>, Fail> {
    match v {
        Value::Map(m) => Ok(m.get(name).unwrap_or(Value::Missing)),
        Value::Missing => Ok(Value::Missing),
        Value::Nil => Err(Fail::new(format!(
            "nil pointer evaluating interface {{}}.{name}"
        ))),
        Value::NilData => Err(Fail::new(format!(
            "nil pointer evaluating opencdc.Data.{name}"
        ))),
        Value::Record(r) => match name {
            "Position" => Ok(Value::Position(&r.position.0)),
            "Operation" => Ok(Value::Operation(r.operation)),
            "Metadata" => Ok(Value::Map(MapV::Meta(&r.metadata))),
            "Key" => Ok(data_value(&r.key)),
            "Payload" => Ok(Value::Change(&r.payload)),
            _ => Err(Fail::new(format!(
                "can't evaluate field {name} in type opencdc.Record"
            ))),
        },
        Value::Change(c) => match name {
            "Before" => Ok(data_value(&c.before)),
            "After" => Ok(data_value(&c.after)),
            _ => Err(Fail::new(format!(
                "can't evaluate field {name} in type opencdc.Change"
            ))),
        },
        Value::Operation(op) if name == "String" => Ok(Value::Str(Cow::Borrowed(op.as_str()))),
        Value::Position(p) if name == "String" => Ok(Value::Str(String::from_utf8_lossy(p))),
        other => Err(Fail::new(format!(
            "can't evaluate field {name} in type {}",
            type_name(&other)
        ))),
    }
}

impl Base {
    fn eval<'a>(&self, r: &'a Record) -> Result<Value<'a>, Fail> {
        Ok(match self {
            Base::Record => Value::Record(r),
            Base::Position => Value::Position(&r.position.0),
            Base::PositionString => Value::Str(String::from_utf8_lossy(&r.position.0)),
            Base::Operation => Value::Operation(r.operation),
            Base::OperationString => Value::Str(Cow::Borrowed(r.operation.as_str())),
            Base::Metadata => Value::Map(MapV::Meta(&r.metadata)),
            Base::Key => data_value(&r.key),
            Base::Payload => Value::Change(&r.payload),
            Base::Before => data_value(&r.payload.before),
            Base::After => data_value(&r.payload.after),
            Base::Bad(msg) => return Err(Fail::new(&**msg)),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------

type Res<'a> = Result<Value<'a>, Fail>;

struct Exec<'a> {
    template: &'a Template,
    record: &'a Record,
}

impl<'a> Exec<'a> {
    fn list(&self, nodes: &'a [Node], out: &mut String) -> Result<(), Fail> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p)?;
                    write_action(out, &v);
                }
                Node::If(n) => {
                    let mut chosen = &n.otherwise;
                    for (cond, body) in &n.branches {
                        if truthy(&self.pipeline(cond)?) {
                            chosen = body;
                            break;
                        }
                    }
                    self.list(chosen, out)?;
                }
            }
        }
        Ok(())
    }

    fn pipeline(&self, p: &'a Pipeline) -> Res<'a> {
        let mut value = None;
        for cmd in &p.cmds {
            value = Some(self.command(cmd, value.take())?);
        }
        Ok(value.unwrap_or(Value::Missing))
    }

    fn command(&self, cmd: &'a Command, piped: Option<Value<'a>>) -> Res<'a> {
        match &cmd.kind {
            CmdKind::Operand(op) => self.operand(op),
            CmdKind::Call(call) => self.call(call, piped).map_err(|e| e.at(cmd.span)),
        }
    }

    fn operand(&self, op: &'a Operand) -> Res<'a> {
        let mut v = match &op.term {
            Term::Record(base) => base.eval(self.record),
            Term::Lit(lit) => Ok(match lit {
                Lit::Str(s) => Value::Str(Cow::Borrowed(s)),
                Lit::Int(i) => Value::Int(*i),
                Lit::Float(f) => Value::Float(*f),
                Lit::Bool(b) => Value::Bool(*b),
                Lit::Nil => Value::Nil,
            }),
            Term::Pipe(p) => self.pipeline(p),
            Term::Func(f) => self.apply(*f, None, Args::with_capacity(0)),
        }
        .map_err(|e| e.at(op.span))?;
        for name in op.chain.iter() {
            v = field(v, name).map_err(|e| e.at(op.span))?;
        }
        Ok(v)
    }

    fn call(&self, call: &'a Call, piped: Option<Value<'a>>) -> Res<'a> {
        if matches!(call.func, Func::And | Func::Or) {
            // Short-circuit: arguments are evaluated only until one decides.
            let total = call.args.len() + usize::from(piped.is_some());
            if total == 0 {
                return Err(arity_at_least(call.func, 1, 0));
            }
            let decides = call.func == Func::Or;
            let mut last = Value::Missing;
            for arg in &call.args {
                let v = self.operand(arg)?;
                if truthy(&v) == decides {
                    return Ok(v);
                }
                last = v;
            }
            return Ok(piped.unwrap_or(last));
        }
        let mut args = Args::with_capacity(call.args.len() + 1);
        for arg in &call.args {
            args.push(self.operand(arg)?);
        }
        if let Some(p) = piped {
            args.push(p);
        }
        self.apply(call.func, Some(call), args)
    }

    /// The regex for a call's pattern argument: precompiled, or compiled and cached.
    fn regex(&self, call: Option<&'a Call>, pattern: &str) -> Result<Re<'a>, String> {
        if let Some(Some(compiled)) = call.map(|c| &c.regex) {
            return compiled.as_ref().map(Re::Lit).map_err(Clone::clone);
        }
        self.template.regex_cache.get(pattern).map(Re::Cached)
    }

    fn apply(&self, f: Func, call: Option<&'a Call>, args: Args<'a>) -> Res<'a> {
        let n = args.len();
        match f {
            Func::And | Func::Or => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let decides = f == Func::Or;
                let mut last = Value::Missing;
                for v in args.into_vec() {
                    if truthy(&v) == decides {
                        return Ok(v);
                    }
                    last = v;
                }
                Ok(last)
            }
            Func::Not => {
                let [v] = take(f, args)?;
                Ok(Value::Bool(!truthy(&v)))
            }
            Func::Eq => {
                if n < 2 {
                    return Err(arity_at_least(f, 2, n));
                }
                let first = &args[0];
                for other in &args[1..] {
                    if eq_values(first, other).map_err(|m| call_err(f, m))? {
                        return Ok(Value::Bool(true));
                    }
                }
                Ok(Value::Bool(false))
            }
            Func::Ne => {
                let [a, b] = take(f, args)?;
                Ok(Value::Bool(!eq_values(&a, &b).map_err(|m| call_err(f, m))?))
            }
            Func::Lt | Func::Le | Func::Gt | Func::Ge => {
                let [a, b] = take(f, args)?;
                let lt = lt_values(&a, &b).map_err(|m| call_err(f, m))?;
                let result = match f {
                    Func::Lt => lt,
                    Func::Ge => !lt,
                    _ => {
                        let le = lt || eq_values(&a, &b).map_err(|m| call_err(f, m))?;
                        if f == Func::Le {
                            le
                        } else {
                            !le
                        }
                    }
                };
                Ok(Value::Bool(result))
            }
            Func::Len => {
                let [v] = take(f, args)?;
                let len = match &v {
                    Value::Str(s) => s.len(),
                    Value::Raw(b) | Value::Position(b) => b.len(),
                    Value::List(l) => l.len(),
                    Value::Map(m) => m.len(),
                    v if is_nilish(v) => return Err(call_err(f, "len of nil pointer")),
                    other => return Err(call_err(f, format!("len of type {}", type_name(other)))),
                };
                Ok(Value::Int(i64::try_from(len).unwrap_or(i64::MAX)))
            }
            Func::Index => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let mut it = args.into_vec().into_iter();
                let mut item = it.next().unwrap_or(Value::Missing);
                for ix in it {
                    item = index_value(item, &ix).map_err(|m| call_err(f, m))?;
                }
                Ok(item)
            }
            Func::Print | Func::Println => Ok(owned(sprint(&args, f == Func::Println))),
            Func::Printf => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let format = str_arg(f, &args[0])?;
                Ok(owned(
                    sprintf(format, &args[1..]).map_err(|m| call_err(f, m))?,
                ))
            }
            Func::Contains | Func::HasPrefix | Func::HasSuffix => {
                let [needle, hay] = take(f, args)?;
                let (needle, hay) = (str_arg(f, &needle)?, str_arg(f, &hay)?);
                Ok(Value::Bool(match f {
                    Func::Contains => hay.contains(needle),
                    Func::HasPrefix => hay.starts_with(needle),
                    _ => hay.ends_with(needle),
                }))
            }
            Func::Lower | Func::Upper | Func::Title | Func::Trim => {
                let [s] = take(f, args)?;
                let s = str_own(f, s)?;
                Ok(Value::Str(match f {
                    Func::Lower => lower(s),
                    Func::Upper => upper(s),
                    Func::Title => Cow::Owned(title(&s)),
                    _ => sub_cow(s, str::trim),
                }))
            }
            Func::TrimPrefix | Func::TrimSuffix | Func::TrimAll => {
                let [arg, s] = take(f, args)?;
                let arg = str_arg(f, &arg)?;
                let s = str_own(f, s)?;
                Ok(Value::Str(match f {
                    Func::TrimPrefix => sub_cow(s, |x| x.strip_prefix(arg).unwrap_or(x)),
                    Func::TrimSuffix => sub_cow(s, |x| x.strip_suffix(arg).unwrap_or(x)),
                    _ => sub_cow(s, |x| x.trim_matches(|c| arg.contains(c))),
                }))
            }
            Func::Replace => {
                let [old, new, s] = take(f, args)?;
                let (old, new) = (str_arg(f, &old)?, str_arg(f, &new)?);
                let s = str_own(f, s)?;
                if old.is_empty() || s.contains(old) {
                    Ok(owned(s.replace(old, new)))
                } else {
                    Ok(Value::Str(s))
                }
            }
            Func::Repeat => {
                let [count, s] = take(f, args)?;
                let count = int_arg(f, &count)?;
                let s = str_arg(f, &s)?;
                let count =
                    usize::try_from(count).map_err(|_| call_err(f, "negative repeat count"))?;
                if count.saturating_mul(s.len()) > MAX_REPEAT {
                    return Err(call_err(f, "result too large"));
                }
                Ok(owned(s.repeat(count)))
            }
            Func::Substr => {
                let [start, end, s] = take(f, args)?;
                let (start, end) = (int_arg(f, &start)?, int_arg(f, &end)?);
                let s = str_own(f, s)?;
                let len = s.len() as i64;
                let (a, b) = if start < 0 {
                    (0, end)
                } else if end < 0 || end > len {
                    (start, len)
                } else {
                    (start, end)
                };
                if a > b || b > len || b < 0 {
                    return Err(call_err(f, format!("slice bounds out of range [{a}:{b}]")));
                }
                Ok(Value::Str(byte_slice(s, a as usize, b as usize)))
            }
            Func::Trunc => {
                let [count, s] = take(f, args)?;
                let count = int_arg(f, &count)?;
                let s = str_own(f, s)?;
                let len = s.len() as i64;
                Ok(Value::Str(if count < 0 && len + count > 0 {
                    byte_slice(s, (len + count) as usize, len as usize)
                } else if count >= 0 && len > count {
                    byte_slice(s, 0, count as usize)
                } else {
                    s
                }))
            }
            Func::Quote | Func::Squote => {
                let mut out = String::new();
                for v in args.iter().filter(|v| !is_nilish(v)) {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    let s = strval(v);
                    if f == Func::Quote {
                        quote_str(&mut out, &s, false);
                    } else {
                        out.push('\'');
                        out.push_str(&s);
                        out.push('\'');
                    }
                }
                Ok(owned(out))
            }
            Func::Default => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let mut it = args.into_vec().into_iter();
                let fallback = it.next().unwrap_or(Value::Missing);
                match it.next() {
                    Some(given) if truthy(&given) => Ok(given),
                    _ => Ok(fallback),
                }
            }
            Func::Empty => {
                let [v] = take(f, args)?;
                Ok(Value::Bool(!truthy(&v)))
            }
            Func::Coalesce => Ok(args
                .into_vec()
                .into_iter()
                .find(truthy)
                .unwrap_or(Value::Nil)),
            Func::Ternary => {
                let [yes, no, cond] = take(f, args)?;
                match cond {
                    Value::Bool(true) => Ok(yes),
                    Value::Bool(false) => Ok(no),
                    other => Err(call_err(
                        f,
                        format!("expected bool; got {}", type_name(&other)),
                    )),
                }
            }
            Func::ToString => {
                let [v] = take(f, args)?;
                Ok(Value::Str(strval(&v)))
            }
            Func::ToJson => {
                let [v] = take(f, args)?;
                let mut out = String::new();
                // sprig ignores encoding errors (NaN, infinities) and returns "".
                if write_json(&mut out, &v).is_err() {
                    out.clear();
                }
                Ok(owned(out))
            }
            Func::Atoi => {
                let [s] = take(f, args)?;
                Ok(Value::Int(atoi(str_arg(f, &s)?)))
            }
            Func::Int | Func::Int64 => {
                let [v] = take(f, args)?;
                Ok(Value::Int(to_int64(&v)))
            }
            Func::Float64 => {
                let [v] = take(f, args)?;
                Ok(Value::Float(to_float64(&v)))
            }
            Func::Add => Ok(Value::Int(
                args.iter()
                    .fold(0i64, |acc, v| acc.wrapping_add(to_int64(v))),
            )),
            Func::Mul => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                Ok(Value::Int(
                    args.iter()
                        .fold(1i64, |acc, v| acc.wrapping_mul(to_int64(v))),
                ))
            }
            Func::Sub | Func::Div | Func::Mod => {
                let [a, b] = take(f, args)?;
                let (a, b) = (to_int64(&a), to_int64(&b));
                if f == Func::Sub {
                    return Ok(Value::Int(a.wrapping_sub(b)));
                }
                if b == 0 {
                    return Err(call_err(f, "integer divide by zero"));
                }
                Ok(Value::Int(if f == Func::Div {
                    a.wrapping_div(b)
                } else {
                    a.wrapping_rem(b)
                }))
            }
            Func::Max | Func::Min => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let values = args.iter().map(to_int64);
                let result = if f == Func::Max {
                    values.max()
                } else {
                    values.min()
                };
                Ok(Value::Int(result.unwrap_or(0)))
            }
            Func::RegexMatch => {
                let [pattern, s] = take(f, args)?;
                let (pattern, s) = (str_arg(f, &pattern)?, str_arg(f, &s)?);
                // sprig ignores an invalid pattern here: no match.
                Ok(Value::Bool(
                    self.regex(call, pattern)
                        .is_ok_and(|re| re.get().is_match(s)),
                ))
            }
            Func::RegexFind => {
                let [pattern, s] = take(f, args)?;
                let (pattern, s) = (str_arg(f, &pattern)?, str_arg(f, &s)?);
                let re = self.regex(call, pattern).map_err(|m| call_err(f, m))?;
                let found = re.get().find(s).map_or("", |m| m.as_str());
                Ok(owned(found.to_owned()))
            }
            Func::RegexReplaceAll => {
                let [pattern, s, repl] = take(f, args)?;
                let (pattern, s, repl) =
                    (str_arg(f, &pattern)?, str_arg(f, &s)?, str_arg(f, &repl)?);
                let re = self.regex(call, pattern).map_err(|m| call_err(f, m))?;
                Ok(owned(re.get().replace_all(s, repl).into_owned()))
            }
            Func::Split => {
                let [sep, s] = take(f, args)?;
                let (sep, s) = (str_arg(f, &sep)?, str_arg(f, &s)?);
                let parts: Vec<String> = if sep.is_empty() {
                    s.chars().map(String::from).collect()
                } else {
                    s.split(sep).map(str::to_owned).collect()
                };
                let map = parts
                    .into_iter()
                    .enumerate()
                    .map(|(i, part)| (format!("_{i}"), owned(part)))
                    .collect();
                Ok(Value::Map(MapV::Owned(map)))
            }
            Func::Join => {
                let [sep, v] = take(f, args)?;
                let sep = str_arg(f, &sep)?;
                let parts: Vec<Cow<'_, str>> = match &v {
                    Value::List(l) => (0..l.len())
                        .filter_map(|i| l.get(i))
                        .filter(|item| !is_nilish(item))
                        .map(|item| strval(&item))
                        .collect(),
                    Value::Raw(b) | Value::Position(b) => {
                        b.iter().map(|x| Cow::Owned(x.to_string())).collect()
                    }
                    v if is_nilish(v) => Vec::new(),
                    other => vec![strval(other)],
                };
                Ok(owned(parts.join(sep)))
            }
            Func::HasKey => {
                let [m, key] = take(f, args)?;
                let key = str_arg(f, &key)?;
                let m = map_arg(f, &m)?;
                Ok(Value::Bool(m.get(key).is_some()))
            }
            Func::Keys => {
                let mut keys: Vec<String> = Vec::new();
                for m in args.iter() {
                    keys.extend(map_arg(f, m)?.keys().into_iter().map(str::to_owned));
                }
                keys.sort_unstable();
                Ok(Value::List(List::Owned(
                    keys.into_iter().map(owned).collect(),
                )))
            }
            Func::List => Ok(Value::List(List::Owned(args.into_vec()))),
            Func::B64enc => {
                let [s] = take(f, args)?;
                Ok(owned(base64_encode(str_arg(f, &s)?.as_bytes())))
            }
            Func::B64dec => {
                let [s] = take(f, args)?;
                // sprig returns the error message as the result.
                Ok(owned(match base64_decode(str_arg(f, &s)?) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(msg) => msg,
                }))
            }
        }
    }
}

const MAX_REPEAT: usize = 64 << 20;

fn owned<'a>(s: String) -> Value<'a> {
    Value::Str(Cow::Owned(s))
}

fn call_err(f: Func, msg: impl std::fmt::Display) -> Fail {
    Fail::new(format!("error calling {}: {msg}", f.name()))
}

fn arity_at_least(f: Func, want: usize, got: usize) -> Fail {
    Fail::new(format!(
        "wrong number of args for {}: want at least {want} got {got}",
        f.name()
    ))
}

const INLINE_ARGS: usize = 4;

/// A call's evaluated arguments; a few are kept inline so most calls do not allocate.
enum Args<'a> {
    Inline([Value<'a>; INLINE_ARGS], usize),
    Heap(Vec<Value<'a>>),
}

impl<'a> Args<'a> {
    fn with_capacity(n: usize) -> Self {
        if n <= INLINE_ARGS {
            Args::Inline(std::array::from_fn(|_| Value::Missing), 0)
        } else {
            Args::Heap(Vec::with_capacity(n))
        }
    }

    fn push(&mut self, v: Value<'a>) {
        match self {
            Args::Inline(items, len) if *len < INLINE_ARGS => {
                items[*len] = v;
                *len += 1;
            }
            Args::Inline(..) => {
                let mut all = std::mem::replace(self, Args::Heap(Vec::new())).into_vec();
                all.push(v);
                *self = Args::Heap(all);
            }
            Args::Heap(items) => items.push(v),
        }
    }

    fn into_vec(self) -> Vec<Value<'a>> {
        match self {
            Args::Inline(items, len) => items.into_iter().take(len).collect(),
            Args::Heap(items) => items,
        }
    }
}

impl<'a> std::ops::Deref for Args<'a> {
    type Target = [Value<'a>];

    fn deref(&self) -> &[Value<'a>] {
        match self {
            Args::Inline(items, len) => &items[..*len],
            Args::Heap(items) => items,
        }
    }
}

/// Exactly `N` arguments, or Go's arity error.
fn take<'a, const N: usize>(f: Func, args: Args<'a>) -> Result<[Value<'a>; N], Fail> {
    let got = args.len();
    if got != N {
        return Err(Fail::new(format!(
            "wrong number of args for {}: want {N} got {got}",
            f.name()
        )));
    }
    Ok(match args {
        Args::Inline(items, _) => {
            let mut it = items.into_iter();
            std::array::from_fn(|_| it.next().unwrap_or(Value::Missing))
        }
        Args::Heap(items) => {
            let mut it = items.into_iter();
            std::array::from_fn(|_| it.next().unwrap_or(Value::Missing))
        }
    })
}

fn wrong_type(f: Func, want: &str, v: &Value<'_>) -> Fail {
    match v {
        Value::Missing => call_err(f, format!("invalid value; expected {want}")),
        Value::Nil | Value::NilData => call_err(f, format!("cannot use nil as {want}")),
        other => call_err(
            f,
            format!(
                "wrong type for value; expected {want}; got {}",
                type_name(other)
            ),
        ),
    }
}

fn str_arg<'v>(f: Func, v: &'v Value<'_>) -> Result<&'v str, Fail> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Operation(op) => Ok(op.as_str()),
        other => Err(wrong_type(f, "string", other)),
    }
}

fn str_own(f: Func, v: Value<'_>) -> Result<Cow<'_, str>, Fail> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Operation(op) => Ok(Cow::Borrowed(op.as_str())),
        other => Err(wrong_type(f, "string", &other)),
    }
}

fn int_arg(f: Func, v: &Value<'_>) -> Result<i64, Fail> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => Ok(*x as i64),
        other => Err(wrong_type(f, "integer", other)),
    }
}

fn map_arg<'v, 'a>(f: Func, v: &'v Value<'a>) -> Result<&'v MapV<'a>, Fail> {
    match v {
        Value::Map(m) => Ok(m),
        other => Err(wrong_type(f, "map[string]interface {}", other)),
    }
}

/// A sub-string computed by `f`, borrowed when the input is.
fn sub_cow<'a>(s: Cow<'a, str>, f: impl for<'x> Fn(&'x str) -> &'x str) -> Cow<'a, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(f(b)),
        Cow::Owned(o) => {
            let part = f(&o);
            if part.len() == o.len() {
                Cow::Owned(o)
            } else {
                Cow::Owned(part.to_owned())
            }
        }
    }
}

/// Bytes `a..b` of a string, like Go's string slicing; a split character becomes U+FFFD.
fn byte_slice(s: Cow<'_, str>, a: usize, b: usize) -> Cow<'_, str> {
    if s.is_char_boundary(a) && s.is_char_boundary(b) {
        sub_cow(s, |x| &x[a..b])
    } else {
        Cow::Owned(String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned())
    }
}

fn lower(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_uppercase()) {
        return s;
    }
    Cow::Owned(
        s.chars()
            .map(|c| c.to_lowercase().next().unwrap_or(c))
            .collect(),
    )
}

fn upper(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_lowercase()) {
        return s;
    }
    Cow::Owned(s.chars().map(upper_char).collect())
}

fn upper_char(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Go's `strings.Title`: upper-case the first letter of each word.
fn title(s: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if separator(prev) { upper_char(c) } else { c };
            prev = c;
            out
        })
        .collect()
}

/// sprig's string conversion: strings as is, nil as `<nil>`, anything else as `%v`.
fn strval<'a>(v: &Value<'a>) -> Cow<'a, str> {
    match v {
        Value::Str(s) => s.clone(),
        Value::Operation(op) => Cow::Borrowed(op.as_str()),
        Value::Position(p) => String::from_utf8_lossy(p),
        Value::Missing | Value::Nil | Value::NilData => Cow::Borrowed("<nil>"),
        other => {
            let mut out = String::new();
            fmt_value(&mut out, 'v', &Spec::default(), other, 0);
            Cow::Owned(out)
        }
    }
}

/// Go's `strconv.Atoi` as sprig uses it: 0 for invalid input, clamped on overflow.
fn atoi(s: &str) -> i64 {
    if let Ok(i) = s.parse::<i64>() {
        return i;
    }
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if s.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        }
    } else {
        0
    }
}

/// 2^63: the ints are the floats in `-TWO_POW_63..TWO_POW_63`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// A float converted like Go's `int64(f)` on amd64: truncated; NaN and out-of-range
/// values give the minimum int.
fn float_to_int(f: f64) -> i64 {
    if !(-TWO_POW_63..TWO_POW_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// sprig's `int`/`int64` (spf13/cast): 0 when the value cannot be converted.
fn to_int64(v: &Value<'_>) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => float_to_int(*f),
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            // cast trims a zero decimal part ("4.00" -> "4") before parsing.
            let trimmed = s.trim_end_matches('0');
            let s = match trimmed.strip_suffix('.') {
                Some(int_part) if trimmed.len() < s.len() => int_part,
                _ => s,
            };
            match parse_int_base0(s) {
                IntParse::Ok(i) => i,
                IntParse::Overflow | IntParse::Invalid => 0,
            }
        }
        _ => 0,
    }
}

/// sprig's `float64` (spf13/cast): 0 when the value cannot be converted.
fn to_float64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's `strconv.ParseFloat`: also accepts `_` between digits.
fn parse_float(s: &str) -> Option<f64> {
    if !s.contains('_') {
        return s.parse().ok();
    }
    let b = s.as_bytes();
    let between_digits = b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0
                && b[i - 1].is_ascii_hexdigit()
                && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit))
    });
    if !between_digits {
        return None;
    }
    s.replace('_', "").parse().ok()
}

/// Go's `index` of one level.
fn index_value<'a>(item: Value<'a>, ix: &Value<'a>) -> Result<Value<'a>, String> {
    let position = |len: usize| -> Result<usize, String> {
        match ix {
            Value::Int(i) => usize::try_from(*i)
                .ok()
                .filter(|&i| i < len)
                .ok_or_else(|| format!("index out of range: {i}")),
            v if is_nilish(v) => Err("cannot index slice/array with nil".into()),
            other => Err(format!(
                "cannot index slice/array with type {}",
                type_name(other)
            )),
        }
    };
    match item {
        Value::Map(m) => match ix {
            Value::Str(key) => Ok(m.get(key).unwrap_or_else(|| m.zero())),
            other => Err(format!(
                "value has type {}; should be string",
                type_name(other)
            )),
        },
        Value::List(l) => {
            let i = position(l.len())?;
            Ok(l.get(i).unwrap_or(Value::Missing))
        }
        Value::Str(s) => {
            let i = position(s.len())?;
            Ok(Value::Int(i64::from(s.as_bytes()[i])))
        }
        Value::Raw(b) | Value::Position(b) => {
            let i = position(b.len())?;
            Ok(Value::Int(i64::from(b[i])))
        }
        Value::Missing | Value::Nil => Err("index of untyped nil".into()),
        Value::NilData => Err("index of nil pointer".into()),
        other => Err(format!("can't index item of type {}", type_name(&other))),
    }
}

fn int_eq_float(i: i64, f: f64) -> bool {
    f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) && f as i64 == i
}

fn comparable(v: &Value<'_>) -> bool {
    matches!(
        v,
        Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Str(_) | Value::Operation(_)
    )
}

/// `eq` of two values; nil and no value equal only each other; ints and floats compare
/// numerically; the operation equals its name and its number.
fn eq_values(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    if is_nilish(a) || is_nilish(b) {
        return Ok(is_nilish(a) && is_nilish(b));
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Int(i), Value::Float(f)) | (Value::Float(f), Value::Int(i)) => int_eq_float(*i, *f),
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Operation(x), Value::Operation(y)) => x == y,
        (Value::Operation(op), Value::Str(s)) | (Value::Str(s), Value::Operation(op)) => {
            op.as_str() == s
        }
        (Value::Operation(op), Value::Int(i)) | (Value::Int(i), Value::Operation(op)) => {
            op_number(*op) == *i
        }
        _ => {
            for v in [a, b] {
                if !comparable(v) {
                    return Err(format!("non-comparable type {}", type_name(v)));
                }
            }
            return Err(format!(
                "incompatible types for comparison: {} and {}",
                type_name(a),
                type_name(b)
            ));
        }
    })
}

/// `lt` of two values: numbers (ints and floats mixed) and strings.
fn lt_values(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
    let num = |v: &Value<'_>| match v {
        Value::Int(i) => Some(Ok(*i)),
        Value::Operation(op) => Some(Ok(op_number(*op))),
        Value::Float(f) => Some(Err(*f)),
        _ => None,
    };
    if let (Value::Str(x), Value::Str(y)) = (a, b) {
        return Ok(x < y);
    }
    match (num(a), num(b)) {
        (Some(Ok(x)), Some(Ok(y))) => Ok(x < y),
        (Some(Err(x)), Some(Err(y))) => Ok(x < y),
        (Some(Ok(x)), Some(Err(y))) => Ok((x as f64) < y),
        (Some(Err(x)), Some(Ok(y))) => Ok(x < y as f64),
        _ => {
            let basic = |v: &Value<'_>| matches!(v, Value::Str(_)) || num(v).is_some();
            if basic(a) && basic(b) {
                Err(format!(
                    "incompatible types for comparison: {} and {}",
                    type_name(a),
                    type_name(b)
                ))
            } else {
                Err("invalid type for comparison".into())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Regular expressions
// ---------------------------------------------------------------------------------------

enum Re<'a> {
    Lit(&'a Regex),
    Cached(Arc<Regex>),
}

impl Re<'_> {
    fn get(&self) -> &Regex {
        match self {
            Re::Lit(re) => re,
            Re::Cached(re) => re,
        }
    }
}

const REGEX_CACHE_SIZE: usize = 64;

/// A compiled pattern, or why it does not compile.
type Compiled = Result<Arc<Regex>, String>;

/// Compiled non-literal patterns, per template.
#[derive(Default)]
struct RegexCache {
    compiled: Mutex<HashMap<Box<str>, Compiled>>,
}

impl RegexCache {
    fn get(&self, pattern: &str) -> Result<Arc<Regex>, String> {
        let mut map = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = map.get(pattern) {
            return found.clone();
        }
        if map.len() >= REGEX_CACHE_SIZE {
            map.clear();
        }
        let compiled = compile_regex(pattern).map(Arc::new);
        map.insert(pattern.into(), compiled.clone());
        compiled
    }
}

/// Compile a Go (RE2) pattern: Perl classes and word boundaries keep Go's ASCII meaning.
fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&translate_regex(pattern)).map_err(|e| {
        let detail = e.to_string();
        let detail = detail.lines().last().unwrap_or("").trim().to_owned();
        format!("error parsing regexp {pattern:?}: {detail}")
    })
}

fn translate_regex(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let replacement = match (in_class, e) {
                    (false, 'd') => "[0-9]",
                    (false, 'D') => "[^0-9]",
                    (false, 'w') => "[0-9A-Za-z_]",
                    (false, 'W') => "[^0-9A-Za-z_]",
                    (false, 's') => "[\\t\\n\\f\\r ]",
                    (false, 'S') => "[^\\t\\n\\f\\r ]",
                    (false, 'b') => "(?-u:\\b)",
                    (false, 'B') => "(?-u:\\B)",
                    (true, 'd') => "0-9",
                    (true, 'D') => "[^0-9]",
                    (true, 'w') => "0-9A-Za-z_",
                    (true, 'W') => "[^0-9A-Za-z_]",
                    (true, 's') => "\\t\\n\\f\\r ",
                    (true, 'S') => "[^\\t\\n\\f\\r ]",
                    _ => {
                        out.push('\\');
                        out.push(e);
                        continue;
                    }
                };
                out.push_str(replacement);
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class such as [:alpha:] inside a class.
                out.push('[');
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Printing (Go's fmt)
// ---------------------------------------------------------------------------------------

/// Write an action's value: Go prints a missing or nil value as `<no value>`.
fn write_action(out: &mut String, v: &Value<'_>) {
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
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

impl Spec {
    /// No flags, width or precision.
    fn is_plain(&self) -> bool {
        !(self.minus || self.plus || self.sharp || self.space || self.zero)
            && self.width.is_none()
            && self.prec.is_none()
    }
}

fn push_n(out: &mut String, c: char, n: usize) {
    out.extend(std::iter::repeat_n(c, n));
}

/// Pad to the width (in characters): spaces, or zeros on the left with the `0` flag.
fn pad(out: &mut String, s: &str, spec: &Spec) {
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
fn pad_number(out: &mut String, sign: &str, digits: &str, spec: &Spec, zero: bool) {
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
fn bad_verb(out: &mut String, verb: char, v: &Value<'_>) {
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
fn fmt_value(out: &mut String, verb: char, spec: &Spec, v: &Value<'_>, depth: usize) {
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
                fmt_value(out, verb, spec, &Value::Str(Cow::Borrowed(k)), depth + 1);
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
fn fmt_struct(
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

fn fmt_byte_list(out: &mut String, verb: char, spec: &Spec, bytes: &[u8]) {
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

fn fmt_int(out: &mut String, verb: char, spec: &Spec, i: i64, orig: &Value<'_>) {
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

fn rune(i: i64) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{FFFD}')
}

fn fmt_float(out: &mut String, verb: char, spec: &Spec, f: f64, orig: &Value<'_>) {
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
fn shortest_digits(a: f64) -> (String, i32) {
    split_exp(&format!("{a:e}"))
}

/// `prec + 1` significant digits, correctly rounded, and the exponent.
fn exp_digits(a: f64, prec: usize) -> (String, i32) {
    split_exp(&format!("{a:.prec$e}"))
}

fn split_exp(s: &str) -> (String, i32) {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `d.ddde±XX`, Go's exponent form (at least two exponent digits).
fn e_form(digits: &str, exp: i32, upper: bool) -> String {
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
fn plain_form(digits: &str, exp: i32) -> String {
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
fn format_g(a: f64, prec: Option<usize>, upper: bool) -> String {
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

fn fmt_str(out: &mut String, verb: char, spec: &Spec, s: &str, orig: &Value<'_>) {
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
fn sprint(args: &[Value<'_>], line: bool) -> String {
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

const VERBS: &str = "vsdqtfFeEgGxXcobUT";
const MAX_WIDTH: usize = 1_000_000;

/// Go's `fmt.Sprintf` for the supported verbs; unsupported verbs and features are errors.
fn sprintf(format: &str, args: &[Value<'_>]) -> Result<String, String> {
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
fn is_printable(c: char) -> bool {
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

fn quote_char(out: &mut String, c: char, quote: char, ascii_only: bool) {
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
fn quote_str(out: &mut String, s: &str, ascii_only: bool) {
    out.push('"');
    for c in s.chars() {
        quote_char(out, c, '"', ascii_only);
    }
    out.push('"');
}

/// Go's `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| !((c < ' ' && c != '\t') || c == '`' || c == '\u{7f}' || c == '\u{feff}'))
}

// ---------------------------------------------------------------------------------------
// JSON (Go's encoding/json) and base64
// ---------------------------------------------------------------------------------------

/// Encode like Go's `json.Marshal`: sorted object keys, HTML-safe strings, bytes as
/// base64; fails on NaN and infinities.
fn write_json(out: &mut String, v: &Value<'_>) -> Result<(), ()> {
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
                json_str(out, k);
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
fn json_float(out: &mut String, f: f64) -> Result<(), ()> {
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

fn json_str(out: &mut String, s: &str) {
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

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * k)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding, like Go's `base64.StdEncoding` (newlines ignored); the
/// error names the offending input byte as Go does.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_domain::opencdc::Position;
    use proptest::prelude::*;
    use serde_json::json;

    fn object(v: serde_json::Value) -> JsonMap {
        match v {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    /// The record the expected outputs were produced with in Go (same data, Go types).
    fn record() -> Record {
        Record {
            position: Position(b"pos-1".to_vec()),
            operation: Operation::Create,
            metadata: [
                ("table", "postgres"),
                ("opencdc.readAt", "1700000000"),
                ("x", "hello"),
                ("empty", ""),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            key: Some(Data::Structured(object(json!({"id": 7})))),
            payload: Change {
                before: Some(Data::Raw(b"hi".to_vec())),
                after: Some(Data::Structured(object(json!({
                    "name": "alice", "age": 30, "score": 3.5, "big": 1_000_000.0,
                    "a": {"b": {"c": "deep"}}, "list": [1, 2.5, "x", null, true],
                    "nul": null, "t": true, "f": false, "zero": 0, "fz": 0.0,
                    "emptys": "", "emptyl": [], "emptym": {},
                    "nested": {"z": 1, "a": [1, {"k": "v"}]}
                })))),
            },
        }
    }

    fn render(text: &str) -> Result<String, TemplateError> {
        Template::parse(text)?.render(&record())
    }

    fn ok(text: &str) -> String {
        match render(text) {
            Ok(s) => s,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn exec_err(text: &str) -> String {
        match render(text) {
            Err(TemplateError::Exec(m)) => m,
            other => panic!("{text}: expected an exec error, got {other:?}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match Template::parse(text) {
            Err(TemplateError::Parse(m)) => m,
            other => panic!("{text}: expected a parse error, got {other:?}"),
        }
    }

    /// (template, output) pairs checked against Go's text/template with sprig v3.
    fn check_all(cases: &[(&str, &str)]) {
        for (text, want) in cases {
            assert_eq!(ok(text), *want, "template {text}");
        }
    }

    #[test]
    fn plain_text_is_literal_and_renders_unchanged() {
        for text in ["", "hello", "a } b }} c", "{ {x} }", "line\nline\t"] {
            let t = Template::parse(text).unwrap();
            assert!(t.is_literal(), "{text:?}");
            assert_eq!(t.render(&record()).unwrap(), text);
        }
        for text in ["{{ 1 }}", "a{{/* c */}}b", "{{ if 1 }}x{{ end }}"] {
            assert!(!Template::parse(text).unwrap().is_literal(), "{text:?}");
        }
        assert_eq!(ok("a{{/* comment */}}b"), "ab");
        assert_eq!(ok("a{{/* multi\nline */}}b"), "ab");
    }

    #[test]
    fn metadata_equality() {
        assert_eq!(ok(r#"{{ eq .Metadata.table "postgres" }}"#), "true");
        assert_eq!(ok(r#"{{ eq .Metadata.table "mysql" }}"#), "false");
        assert_eq!(ok(r#"{{ eq .Metadata.table "mysql" "postgres" }}"#), "true");
        assert_eq!(ok(r#"{{ ne .Metadata.table "mysql" }}"#), "true");
        let mut other = record();
        other.metadata.insert("table".into(), "mysql".into());
        let t = Template::parse(r#"{{ eq .Metadata.table "postgres" }}"#).unwrap();
        assert_eq!(t.render(&other).unwrap(), "false");
        assert_eq!(t.render(&record()).unwrap(), "true");
    }

    #[test]
    fn missing_metadata_key() {
        assert_eq!(ok(r#"{{ eq .Metadata.missing "x" }}"#), "false");
        assert_eq!(ok(r#"{{ ne .Metadata.missing "x" }}"#), "true");
        assert_eq!(ok("{{ .Metadata.missing }}"), "<no value>");
        assert_eq!(ok("{{ print .Metadata.missing }}"), "<nil>");
        assert_eq!(ok("{{ eq .Metadata.missing .Metadata.other }}"), "true");
        assert_eq!(ok("{{ eq .Metadata.missing nil }}"), "true");
        // Go navigates on from a missing key without error.
        assert_eq!(ok("{{ .Metadata.missing.x }}"), "<no value>");
        assert_eq!(ok("{{ if .Metadata.missing }}y{{ else }}n{{ end }}"), "n");
        // index on metadata gives the zero string, as Go does for map[string]string.
        assert_eq!(ok(r#"{{ index .Metadata "missing" }}|"#), "|");
    }

    #[test]
    fn structured_payload_fields() {
        assert_eq!(ok("{{ .Payload.After.name }}"), "alice");
        assert_eq!(ok("{{ .Payload.After.a.b }}"), "map[c:deep]");
        assert_eq!(ok("{{ .Payload.After.a.b.c }}"), "deep");
        assert_eq!(ok("{{ .Key.id }}"), "7");
        assert_eq!(ok("{{ $.Payload.After.name }}"), "alice");
        assert_eq!(ok("{{ (.Payload.After).name }}"), "alice");
        assert_eq!(ok(r#"{{ (index .Payload.After "a").b.c }}"#), "deep");
        assert_eq!(ok("{{ .Payload.After.nul }}"), "<no value>");
        assert_eq!(ok("{{ .Payload.After.missing }}"), "<no value>");
        assert_eq!(ok("{{ .Payload.After.list }}"), "[1 2.5 x <nil> true]");
        assert_eq!(ok("{{ .Payload.After.nested }}"), "map[a:[1 map[k:v]] z:1]");
        assert_eq!(ok("{{ .Payload.After.emptym }}"), "map[]");
        assert_eq!(ok("{{ .Payload.Before }}"), "[104 105]");
        assert_eq!(ok("{{ .Key }}"), "map[id:7]");
        assert_eq!(
            ok("{{ .Metadata }}"),
            "map[empty: opencdc.readAt:1700000000 table:postgres x:hello]"
        );
    }

    #[test]
    fn whole_record_prints_like_a_go_struct() {
        assert_eq!(
            ok("{{ .Payload }}"),
            "{[104 105] map[a:map[b:map[c:deep]] age:30 big:1e+06 emptyl:[] emptym:map[] \
             emptys: f:false fz:0 list:[1 2.5 x <nil> true] name:alice nested:map[a:[1 map[k:v]] \
             z:1] nul:<nil> score:3.5 t:true zero:0]}"
        );
        let whole = ok("{{ . }}");
        assert!(
            whole.starts_with(
                "{pos-1 create map[empty: opencdc.readAt:1700000000 table:postgres x:hello] \
                 map[id:7] {[104 105] map[a:"
            ),
            "{whole}"
        );
        assert_eq!(
            ok(r#"{{ printf "%+v" .Key }}|{{ printf "%+v" (.Payload) | len | lt 10 }}"#),
            "map[id:7]|true"
        );
        let empty = Template::parse("{{ .Key }}|{{ .Payload.After }}|{{ .Payload }}")
            .unwrap()
            .render(&Record::default())
            .unwrap();
        assert_eq!(empty, "<nil>|<nil>|{<nil> <nil>}");
    }

    #[test]
    fn field_errors() {
        let e = exec_err("{{ .Foo }}");
        assert!(
            e.contains("can't evaluate field Foo in type opencdc.Record"),
            "{e}"
        );
        assert!(e.starts_with("template: :1:3: executing at <.Foo>"), "{e}");
        let e = exec_err("{{ .Payload.Foo }}");
        assert!(
            e.contains("can't evaluate field Foo in type opencdc.Change"),
            "{e}"
        );
        let e = exec_err("{{ .Payload.Before.x }}");
        assert!(
            e.contains("can't evaluate field x in type opencdc.RawData"),
            "{e}"
        );
        let e = exec_err("{{ .Payload.After.name.first }}");
        assert!(
            e.contains("can't evaluate field first in type string"),
            "{e}"
        );
        let e = exec_err("{{ .Payload.After.list.x }}");
        assert!(e.contains("field x in type []interface {}"), "{e}");
        let e = exec_err("{{ .Metadata.table.x }}");
        assert!(e.contains("field x in type string"), "{e}");
        let e = exec_err("{{ .Operation.x }}");
        assert!(e.contains("field x in type opencdc.Operation"), "{e}");
        let e = exec_err("{{ .Payload.After.nul.x }}");
        assert!(e.contains("nil pointer evaluating interface {}.x"), "{e}");
        let t = Template::parse("{{ .Key.id }}").unwrap();
        let e = t.render(&Record::default()).unwrap_err().to_string();
        assert!(e.contains("nil pointer evaluating opencdc.Data.id"), "{e}");
        // The error is raised only when the action runs.
        assert_eq!(ok("{{ if false }}{{ .Foo }}{{ end }}ok"), "ok");
        let e = exec_err("line\n{{ .Foo }}");
        assert!(e.starts_with("template: :2:3:"), "{e}");
    }

    #[test]
    fn operation_and_position() {
        assert_eq!(ok("{{ .Operation }}"), "create");
        assert_eq!(ok(r#"{{ eq .Operation "create" }}"#), "true");
        assert_eq!(ok(r#"{{ eq .Operation "update" }}"#), "false");
        assert_eq!(ok(r#"{{ eq .Operation.String "create" }}"#), "true");
        assert_eq!(ok("{{ eq .Operation 1 }}"), "true");
        assert_eq!(ok(r#"{{ .Operation | upper }}"#), "CREATE");
        assert_eq!(
            ok(r#"{{ printf "%s|%v|%d|%q" .Operation .Operation .Operation .Operation }}"#),
            "create|create|1|\"create\""
        );
        let mut r = record();
        r.operation = Operation::Snapshot;
        let t = Template::parse(r#"{{ if eq .Operation "snapshot" }}snap{{ end }}"#).unwrap();
        assert_eq!(t.render(&r).unwrap(), "snap");
        assert_eq!(ok("{{ .Position }}"), "pos-1");
        assert_eq!(ok("{{ .Position.String }}"), "pos-1");
        assert_eq!(ok("{{ len .Position }}"), "5");
        assert_eq!(
            ok(r#"{{ printf "%s|%v|%d|%x" .Position .Position .Position .Position }}"#),
            "pos-1|pos-1|[112 111 115 45 49]|706f732d31"
        );
    }

    #[test]
    fn if_else_chains() {
        let t = Template::parse(
            r#"{{ if eq .Metadata.table "a" }}A{{ else if eq .Metadata.table "postgres" }}P{{ else }}E{{ end }}"#,
        )
        .unwrap();
        assert_eq!(t.render(&record()).unwrap(), "P");
        let mut r = record();
        r.metadata.insert("table".into(), "a".into());
        assert_eq!(t.render(&r).unwrap(), "A");
        r.metadata.insert("table".into(), "z".into());
        assert_eq!(t.render(&r).unwrap(), "E");
        check_all(&[
            (
                r#"{{ if 0 }}a{{ else if "" }}b{{ else if .Payload.After.emptyl }}c{{ else }}d{{ end }}"#,
                "d",
            ),
            ("{{ if .Payload.After.t }}t{{ end }}", "t"),
            ("{{ if .Payload.Before }}raw{{ end }}", "raw"),
            ("{{ if .Metadata }}m{{ end }}", "m"),
            ("{{ if . }}rec{{ end }}", "rec"),
            ("{{ if .Operation }}op{{ end }}", "op"),
            (
                "{{ if .Payload.After.fz }}x{{ else }}zero float{{ end }}",
                "zero float",
            ),
            (
                "{{ if .Payload.After.emptym }}x{{ else }}empty map{{ end }}",
                "empty map",
            ),
            (
                r#"{{ if 1 }}{{ if 0 }}a{{ else }}{{ if "x" }}b{{ end }}{{ end }}{{ end }}"#,
                "b",
            ),
            (
                r#"{{ if and .Metadata.table (eq .Metadata.table "postgres") }}yes{{ end }}"#,
                "yes",
            ),
        ]);
    }

    #[test]
    fn trim_markers() {
        check_all(&[
            ("a  {{- 1 -}}  b", "a1b"),
            ("{{-3}}", "-3"),
            ("a {{- /* c */ -}} b", "ab"),
            ("a {{/* c */}} b", "a  b"),
            ("{{ 3 -}} x", "3x"),
            ("a \n {{- 1 }}\n b {{ 2 -}}\n\n c", "a1\n b 2c"),
            ("{{-\n1 -}}\nx", "1x"),
            ("{{ 1 -}}", "1"),
            (r#"{{ "a" }}{{- "b" -}}{{ "c" }}"#, "abc"),
            ("x {{/* c */ -}}  y", "x y"),
        ]);
        // Without the space, "-" is part of a number.
        assert_eq!(ok("{{-1}}"), "-1");
    }

    #[test]
    fn pipelines() {
        check_all(&[
            ("{{ .Metadata.x | upper }}", "HELLO"),
            (r#"{{ "abc" | hasPrefix "a" }}"#, "true"),
            (r#"{{ .Metadata.x | upper | printf "%s!" }}"#, "HELLO!"),
            (r#"{{ "x" | printf "%s-%s" "a" }}"#, "a-x"),
            ("{{ .Payload.After.name | len }}", "5"),
            ("{{ .Payload.After.a.b | toJson }}", r#"{"c":"deep"}"#),
            (
                r#"{{ .Payload.After.a.b.c | upper | replace "E" "3" | trunc 3 }}"#,
                "D33",
            ),
            (
                r#"{{ index .Metadata "opencdc.readAt" | atoi | add 1 }}"#,
                "1700000001",
            ),
            (r#"{{ default "none" .Metadata.nothing | upper }}"#, "NONE"),
            ("{{ print (1) }}|{{ (print 1) }}|{{ ( 1 ) }}", "1|1|1"),
            ("{{ print (list) }}", "[]"),
        ]);
    }

    #[test]
    fn and_or_return_the_deciding_value() {
        check_all(&[
            (
                r#"{{ and 1 0 2 }}|{{ or 0 "" "x" 3 }}|{{ and 1 2 }}|{{ or 0 "" }}"#,
                "0|x|2|",
            ),
            ("{{ not 0 }}|{{ not \"x\" }}", "true|false"),
            (
                "{{ or .Metadata.missing .Metadata.x }}|{{ and .Metadata.x .Metadata.missing }}",
                "hello|<no value>",
            ),
            (r#"{{ "v" | and 1 }}|{{ "" | or 0 }}"#, "v|"),
        ]);
        // Short-circuit: the failing argument is never evaluated.
        assert_eq!(ok("{{ or 1 .Foo }}|{{ and 0 .Foo }}"), "1|0");
        assert!(exec_err("{{ and 1 .Foo }}").contains("field Foo"));
        assert!(
            exec_err("{{ and }}").contains("wrong number of args for and: want at least 1 got 0")
        );
    }

    #[test]
    fn index_function() {
        check_all(&[
            (r#"{{ index .Metadata "opencdc.readAt" }}"#, "1700000000"),
            (r#"{{ index .Payload.After "nul" }}"#, "<no value>"),
            ("{{ index .Payload.After.list 1 }}", "2.5"),
            (r#"{{ index .Payload.After "a" "b" "c" }}"#, "deep"),
            ("{{ index .Payload.After.name 0 }}", "97"),
            (
                "{{ index .Position 0 }}|{{ index .Payload.Before 1 }}",
                "112|105",
            ),
            (r#"{{ eq (index .Payload.After "list" 2) "x" }}"#, "true"),
            (r#"{{ index (split "." "a.b.c") "_9" }}|"#, "|"),
        ]);
        assert!(exec_err("{{ index .Payload.After.list 10 }}").contains("index out of range: 10"));
        assert!(exec_err("{{ index .Payload.After.list 1.0 }}")
            .contains("cannot index slice/array with type float64"));
        assert!(
            exec_err("{{ index .Metadata 1 }}").contains("value has type int; should be string")
        );
        assert!(exec_err("{{ index nil 1 }}").contains("index of untyped nil"));
    }

    #[test]
    fn comparisons() {
        check_all(&[
            ("{{ eq .Payload.After.age 30 }}", "true"),
            // Lenient: Go reports incompatible types for int vs float.
            ("{{ eq .Payload.After.age 30.0 }}|{{ lt 1 2.5 }}|{{ eq 1 1.5 }}", "true|true|false"),
            ("{{ eq .Payload.After.score 3.5 }}", "true"),
            ("{{ eq .Payload.After.nul nil }}|{{ eq nil nil }}", "true|true"),
            (
                "{{ eq .Payload.After.nul 1 }}|{{ eq 1 .Payload.After.nul }}|{{ ne .Payload.After.nul 1 }}",
                "false|false|true",
            ),
            (r#"{{ eq "a" "b" "a" }}|{{ eq .Payload.After.t true }}"#, "true|true"),
            (r#"{{ le 2 2 }}|{{ ge "b" "a" }}|{{ gt 3 2 }}|{{ lt -1 0 }}"#, "true|true|true|true"),
            (r#"{{ le 1 1 }}{{ ge 1 2 }}{{ gt "b" "a" }}{{ lt "B" "a" }}"#, "truefalsetruetrue"),
        ]);
        let e = exec_err(r#"{{ eq true "true" }}"#);
        assert!(
            e.contains("error calling eq: incompatible types for comparison: bool and string"),
            "{e}"
        );
        assert!(exec_err(r#"{{ lt "a" 1 }}"#).contains("incompatible types for comparison"));
        assert!(exec_err("{{ lt true false }}").contains("invalid type for comparison"));
        assert!(exec_err("{{ lt .Metadata.missing 1 }}").contains("invalid type for comparison"));
        assert!(exec_err("{{ eq .Payload.After.list 1 }}").contains("non-comparable type"));
        let e = exec_err("{{ eq .Metadata.x }}");
        assert!(
            e.contains("wrong number of args for eq: want at least 2 got 1"),
            "{e}"
        );
        assert!(exec_err("{{ ne 1 2 3 }}").contains("wrong number of args for ne: want 2 got 3"));
    }

    #[test]
    fn printf_and_print() {
        check_all(&[
            (
                r#"{{ printf "%s-%d-%q-%t-%.2f-%x-%%-%v" "a" 5 "q\"" true 3.14159 255 .Payload.After.list }}"#,
                r#"a-5-"q\""-true-3.14-ff-%-[1 2.5 x <nil> true]"#,
            ),
            (r#"{{ printf "%5.1f|%-5d|%05d|%x|%X" 3.14159 42 42 "hi" 255 }}"#, "  3.1|42   |00042|6869|FF"),
            (
                r#"{{ printf "%8.3f|%-8.2f|%+d|% d|%x|%X|%o|%b|%e|%E|%g|%c|%U" 3.14159 2.5 5 5 -255 255 8 5 1234.5678 0.000123 0.00001234 65 65 }}"#,
                "   3.142|2.50    |+5| 5|-ff|FF|10|101|1.234568e+03|1.230000E-04|1.234e-05|A|U+0041",
            ),
            (
                r#"{{ printf "%5s|%-5s|%.2s|%5v|%q|%d" "ab" "ab" "hello" (list 1 2) 65 (list 1 "a") }}"#,
                "   ab|ab   |he|[    1     2]|'A'|[1 %!d(string=a)]",
            ),
            (
                r#"{{ printf "%d" "x" }}|{{ printf "%s" 5 }}|{{ printf "%d" }}|{{ printf "a" 1 }}"#,
                "%!d(string=x)|%!s(int=5)|%!d(MISSING)|a%!(EXTRA int=1)",
            ),
            (
                r#"{{ printf "%d %d" 1 }}|{{ printf "%d" 1 2 3 }}|{{ printf "%" }}|{{ printf "%d" nil }}|{{ printf "%v" nil }}"#,
                "1 %!d(MISSING)|1%!(EXTRA int=2, int=3)|%!(NOVERB)|%!d(<nil>)|<nil>",
            ),
            (r#"{{ printf "%.0f|%.1f|%.3f|%f" 2.5 0.05 1.0005 1e21 }}"#, "2|0.1|1.000|1000000000000000000000.000000"),
            (r#"{{ printf "%5.1f|%-7.2f|%07.2f|%+.1f" -3.14159 2.5 -2.5 2.0 }}"#, " -3.1|2.50   |-002.50|+2.0"),
            (r#"{{ printf "%6.2v|%.3v|%10.4g" 3.14159 3.14159 3.14159 }}"#, "   3.1|3.14|     3.142"),
            (r#"{{ printf "%s|%v|%x|%q|%d" .Payload.Before .Payload.Before .Payload.Before .Payload.Before .Payload.Before }}"#,
                r#"hi|[104 105]|6869|"hi"|[104 105]"#),
            (r#"{{ printf "%s" .Payload.After.nested }}"#, "map[a:[%!s(int=1) map[k:v]] z:%!s(int=1)]"),
            (r#"{{ printf "%T %T %T %T %T" 1 1.5 "s" true nil }}"#, "int float64 string bool <nil>"),
            (r#"{{ printf "%05s|%#x|%#o|%#b|%#08x|% x" "ab" 255 8 5 255 "hi" }}"#, "000ab|0xff|010|0b101|0x000000ff|68 69"),
            (r#"{{ printf "%+q|%#q|%#U" "é" "a`b" 65 }}"#, r#""\u00e9"|"a`b"|U+0041 'A'"#),
            (
                r#"{{ print "a" "b" 1 2 "c" 3.5 true }}|{{ println "a" 1 }}|{{ print nil }}"#,
                "ab1 2c3.5 true|a 1\n|<nil>",
            ),
            ("{{ print .Payload.Before .Payload.Before }}|{{ print .Operation .Operation }}", "[104 105] [104 105]|create create"),
            (r#"{{ print (list 1 2) (list 3) }}|{{ print "x" (list 3) }}"#, "[1 2] [3]|x[3]"),
        ]);
        let e = exec_err(r#"{{ printf "%z" 1 }}"#);
        assert!(
            e.contains("error calling printf: printf: unsupported verb %z"),
            "{e}"
        );
        assert!(exec_err(r#"{{ printf "%*d" 1 2 }}"#).contains("not supported"));
        assert!(exec_err(r#"{{ printf "%[1]d" 1 }}"#).contains("not supported"));
        assert!(exec_err(r#"{{ printf "%#v" 1 }}"#).contains("not supported"));
        assert!(exec_err("{{ printf 5 }}").contains("expected string; got int"));
    }

    #[test]
    fn numbers_print_like_go() {
        // Outputs of Go's fmt.Sprint (%v) for the same float64 values.
        check_all(&[
            ("{{ 1000000.0 }}", "1e+06"),
            ("{{ 123456.0 }}", "123456"),
            ("{{ 1234567.0 }}", "1.234567e+06"),
            ("{{ 0.0001 }}", "0.0001"),
            ("{{ 0.00001 }}", "1e-05"),
            ("{{ 3.5 }}", "3.5"),
            ("{{ 100.0 }}", "100"),
            ("{{ 1e20 }}", "1e+20"),
            ("{{ 1e21 }}", "1e+21"),
            ("{{ 123456789012345678.0 }}", "1.2345678901234568e+17"),
            ("{{ 12345678.9 }}", "1.23456789e+07"),
            ("{{ -1234567.0 }}", "-1.234567e+06"),
            ("{{ 999999.0 }}", "999999"),
            ("{{ 123456.7 }}", "123456.7"),
            ("{{ 0.1 }}", "0.1"),
            ("{{ 5e-324 }}", "5e-324"),
            ("{{ 1.7976931348623157e308 }}", "1.7976931348623157e+308"),
            ("{{ -0.0 }}", "-0"),
            (
                "{{ 1.0 }} {{ 1e0 }} {{ 1. }} {{ .5 }} {{ 1e3 }}",
                "1 1 1 0.5 1000",
            ),
            ("{{ 1.5e300 }} {{ 1e-300 }}", "1.5e+300 1e-300"),
            (
                "{{ 1 }} {{ -42 }} {{ 9223372036854775807 }}",
                "1 -42 9223372036854775807",
            ),
            (
                "{{ 'a' }}|{{ 0x10 }}|{{ 1_000 }}|{{ 07 }}|{{ 0o7 }}|{{ 0b11 }}|{{ +5 }}",
                "97|16|1000|7|7|3|5",
            ),
            // JSON numbers: integers stay ints, floats are floats.
            (
                "{{ .Payload.After.big }}|{{ .Payload.After.score }}|{{ .Payload.After.age }}",
                "1e+06|3.5|30",
            ),
            (
                "{{ float64 1000000 }}|{{ float64 .Payload.After.age }}",
                "1e+06|30",
            ),
        ]);
        let e = parse_err("{{ 9223372036854775808 }}");
        assert!(e.contains("integer overflow"), "{e}");
    }

    #[test]
    fn to_json() {
        check_all(&[
            (
                "{{ toJson .Payload.After }}",
                r#"{"a":{"b":{"c":"deep"}},"age":30,"big":1000000,"emptyl":[],"emptym":{},"emptys":"","f":false,"fz":0,"list":[1,2.5,"x",null,true],"name":"alice","nested":{"a":[1,{"k":"v"}],"z":1},"nul":null,"score":3.5,"t":true,"zero":0}"#,
            ),
            (
                "{{ toJson .Payload.Before }}|{{ toJson .Metadata }}|{{ toJson .Position }}|{{ toJson .Operation }}|{{ toJson .Metadata.missing }}",
                r#""aGk="|{"empty":"","opencdc.readAt":"1700000000","table":"postgres","x":"hello"}|"cG9zLTE="|"create"|null"#,
            ),
            (
                "{{ toJson 1e21 }}|{{ toJson 1e20 }}|{{ toJson 1.5e-7 }}|{{ toJson 1e-6 }}|{{ toJson -0.0 }}|{{ toJson 2.5e-10 }}",
                "1e+21|100000000000000000000|1.5e-7|0.000001|-0|2.5e-10",
            ),
            (
                r#"{{ toJson "\b\f\n\r\t\x01\u2028<>&\"\\é\x7f" }}"#,
                "\"\\b\\f\\n\\r\\t\\u0001\\u2028\\u003c\\u003e\\u0026\\\"\\\\é\u{7f}\"",
            ),
            (
                r#"{{ toJson (list 1 "a" nil 1.5 true) }}|{{ toJson (split "," "a,b") }}"#,
                r#"[1,"a",null,1.5,true]|{"_0":"a","_1":"b"}"#,
            ),
            (
                "{{ toJson . }}",
                r#"{"position":"cG9zLTE=","operation":"create","metadata":{"empty":"","opencdc.readAt":"1700000000","table":"postgres","x":"hello"},"key":{"id":7},"payload":{"before":"aGk=","after":{"a":{"b":{"c":"deep"}},"age":30,"big":1000000,"emptyl":[],"emptym":{},"emptys":"","f":false,"fz":0,"list":[1,2.5,"x",null,true],"name":"alice","nested":{"a":[1,{"k":"v"}],"z":1},"nul":null,"score":3.5,"t":true,"zero":0}}}"#,
            ),
        ]);
        // The JSON of the record parses back to the same record (integral floats such as
        // 1000000.0 are written as Go writes them, 1000000, and so come back as ints).
        let mut r = record();
        if let Some(Data::Structured(after)) = &mut r.payload.after {
            after.remove("big");
            after.remove("fz");
        }
        let json = Template::parse("{{ toJson . }}")
            .unwrap()
            .render(&r)
            .unwrap();
        assert_eq!(Record::from_json(json.as_bytes()).unwrap(), r);
    }

    #[test]
    fn regex_functions() {
        check_all(&[
            (
                r#"{{ regexMatch "^a.c$" "abc" }}|{{ regexMatch "^a.c$" "abcd" }}|{{ regexFind "[0-9]+" "ab123cd45" }}|{{ regexFind "z" "abc" }}"#,
                "true|false|123|",
            ),
            (
                r#"{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}|{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}"#,
                "-W-xxW-|---",
            ),
            (
                r#"{{ regexReplaceAll "(?P<first>a)" "abc" "[$first]" }}|{{ regexFind "(?i)B" "abc" }}"#,
                "[a]bc|b",
            ),
            // Go's \d and \w are ASCII.
            (
                r#"{{ regexMatch "\\d" "٣" }}|{{ regexMatch "\\w" "é" }}|{{ regexMatch "\\d" "3" }}"#,
                "false|false|true",
            ),
            (
                r#"{{ regexMatch "[\\d]x" "٣x" }}|{{ regexMatch "^[^\\s]+$" "a b" }}|{{ regexMatch "\\bfoo\\b" "a foo b" }}"#,
                "false|false|true",
            ),
            (
                r#"{{ regexMatch "[[:alpha:]]+" "abc" }}|{{ regexMatch "[]a]" "]" }}|{{ regexMatch "[a[]" "[" }}"#,
                "true|true|true",
            ),
            (
                r#"{{ regexMatch "^post" .Metadata.table }}|{{ .Metadata.table | regexMatch "gres$" }}"#,
                "true|true",
            ),
            (
                r#"{{ regexMatch (print "^" "po") .Metadata.table }}|{{ regexMatch (print "^" "xo") .Metadata.table }}"#,
                "true|false",
            ),
            // sprig's regexMatch ignores an invalid pattern.
            (
                r#"{{ regexMatch "[" "abc" }}|{{ regexMatch (print "(") "x" }}"#,
                "false|false",
            ),
        ]);
        assert!(exec_err(r#"{{ regexFind "[" "x" }}"#)
            .contains("error calling regexFind: error parsing regexp"));
        assert!(exec_err(r#"{{ regexReplaceAll (print "(") "x" "y" }}"#)
            .contains("error calling regexReplaceAll"));
        // A non-literal pattern is compiled once and cached.
        let t = Template::parse(r#"{{ regexMatch .Metadata.p .Metadata.s }}"#).unwrap();
        for (p, s, want) in [
            ("^a+$", "aaa", "true"),
            ("^b", "abc", "false"),
            ("^a+$", "ab", "false"),
        ] {
            let mut r = record();
            r.metadata.insert("p".into(), p.into());
            r.metadata.insert("s".into(), s.into());
            assert_eq!(t.render(&r).unwrap(), want, "{p} {s}");
        }
        assert_eq!(t.regex_cache.compiled.lock().unwrap().len(), 2);
    }

    #[test]
    fn sprig_functions() {
        check_all(&[
            (
                r#"{{ contains "li" .Payload.After.name }}|{{ hasPrefix "a" "abc" }}|{{ hasSuffix "c" "abc" }}|{{ contains "gre" .Metadata.table }}"#,
                "true|true|true|true",
            ),
            (
                r#"{{ lower "ABC" }}|{{ upper "abc" }}|{{ title "hello wORLD foo-bar" }}|{{ trim "  x  " }}|{{ trimPrefix "a" "aab" }}|{{ trimSuffix "b" "abb" }}|{{ trimAll "$" "$$5$" }}"#,
                "abc|ABC|Hello WORLD Foo-Bar|x|ab|ab|5",
            ),
            (r#"{{ title "o'neil ña élan 3rd x_y" }}|{{ upper "héllo ß" }}|{{ lower "HÉLLO" }}"#, "O'Neil Ña Élan 3rd X_y|HÉLLO ß|héllo"),
            (r#"{{ trimAll "" "  x " }}|{{ trim "\t\n x \u00a0" }}|{{ trimAll "ab" "abxba" }}"#, "  x |x|x"),
            (
                r#"{{ replace "a" "b" "banana" }}|{{ repeat 3 "ab" }}|{{ substr 1 3 "hello" }}|{{ substr 0 10 "hello" }}|{{ substr -1 2 "hello" }}|{{ trunc 2 "hello" }}|{{ trunc -2 "hello" }}|{{ trunc 10 "hi" }}"#,
                "bbnbnb|ababab|el|hello|he|he|lo|hi",
            ),
            (r#"{{ substr 2 100 "hello" }}|{{ trunc -10 "hello" }}|{{ trunc 0 "hello" }}|{{ repeat 2.0 "x" }}"#, "llo|hello||xx"),
            (
                r#"{{ quote "a" 1 "b\"" }}|{{ squote "a" 1 }}|{{ quote nil }}|{{ quote .Metadata.missing }}|{{ quote }}"#,
                r#""a" "1" "b\""|'a' '1'|||"#,
            ),
            (r#"{{ squote nil "a" }}|{{ quote .Operation .Position .Payload.Before 1.5 (list 1) }}"#, r#"'a'|"create" "pos-1" "[104 105]" "1.5" "[1]""#),
            (r#"{{ quote "a\x01\u00a0é" }}"#, r#""a\x01\u00a0é""#),
            (
                r#"{{ default "d" "" }}|{{ default "d" "x" }}|{{ default "d" .Metadata.missing }}|{{ default "d" 0 }}|{{ default "d" .Payload.After.emptyl }}|{{ default "d" }}"#,
                "d|x|d|d|d|d",
            ),
            (r#"{{ default "d" .Payload.After.nul }}|{{ default "d" .Payload.Before }}"#, "d|[104 105]"),
            (
                r#"{{ empty "" }}|{{ empty 0 }}|{{ empty .Payload.After.emptym }}|{{ empty .Metadata.missing }}|{{ empty "x" }}|{{ empty .Payload.After.nul }}|{{ empty false }}|{{ empty .Payload.Before }}"#,
                "true|true|true|true|false|true|true|false",
            ),
            (r#"{{ coalesce "" 0 "x" "y" }}|{{ coalesce "" 0 }}|{{ coalesce }}"#, "x|<no value>|<no value>"),
            (r#"{{ coalesce .Metadata.missing .Payload.After.nul .Payload.After.zero .Payload.After.name }}"#, "alice"),
            (r#"{{ ternary "a" "b" true }}|{{ ternary "a" "b" false }}|{{ true | ternary "y" "n" }}"#, "a|b|y"),
            (
                r#"{{ toString 1.5 }}|{{ toString .Payload.After.list }}|{{ toString nil }}|{{ toString .Metadata.missing }}|{{ toString .Payload.Before }}|{{ toString .Operation }}|{{ toString .Position }}"#,
                "1.5|[1 2.5 x <nil> true]|<nil>|<nil>|[104 105]|create|pos-1",
            ),
            (
                r#"{{ atoi "42" }}|{{ atoi "x" }}|{{ atoi "4.5" }}|{{ atoi " 4" }}|{{ int "42" }}|{{ int 4.9 }}|{{ int "4.9" }}|{{ int "x" }}|{{ int64 "12" }}|{{ float64 "1.5" }}|{{ float64 "x" }}|{{ float64 3 }}|{{ int true }}|{{ int nil }}"#,
                "42|0|0|0|42|4|0|0|12|1.5|0|3|1|0",
            ),
            (r#"{{ int "0x10" }}|{{ int "010" }}|{{ int64 "1e3" }}|{{ float64 "1e3" }}|{{ int "-5" }}|{{ int64 -4.7 }}"#, "16|8|0|1000|-5|-4"),
            (
                r#"{{ atoi "+5" }}|{{ atoi "1_000" }}|{{ int "1_000" }}|{{ int "4.0" }}|{{ int "5." }}|{{ int64 "9223372036854775808" }}|{{ float64 "1_0" }}|{{ float64 "inf" }}"#,
                "5|0|1000|4|0|0|10|+Inf",
            ),
            ("{{ int 1e300 }}|{{ int .Payload.After.score }}|{{ int .Payload.Before }}", "-9223372036854775808|3|0"),
            (
                r#"{{ add 1 2 }}|{{ add 1 2.7 }}|{{ add "3" 4 }}|{{ add }}|{{ sub 5 2 }}|{{ mul 2 3 4 }}|{{ div 7 2 }}|{{ mod 7 3 }}|{{ max 1 5 3 }}|{{ min 4 2 8 }}|{{ add 1.5 1.5 }}"#,
                "3|3|7|0|3|24|3|1|5|2|2",
            ),
            ("{{ add 9223372036854775807 1 }}|{{ div -7 2 }}|{{ mod -7 2 }}|{{ div 5 2.5 }}", "-9223372036854775808|-3|-1|2"),
            (
                r#"{{ split "," "a,b,c" }}|{{ (split "," "a,b,c")._1 }}|{{ join "-" .Payload.After.list }}|{{ join "," (list 1 "a" 2.5) }}|{{ join "," "abc" }}"#,
                "map[_0:a _1:b _2:c]|b|1-2.5-x-true|1,a,2.5|abc",
            ),
            (r#"{{ join "," .Payload.Before }}|{{ join "," nil }}|{{ join "," 5 }}|{{ len (split "." "a.b.c") }}"#, "104,105||5|3"),
            (
                r#"{{ hasKey .Payload.After "name" }}|{{ hasKey .Payload.After "zz" }}|{{ keys .Payload.After.nested }}|{{ list 1 "a" nil }}|{{ b64enc "hello" }}|{{ b64dec "aGVsbG8=" }}|{{ b64dec "!!" }}"#,
                "true|false|[a z]|[1 a <nil>]|aGVsbG8=|hello|illegal base64 data at input byte 0",
            ),
            // Lenient: Go's hasKey and keys reject metadata (a map[string]string).
            (r#"{{ hasKey .Metadata "table" }}|{{ keys .Metadata }}|{{ keys .Key .Payload.After.a }}"#, "true|[empty opencdc.readAt table x]|[b id]"),
            (
                r#"{{ b64dec "aGk" }}|{{ b64dec "aG=k" }}|{{ b64dec "a" }}|{{ b64dec "" }}|{{ b64dec "YQ==" }}|{{ b64dec "YQ=" }}|{{ b64dec "YWI=YWI=" }}|{{ b64dec "aGVs\nbG8=" }}"#,
                "illegal base64 data at input byte 0|illegal base64 data at input byte 2|illegal base64 data at input byte 0||a|illegal base64 data at input byte 3|illegal base64 data at input byte 4|hello",
            ),
            (r#"{{ b64enc "" }}|{{ b64enc "a" }}|{{ b64enc "ab" }}|{{ b64enc "abc" }}|{{ b64enc .Metadata.table | b64dec }}"#, "|YQ==|YWI=|YWJj|postgres"),
            ("{{ len (list) }}|{{ list }}|{{ keys }}", "0|[]|[]"),
        ]);
        for (text, want) in [
            (
                r#"{{ substr 3 1 "hello" }}"#,
                "error calling substr: slice bounds out of range [3:1]",
            ),
            (r#"{{ substr 10 12 "hello" }}"#, "slice bounds out of range"),
            (
                r#"{{ repeat -1 "x" }}"#,
                "error calling repeat: negative repeat count",
            ),
            (
                r#"{{ trunc 2.5 "hello" }}"#,
                "expected integer; got float64",
            ),
            ("{{ div 1 0 }}", "error calling div: integer divide by zero"),
            ("{{ mod 1 0 }}", "error calling mod: integer divide by zero"),
            (
                r#"{{ ternary "a" "b" 1 }}"#,
                "error calling ternary: expected bool; got int",
            ),
            (
                r#"{{ contains "1" 123 }}"#,
                "error calling contains: wrong type for value; expected string; got int",
            ),
            (
                "{{ upper .Metadata.missing }}",
                "invalid value; expected string",
            ),
            ("{{ upper nil }}", "cannot use nil as string"),
            (
                "{{ lower .Payload.Before }}",
                "expected string; got opencdc.RawData",
            ),
            (
                "{{ upper }}",
                "wrong number of args for upper: want 1 got 0",
            ),
            (
                r#"{{ upper "a" "b" }}"#,
                "wrong number of args for upper: want 1 got 2",
            ),
            (
                r#"{{ hasPrefix "a" }}"#,
                "wrong number of args for hasPrefix: want 2 got 1",
            ),
            (
                r#"{{ hasKey .Payload.After.list "x" }}"#,
                "expected map[string]interface {}; got []interface {}",
            ),
            (
                "{{ min }}",
                "wrong number of args for min: want at least 1 got 0",
            ),
            ("{{ len 3 }}", "error calling len: len of type int"),
            ("{{ len nil }}", "error calling len: len of nil pointer"),
        ] {
            let e = exec_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn string_literals() {
        check_all(&[
            (
                r#"{{ "a\u00e9\U0001F600\x41\101\a\v" }}"#,
                "aé😀AA\u{7}\u{b}",
            ),
            ("{{ '\\n' }}|{{ '\\'' }}|{{ 'é' }}", "10|39|233"),
            ("{{ `raw\\n` }}", "raw\\n"),
            ("{{ `a\r\nb` }}", "a\nb"),
            (r#"{{ "}}" }}"#, "}}"),
            (r#"{{ "\xff" | len }}"#, "3"),
        ]);
        assert!(parse_err(r#"{{ "\'" }}"#).contains("invalid syntax"));
        assert!(parse_err(r#"{{ "abc }}"#).contains("unterminated quoted string"));
        assert!(parse_err("{{ \"a\nb\" }}").contains("unterminated quoted string"));
        assert!(parse_err("{{ `abc }}").contains("unterminated raw quoted string"));
        assert!(parse_err("{{ 'ab' }}").contains("malformed character constant"));
    }

    #[test]
    fn parse_errors() {
        for (text, want) in [
            ("{{ foo }}", r#"template: :1: function "foo" not defined"#),
            ("{{ .Metadata.x | nope }}", r#"function "nope" not defined"#),
            (
                "{{ if .Metadata.x }}{{ nope 1 }}{{ end }}",
                r#"function "nope" not defined"#,
            ),
            ("{{ .Metadata.x", "unclosed action"),
            ("a\n{{ .Metadata.x", "template: :2: unclosed action"),
            ("{{ if 1 }}x", "unexpected EOF"),
            ("{{ if 1 }}x{{ else }}y", "unexpected EOF"),
            ("{{ end }}", "unexpected {{end}}"),
            ("{{ else }}", "unexpected {{else}}"),
            (
                "{{ if 1 }}x{{ else }}y{{ else }}z{{ end }}",
                "expected {{end}}; found {{else}}",
            ),
            ("{{ if }}{{ end }}", "missing value for if"),
            ("{{if 1}}a{{else if}}b{{end}}", "missing value for if"),
            ("{{ end 1 }}", "unexpected number 1 in end"),
            (
                "{{ range .Payload.After.list }}{{ . }}{{ end }}",
                "{{range}} is not supported",
            ),
            (
                "{{ with .Key }}{{ .id }}{{ end }}",
                "{{with}} is not supported",
            ),
            (
                r#"{{ define "x" }}{{ end }}"#,
                "{{define}} is not supported",
            ),
            (r#"{{ template "x" }}"#, "{{template}} is not supported"),
            (
                r#"{{ block "x" . }}{{ end }}"#,
                "{{block}} is not supported",
            ),
            ("{{ break }}", "{{break}} is not supported"),
            (
                "{{ if 1 }}{{ else with 2 }}{{ end }}",
                "{{with}} is not supported",
            ),
            ("{{ $x := 1 }}", "variable declarations are not supported"),
            ("{{ $x = 1 }}", "variable declarations are not supported"),
            ("{{ $x }}", "variables are not supported"),
            ("{{ print ( }}", "unclosed left paren"),
            ("{{ print ) }}", "unexpected right paren"),
            ("{{ (print 1 }}", "unclosed left paren"),
            ("{{ }}", "missing value for command"),
            ("{{ .x | }}", "missing value for command"),
            ("{{ nil }}", "nil is not a command"),
            (r#"{{ "a" "b" }}"#, "can't give argument to non-function"),
            (r#"{{ .A "x" }}"#, "can't give argument to non-function .A"),
            ("{{ 1 | 2 }}", "non executable command in pipeline stage 2"),
            (
                "{{ .Metadata.x | .Metadata.y }}",
                "non executable command in pipeline stage 2",
            ),
            ("{{ /* c */ }}", r#"unexpected '/' in command"#),
            ("{{/* unclosed", "unclosed comment"),
            ("{{/* c */ x}}", "comment ends before closing delimiter"),
            ("{{ 1.2.3 }}", "bad number syntax"),
            ("{{ 0x1p4 }}", "hexadecimal floating-point"),
            ("{{ 1i }}", "complex numbers are not supported"),
            ("{{ print \"a\"\"b\" }}", "unexpected string"),
            ("{{ \"a\".x }}", "unexpected .x after term"),
            ("{{ print . . }}{{ $. }}", "unexpected . after term"),
            ("{{ print if }}", "unexpected keyword \"if\""),
            ("{{ .a-}}", "bad character '-'"),
            ("{{ # }}", "unexpected '#' in command"),
        ] {
            let e = parse_err(text);
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.starts_with("template: :"), "{e}");
        }
        let deep = format!("{}x{}", "{{ if 1 }}".repeat(200), "{{ end }}".repeat(200));
        assert!(parse_err(&deep).contains("nested too deeply"));
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(200), ")".repeat(200));
        assert!(parse_err(&deep).contains("nested too deeply"));
        let ok_nesting = format!("{}x{}", "{{ if 1 }}".repeat(50), "{{ end }}".repeat(50));
        assert_eq!(ok(&ok_nesting), "x");
    }

    #[test]
    fn parse_bool_matches_strconv() {
        for s in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(s), Some(true), "{s}");
        }
        for s in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(s), Some(false), "{s}");
        }
        for s in [
            "",
            "yes",
            "no",
            "tRUE",
            "fALSE",
            " true",
            "true ",
            "2",
            "<no value>",
            "on",
        ] {
            assert_eq!(parse_bool(s), None, "{s:?}");
        }
    }

    #[test]
    fn condition_use() {
        let cond = |text: &str, r: &Record| {
            let t = Template::parse(text).unwrap();
            parse_bool(&t.render(r).unwrap())
        };
        let r = record();
        assert_eq!(
            cond(r#"{{ eq .Metadata.table "postgres" }}"#, &r),
            Some(true)
        );
        assert_eq!(
            cond(r#"{{ hasPrefix "ali" .Payload.After.name }}"#, &r),
            Some(true)
        );
        assert_eq!(cond("{{ gt .Payload.After.age 40 }}", &r), Some(false));
        assert_eq!(cond(" {{- true -}} ", &r), Some(true));
        assert_eq!(cond("{{ .Metadata.missing }}", &r), None);
    }

    #[test]
    fn templates_are_reusable_and_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Template>();
        let t = Template::parse("{{ .Metadata.table }}-{{ .Payload.After.age }}").unwrap();
        let copy = t.clone();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let t = copy.clone();
                std::thread::spawn(move || {
                    let mut r = record();
                    r.metadata.insert("table".into(), format!("t{i}"));
                    t.render(&r).unwrap()
                })
            })
            .collect();
        for (i, h) in threads.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), format!("t{i}-30"));
        }
        assert_eq!(t.render(&record()).unwrap(), "postgres-30");
        assert!(format!("{t:?}").contains("Metadata.table"));
    }

    #[test]
    fn go_float_formatting_helpers() {
        assert_eq!(format_g(0.0, None, false), "0");
        assert_eq!(format_g(123.0, Some(0), false), "1e+02");
        assert_eq!(format_g(1.0 / 3.0, Some(10), false), "0.3333333333");
        assert_eq!(format_g(1e100, None, false), "1e+100");
        assert_eq!(format_g(1e-7, None, true), "1E-07");
        let mut s = String::new();
        fmt_float(&mut s, 'v', &Spec::default(), f64::INFINITY, &Value::Nil);
        fmt_float(
            &mut s,
            'v',
            &Spec::default(),
            f64::NEG_INFINITY,
            &Value::Nil,
        );
        fmt_float(&mut s, 'v', &Spec::default(), f64::NAN, &Value::Nil);
        assert_eq!(s, "+Inf-InfNaN");
        let mut s = String::new();
        assert!(json_float(&mut s, f64::NAN).is_err());
        assert_eq!(ok(r#"{{ float64 "inf" | toJson }}|"#), "|");
    }

    #[test]
    fn base64_round_trips() {
        for len in 0..20 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let encoded = base64_encode(&bytes);
            assert_eq!(base64_decode(&encoded).unwrap(), bytes, "{encoded}");
        }
    }

    proptest! {
        #[test]
        fn text_without_actions_renders_to_itself(text in "\\PC*") {
            prop_assume!(!text.contains("{{"));
            let t = Template::parse(&text).unwrap();
            prop_assert!(t.is_literal());
            prop_assert_eq!(t.render(&record()).unwrap(), text);
        }

        #[test]
        fn text_with_braces_renders_to_itself(text in "[a-z{} \n]{0,40}") {
            prop_assume!(!text.contains("{{"));
            let t = Template::parse(&text).unwrap();
            prop_assert_eq!(t.render(&Record::default()).unwrap(), text);
        }

        #[test]
        fn string_literals_print_themselves(text in "[^\"\\\\\n]{0,30}") {
            let template = format!("{{{{ \"{text}\" }}}}");
            let t = Template::parse(&template).unwrap();
            prop_assert_eq!(t.render(&record()).unwrap(), text);
        }

        #[test]
        fn ints_print_and_compare(a in any::<i64>(), b in any::<i64>()) {
            let t = Template::parse(&format!("{{{{ {a} }}}}|{{{{ lt {a} {b} }}}}|{{{{ eq {a} {b} }}}}")).unwrap();
            prop_assert_eq!(t.render(&record()).unwrap(), format!("{a}|{}|{}", a < b, a == b));
        }

        #[test]
        fn arbitrary_input_never_panics(text in "[{}a-z .|()\"$-]{0,30}") {
            if let Ok(t) = Template::parse(&text) {
                let _ = t.render(&record());
            }
        }
    }
}
