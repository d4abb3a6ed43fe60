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

mod error;
mod eval;
mod funcs;
mod json;
mod lex;
mod parse;
mod printf;
mod regexes;
mod value;

#[cfg(test)]
mod tests;

use error::*;
use eval::*;
use funcs::*;
use json::*;
use lex::*;
use parse::*;
use printf::*;
use regexes::*;
use value::*;

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

/// Go's `strconv.ParseBool` (how a condition's output is read); it lives in the domain
/// crate, which boolean settings use too.
pub use culvert_domain::parse_bool;

// ---------------------------------------------------------------------------------------
