//! Go's `text/template` language, with a subset of the sprig function library,
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
//! Go's whole text/template language:
//!
//! * Text outside `{{ }}` is copied. Comments `{{/* ... */}}`. Trim markers `{{- ` and
//!   ` -}}` (the marker needs a space, tab or newline next to it) remove all adjacent
//!   white space of the neighbouring text.
//! * Actions `{{ pipeline }}`; `{{ if P }} .. {{ else if P }} .. {{ else }} .. {{ end }}`;
//!   `{{ with P }} .. {{ else with P }} .. {{ else }} .. {{ end }}` (dot is the value in
//!   the chosen branch); `{{ range P }} .. {{ else }} .. {{ end }}` over lists, maps (in
//!   sorted key order), raw data and positions (their bytes) and integers (`range 5` is
//!   0..4), with `{{ break }}` and `{{ continue }}`; missing and nil values range zero
//!   times, anything else is Go's `range can't iterate over` error.
//! * Variables: `{{ $x := P }}` declares, `{{ $x = P }}` assigns (an action that does
//!   either prints nothing), `{{ range $i, $v := P }}`, `{{ range $v := P }}` and the `=`
//!   forms, `{{ if $x := P }}`, `{{ with $x := P }}`; `$x.a.b` chains. Scopes are Go's:
//!   a variable lives to the `end` of the control structure it is declared in (or of
//!   the template); an undeclared variable is a parse error, one declared in a branch
//!   that did not run an exec error. `$` is the data the template was called with.
//! * `{{ define "name" }} .. {{ end }}` (top level only), `{{ template "name" [P] }}`,
//!   `{{ block "name" P }} .. {{ end }}`. A definition has its own variables (only `$`);
//!   of two definitions of one name the non-empty one is kept, two non-empty ones are a
//!   parse error; calling an undefined template is an exec error, as in Go.
//! * Pipelines: commands separated by `|`, each result passed as the last argument of the
//!   next command; parenthesised pipelines as arguments, optionally followed by a field
//!   chain (`(index .Metadata "x").y`).
//! * Operands: `.`, `$` and variables, field chains `.A.B.C` and `$.A.B`, string
//!   literals with Go's escapes and raw `` `strings` ``, character constants (`'a'` is an
//!   int, like Go), integers (decimal, `0x`, `0o`, `0b`, leading-zero octal, `_`
//!   separators), floats, `true`, `false`, `nil`, and a function name used as an argument
//!   (called with no arguments).
//! * Record fields: `.Position`, `.Operation`, `.Metadata`, `.Key`, `.Payload`,
//!   `.Payload.Before`, `.Payload.After`, then map look-ups into metadata and structured
//!   data (`.Metadata.table`, `.Payload.After.a.b`); the methods `.Operation.String` and
//!   `.Position.String`. Where dot or `$` is known to be the record (outside `with`,
//!   `range` and definitions) these are resolved when parsing.
//!
//! Rejected when parsing (Go would accept them): hexadecimal float and imaginary
//! literals. Also rejected when parsing, where Go only fails when the action runs: a
//! non-function command given arguments (`{{ .A "x" }}`), a non-function command after a
//! `|`, and `nil` as a command. An unknown function is a parse error, as in Go.
//!
//! # Values
//!
//! No value (a missing map key), nil (JSON `null`), nil data (a record without key or
//! payload side), bool, int (`i64`; JSON integers stay ints), float (`f64`), string, raw
//! bytes (raw data), position, operation, list (JSON array), map (JSON object, metadata,
//! the result of `split`, or a dict made by a function), time (`time.Time`), and the
//! record and its payload. Printing follows Go's `%v`:
//! floats in Go's shortest `%g` form (`1e+06`, `3.5`, `1e-05`), raw data as `[104 105]`,
//! maps as `map[a:1 b:x]` with sorted keys, lists as `[1 2 3]`, nil inside data as
//! `<nil>`, and an action whose value is missing or nil as `<no value>`. The record prints
//! like Go prints the struct: `{position operation map[..] key {before after}}`.
//! Truthiness is Go's: false, 0, 0.0, "", nil, no value, and empty maps, lists and raw data
//! are false.
//!
//! # Functions
//!
//! All of Go's: `and`, `or` (short-circuit, returning the deciding argument), `not`, `eq`,
//! `ne`, `lt`, `le`, `gt`, `ge`, `len`, `index`, `slice`, `print`, `println`, `printf`,
//! `html`, `js`, `urlquery`, `call` (a record holds no functions, so `call` always fails
//! as Go does for a non-function); and these of sprig's (Conduit gives templates sprig's
//! `TxtFuncMap`), with sprig's argument order (the piped value is the last argument):
//!
//! * Strings: `contains`, `hasPrefix`, `hasSuffix`, `lower`, `upper`, `title`, `untitle`,
//!   `trim`, `trimPrefix`, `trimSuffix`, `trimAll`, `trimall`, `replace`, `repeat`,
//!   `substr`, `trunc`, `abbrev`, `abbrevboth`, `initials`, `nospace`, `swapcase`,
//!   `snakecase`, `camelcase`, `kebabcase`, `wrap`, `wrapWith`, `indent`, `nindent`,
//!   `plural`, `cat`, `quote`, `squote`, `split`, `splitList`, `splitn`, `join`,
//!   `toStrings`, `sortAlpha`, `toString`.
//! * Regular expressions: `regexMatch`, `regexFind`, `regexFindAll`, `regexReplaceAll`,
//!   `regexReplaceAllLiteral`, `regexSplit`, `regexQuoteMeta`, and the `must` forms
//!   (`mustRegexMatch`, ...) that fail on a bad pattern.
//! * Dates: `now`, `date`, `dateInZone` (`date_in_zone`), `htmlDate`, `htmlDateInZone`,
//!   `dateModify` (`date_modify`), `mustDateModify` (`must_date_modify`), `toDate`,
//!   `mustToDate`, `unixEpoch`, `duration`, `durationRound`, `ago`. Layouts are Go's
//!   (`2006-01-02T15:04:05Z07:00`, `Jan _2 15:04:05.000 MST`, ...), for formatting and
//!   for parsing. Zones come from the system's tz database as the `jiff` crate reads it
//!   (`$TZDIR`, else `/usr/share/zoneinfo`, `/usr/share/lib/zoneinfo` or
//!   `/etc/zoneinfo`), the server's own zone from `$TZ` or `/etc/localtime`, as Go
//!   does; an unknown zone formats as UTC, as in sprig. A time prints like Go's
//!   `Time.String` and encodes as RFC 3339 in JSON; its niladic methods (`Unix`,
//!   `UnixMilli`, `UnixMicro`, `UnixNano`, `Year`, `Month`, `Day`, `Hour`, `Minute`,
//!   `Second`, `Nanosecond`, `YearDay`, `Weekday`, `UTC`, `Local`, `String`, `IsZero`)
//!   can be called as fields: `(now).Unix`.
//! * Encodings and hashes: `b64enc`, `b64dec`, `b32enc`, `b32dec`, `sha1sum`,
//!   `sha256sum`, `sha512sum`, `adler32sum`, `uuidv4`.
//! * Dicts: `dict`, `get`, `set`, `unset`, `hasKey`, `keys`, `values`, `pluck`, `pick`,
//!   `omit`, `merge`, `mergeOverwrite` (and their `must` forms), `dig`, `deepCopy`,
//!   `mustDeepCopy`.
//! * Lists: `list`, `tuple`, `first`, `last`, `rest`, `initial`, `append` (`push`),
//!   `prepend`, `concat`, `reverse`, `uniq`, `without`, `has`, `compact`, `chunk` (and
//!   their `must` forms), `until`, `untilStep`, `seq`.
//! * Defaults and flow: `default`, `empty`, `coalesce`, `ternary`, `all`, `any`, `fail`.
//! * Conversions and JSON: `atoi`, `int`, `int64`, `float64`, `toDecimal`, `toJson`,
//!   `toPrettyJson`, `toRawJson`, `fromJson` (numbers decode as floats, as in Go) and the
//!   `must` forms.
//! * Math: `add`, `add1`, `sub`, `mul`, `div`, `mod`, `max`, `biggest`, `min`, `addf`,
//!   `add1f`, `subf`, `mulf`, `divf` (exact decimal arithmetic on each float's shortest
//!   form, then back to a float, as sprig does; `divf` rounds to 16 decimal places),
//!   `maxf`, `minf`, `floor`, `ceil`, `round`.
//! * Environment: `env` and `expandenv` read the environment of the Culvert server
//!   process (as Conduit's read the Conduit server's), except the server's own settings:
//!   a variable whose name starts with `CULVERT_` (the secrets key, API tokens, TLS keys
//!   may be given so) reads as unset, so whoever may edit a pipeline cannot copy them into
//!   records.
//!
//! Not provided (an unknown function is a parse error): sprig's random functions
//! (`randAlphaNum`, `randAlpha`, `randAscii`, `randNumeric`, `randInt`, `randBytes`,
//! `shuffle`), cryptography (`bcrypt`, `htpasswd`, `genPrivateKey`, `derivePassword`,
//! certificates, `encryptAES`, `decryptAES`), `semver`, `semverCompare`, `urlParse`,
//! `urlJoin`, `getHostByName`, the path functions (`base`, `dir`, `clean`, `ext`, `isAbs`
//! and the `os` forms), the reflection functions (`typeOf`, `kindOf`, ...) and `hello`.
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
//! * `template` calls and the control structures inside them may nest 250 levels deep
//!   (Go: 100000 calls), so that rendering fits a thread's stack.
//! * `range` over the operation yields ints (Go yields operations); `slice` of a list
//!   past its length says `index out of range` (Go checks against the slice's capacity).
//! * A definition named like the main template (`""`) does not replace it, and
//!   `{{ template "" }}` does not call the main template.
//! * Exec errors of a field of a `range` element name the element's own type (`int`),
//!   where Go names the list's element type (`interface {}`).
//! * An integer literal that overflows `int64` is a parse error (an exec error in Go).
//! * An empty position prints as an empty string and encodes as `""` in `toJson`; Go
//!   prints a nil position as `<nil>` and encodes it as `null`.
//! * sprig's `keys` and `values` follow Go's random map order; here they are sorted by key.
//! * `set`, `unset`, `merge` and `mergeOverwrite` change a dict made in the template
//!   (`dict`, `fromJson`, ...) in place, as Go does; given a map of the record (structured
//!   data, metadata) they change and return a copy and the record stays as it is (Go
//!   changes the record's map). `get`, `set`, `pick` and the other dict functions accept
//!   metadata too (Go wants `map[string]interface {}`).
//! * Template integers are one type here: `duration 95` is `1m35s` (in Go the literal is
//!   an `int`, which sprig's `duration` ignores, giving `0s`; `duration "95"` is the same in
//!   both). Likewise `durationRound` takes any integer as nanoseconds, and `date` any
//!   integer as Unix seconds. Floats (Go's JSON numbers) are the current time in `date`,
//!   as in sprig.
//! * `mustFromJson`'s error text is serde_json's (Go's for a truncated input); the
//!   `must` regex functions report Rust's `regex` error text.
//! * `now` carries a monotonic reading counted from the first time use in the process
//!   (Go counts from process start), which `{{ now }}` prints as `m=+...`.
//! * Type names in messages and in `%T` say `opencdc.RawData`, `[]interface {}`,
//!   `map[string]interface {}` and so on, close to, but not always exactly, what Go says.

