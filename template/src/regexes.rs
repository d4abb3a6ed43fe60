//! Regular expressions: Go's RE2 syntax on Rust's `regex`, compiled once and cached per template.

use super::*;

pub(crate) enum Re<'a> {
    Lit(&'a Regex),
    Cached(Arc<Regex>),
}

impl Re<'_> {
    pub(crate) fn get(&self) -> &Regex {
        match self {
            Re::Lit(re) => re,
            Re::Cached(re) => re,
        }
    }
}

pub(crate) const REGEX_CACHE_SIZE: usize = 64;

/// A compiled pattern, or why it does not compile.
pub(crate) type Compiled = Result<Arc<Regex>, String>;

/// Compiled non-literal patterns, per template.
#[derive(Default)]
pub(crate) struct RegexCache {
    pub(crate) compiled: Mutex<HashMap<Box<str>, Compiled>>,
}

impl RegexCache {
    pub(crate) fn get(&self, pattern: &str) -> Result<Arc<Regex>, String> {
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
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&translate_regex(pattern)).map_err(|e| {
        let detail = e.to_string();
        let detail = detail.lines().last().unwrap_or("").trim().to_owned();
        format!("error parsing regexp {pattern:?}: {detail}")
    })
}

pub(crate) fn translate_regex(pattern: &str) -> String {
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