use culvert_domain::opencdc::{Change, Data, Operation, Record};
use regex::Regex;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

mod dates;
mod error;
mod eval;
mod exec;
mod funcs;
mod gofuncs;
mod json;
mod lex;
mod parse;
mod printf;
mod regexes;
mod sprig;
mod sprig_text;
mod tree;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_go_errors;
#[cfg(test)]
mod tests_go_outputs;
#[cfg(test)]
mod tests_sprig;

use dates::*;
use error::*;
use eval::*;
use exec::*;
use funcs::*;
use gofuncs::*;
use json::*;
use lex::*;
use parse::*;
use printf::*;
use regexes::*;
use sprig::*;
use sprig_text::*;
use tree::*;
use value::*;

// ---------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------

/// A parsed template, ready to be rendered against any number of records.
///
/// Parsing checks everything that can be checked without a record (syntax, function
/// names, variable scopes); rendering walks the parsed tree.
pub struct Template {
    source: Box<str>,
    nodes: Vec<Node>,
    /// The templates `define`d or `block`ed in the text.
    defines: Vec<Define>,
    uses_vars: bool,
    literal: bool,
    size_hint: usize,
    regex_cache: RegexCache,
}

/// Why a template could not be parsed or rendered.
///
/// Messages follow Go's form: `template: :LINE: message` for parse errors and
/// `template: :LINE:COL: executing "NAME" at <ACTION>: message` for exec errors (NAME
/// is `""` for the main template, or the `define`d template the error happened in).
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
    /// unbalanced `if`/`with`/`range`/`define`/`block` and `else`/`end`, undefined
    /// variable, `break`/`continue` outside `range`, and duplicate definition is an
    /// error here, not when rendering.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let (items, literal) = scan(text).map_err(|e| e.into_error(text))?;
        let size_hint = items
            .iter()
            .map(|item| match item {
                Item::Text(t) => t.len(),
                Item::Action { .. } => 8,
            })
            .sum();
        let root_static = !root_is_assigned(&items);
        let mut parser = TreeParser {
            src: text,
            items: items.into_iter(),
            depth: 0,
            max_depth: 0,
            ctx: Ctx::new(root_static),
            defines: Vec::new(),
        };
        let nodes = parser.top().map_err(|e| e.into_error(text))?;
        Ok(Template {
            source: text.into(),
            nodes,
            defines: parser.defines,
            uses_vars: parser.ctx.uses_vars,
            literal,
            size_hint,
            regex_cache: RegexCache::default(),
        })
    }

    /// Render the template against a record.
    pub fn render(&self, record: &Record) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.size_hint);
        let mut exec = Exec::new(self, record);
        match exec.list(&self.nodes, &mut out) {
            Ok(_) => Ok(out),
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
            defines: self.defines.clone(),
            uses_vars: self.uses_vars,
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
