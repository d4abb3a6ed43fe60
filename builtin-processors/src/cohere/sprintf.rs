//! Go's `fmt.Sprintf(format, text)` with one string argument, as `cohere.command` makes
//! its prompt: the verbs a string takes (`%s`, `%v`, `%q`, `%x`, `%X`, `%T`) with flags,
//! width, precision and argument indexes, and Go's marks for what does not fit
//! (`%!d(string=...)`, `%!s(MISSING)`, `%!(EXTRA string=...)`, `%!(NOVERB)`...).

use std::fmt::Write as _;

/// Go's `fmt.Sprintf(format, arg)` for a string `arg`.
pub(super) fn sprintf(format: &str, arg: &str) -> String {
    Printer::new(arg).print(format)
}

/// The flags, width and precision of one verb.
#[derive(Clone, Copy, Default)]
struct Flags {
    sharp: bool,
    sharp_v: bool,
    zero: bool,
    plus: bool,
    minus: bool,
    space: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// The state of one `Sprintf`: the output so far, and the argument (there is one).
struct Printer<'a> {
    arg: &'a str,
    out: String,
    /// The next argument to use (0 is the string; 1 means none left).
    arg_num: usize,
    /// An argument index (`%[1]s`) was used: no check for extra arguments.
    reordered: bool,
    /// The current verb's argument index is valid.
    good_arg_num: bool,
}

/// How many arguments there are.
const ARGS: usize = 1;

impl<'a> Printer<'a> {
    fn new(arg: &'a str) -> Self {
        Self {
            arg,
            out: String::new(),
            arg_num: 0,
            reordered: false,
            good_arg_num: true,
        }
    }

    fn print(mut self, format: &str) -> String {
        let bytes = format.as_bytes();
        let end = bytes.len();
        let mut i = 0;
        'verbs: while i < end {
            self.good_arg_num = true;
            let start = i;
            while i < end && bytes[i] != b'%' {
                i += 1;
            }
            self.out.push_str(&format[start..i]);
            if i >= end {
                break;
            }
            i += 1;
            let mut f = Flags::default();
            while i < end {
                match bytes[i] {
                    b'#' => f.sharp = true,
                    b'0' => f.zero = true,
                    b'+' => f.plus = true,
                    b'-' => f.minus = true,
                    b' ' => f.space = true,
                    c => {
                        // A lower-case verb right after the flags takes the next argument.
                        if c.is_ascii_lowercase() && self.arg_num < ARGS {
                            if c == b'v' {
                                f.sharp_v = f.sharp;
                                f.sharp = false;
                                f.plus = false;
                            }
                            self.print_arg(f, char::from(c));
                            self.arg_num += 1;
                            i += 1;
                            continue 'verbs;
                        }
                        break;
                    }
                }
                i += 1;
            }
            let mut after_index;
            (i, after_index) = self.arg_number(format, i);
            if i < end && bytes[i] == b'*' {
                i += 1;
                // The argument for the width is the string, not an int.
                self.skip_arg();
                self.out.push_str("%!(BADWIDTH)");
                after_index = false;
            } else {
                let (number, next) = parse_number(bytes, i, end);
                (f.wid, i) = (number, next);
                if after_index && f.wid.is_some() {
                    self.good_arg_num = false;
                }
            }
            if i + 1 < end && bytes[i] == b'.' {
                i += 1;
                if after_index {
                    self.good_arg_num = false;
                }
                (i, after_index) = self.arg_number(format, i);
                if i < end && bytes[i] == b'*' {
                    i += 1;
                    self.skip_arg();
                    self.out.push_str("%!(BADPREC)");
                    after_index = false;
                } else {
                    let (number, next) = parse_number(bytes, i, end);
                    (f.prec, i) = (Some(number.unwrap_or(0)), next);
                }
            }
            if !after_index {
                (i, _) = self.arg_number(format, i);
            }
            let Some(verb) = format.get(i..).and_then(|rest| rest.chars().next()) else {
                self.out.push_str("%!(NOVERB)");
                break;
            };
            i += verb.len_utf8();
            if verb == '%' {
                // Takes no argument, and ignores width and precision.
                self.out.push('%');
            } else if !self.good_arg_num {
                let _ = write!(self.out, "%!{verb}(BADINDEX)");
            } else if self.arg_num >= ARGS {
                let _ = write!(self.out, "%!{verb}(MISSING)");
            } else {
                if verb == 'v' {
                    f.sharp_v = f.sharp;
                    f.sharp = false;
                    f.plus = false;
                }
                self.print_arg(f, verb);
                self.arg_num += 1;
            }
        }
        if !self.reordered && self.arg_num < ARGS {
            self.out.push_str("%!(EXTRA string=");
            self.out.push_str(self.arg);
            self.out.push(')');
        }
        self.out
    }

    /// An argument index (`[n]`) at `i`, if any: where the format goes on, and whether
    /// one was there.
    fn arg_number(&mut self, format: &str, i: usize) -> (usize, bool) {
        let bytes = format.as_bytes();
        if bytes.get(i) != Some(&b'[') {
            return (i, false);
        }
        self.reordered = true;
        let rest = &bytes[i..];
        // At least `[n]`, then the closing bracket.
        let close = (rest.len() >= 3)
            .then(|| rest.iter().skip(1).position(|&b| b == b']'))
            .flatten()
            .map(|p| p + 1);
        let Some(close) = close else {
            self.good_arg_num = false;
            return (i + 1, false);
        };
        let (number, next) = parse_number(rest, 1, close);
        let index = match number {
            Some(n) if next == close => n.checked_sub(1),
            _ => {
                self.good_arg_num = false;
                return (i + close + 1, false);
            }
        };
        match index {
            Some(index) if index < ARGS => {
                self.arg_num = index;
            }
            _ => self.good_arg_num = false,
        }
        (i + close + 1, true)
    }

    /// `*` takes the next argument as a number; the string is none.
    fn skip_arg(&mut self) {
        if self.arg_num < ARGS {
            self.arg_num += 1;
        }
    }

    /// The string printed with `verb`.
    fn print_arg(&mut self, f: Flags, verb: char) {
        match verb {
            'T' => self.fmt_s(f, "string"),
            'v' if f.sharp_v => self.fmt_q(f, self.arg),
            'v' | 's' => self.fmt_s(f, self.arg),
            'x' => self.fmt_hex(f, self.arg, false),
            'X' => self.fmt_hex(f, self.arg, true),
            'q' => self.fmt_q(f, self.arg),
            _ => self.bad_verb(f, verb),
        }
    }

    /// A verb a string does not take: `%!d(string=text)`, the text printed with `%v`.
    fn bad_verb(&mut self, f: Flags, verb: char) {
        let _ = write!(self.out, "%!{verb}(string=");
        self.fmt_s(f, self.arg);
        self.out.push(')');
    }

    /// `%s`: cut to the precision (in characters), padded to the width.
    fn fmt_s(&mut self, f: Flags, text: &str) {
        let text = truncate(f, text);
        self.pad(f, text);
    }

    /// `%q`: Go's double-quoted string (ASCII only with `+`), or back-quoted with `#`
    /// where possible.
    fn fmt_q(&mut self, f: Flags, text: &str) {
        let text = truncate(f, text);
        if f.sharp && can_backquote(text) {
            self.pad(f, &format!("`{text}`"));
        } else {
            self.pad(f, &quote(text, f.plus));
        }
    }

    /// `%x` and `%X`: the bytes in hexadecimal, `#` adding `0x`, ` ` spacing the bytes.
    fn fmt_hex(&mut self, f: Flags, text: &str, upper: bool) {
        let bytes = text.as_bytes();
        let length = f.prec.map_or(bytes.len(), |p| p.min(bytes.len()));
        let prefix = if upper { "0X" } else { "0x" };
        if length == 0 {
            if let Some(wid) = f.wid {
                self.padding(f, wid);
            }
            return;
        }
        let mut width = 2 * length;
        if f.space {
            if f.sharp {
                width *= 2;
            }
            width += length - 1;
        } else if f.sharp {
            width += 2;
        }
        let extra = f.wid.map_or(0, |w| w.saturating_sub(width));
        if !f.minus {
            self.padding(f, extra);
        }
        if f.sharp {
            self.out.push_str(prefix);
        }
        for (i, byte) in bytes[..length].iter().enumerate() {
            if f.space && i > 0 {
                self.out.push(' ');
                if f.sharp {
                    self.out.push_str(prefix);
                }
            }
            let _ = if upper {
                write!(self.out, "{byte:02X}")
            } else {
                write!(self.out, "{byte:02x}")
            };
        }
        if f.minus {
            self.padding(f, extra);
        }
    }

    /// `text` padded to the width (counted in characters): on the left, or on the right
    /// with `-`.
    fn pad(&mut self, f: Flags, text: &str) {
        let extra = f.wid.map_or(0, |w| w.saturating_sub(text.chars().count()));
        if f.minus {
            self.out.push_str(text);
            self.padding(f, extra);
        } else {
            self.padding(f, extra);
            self.out.push_str(text);
        }
    }

    /// `n` padding characters: zeros with `0` (on the left only), else spaces.
    fn padding(&mut self, f: Flags, n: usize) {
        let c = if f.zero && !f.minus { '0' } else { ' ' };
        self.out.extend(std::iter::repeat_n(c, n));
    }
}

/// A decimal number in `bytes[start..end]` at `start`: its value (none if there are no
/// digits, or too many: the format then ends) and where it stops.
fn parse_number(bytes: &[u8], start: usize, end: usize) -> (Option<usize>, usize) {
    let mut number: Option<usize> = None;
    let mut i = start;
    while i < end && bytes[i].is_ascii_digit() {
        let n = number.unwrap_or(0);
        if n > 1_000_000 {
            return (None, end);
        }
        number = Some(n * 10 + usize::from(bytes[i] - b'0'));
        i += 1;
    }
    (number, i)
}

/// `text` cut to the precision, in characters.
fn truncate(f: Flags, text: &str) -> &str {
    match f.prec {
        Some(p) => text.char_indices().nth(p).map_or(text, |(i, _)| &text[..i]),
        None => text,
    }
}

/// Whether Go's `%#q` can back-quote `text`.
fn can_backquote(text: &str) -> bool {
    text.chars()
        .all(|c| !matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '`' | '\u{7f}' | '\u{feff}'))
}

/// `text` double-quoted as Go's `strconv.Quote` (or `QuoteToASCII`) writes it.
fn quote(text: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if is_print(c) && (!ascii || c.is_ascii()) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// Whether Go's `strconv.IsPrint` takes `c` as printable: letters, marks, numbers,
/// punctuation, symbols and the ASCII space. Outside ASCII this leaves out controls,
/// spaces, format characters, private use and noncharacters; unlike Go it takes code points
/// Unicode has not assigned as printable.
fn is_print(c: char) -> bool {
    let u = u32::from(c);
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    let format = matches!(
        u,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    );
    let private = matches!(u, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd);
    let nonchar = (u & 0xfffe) == 0xfffe || (0xfdd0..=0xfdef).contains(&u);
    !(c.is_control() || c.is_whitespace() || format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::sprintf;

    /// (format, argument, what Go's `fmt.Sprintf` gives), from Go 1.26.
    #[rustfmt::skip]
    const CASES: &[(&str, &str, &str)] = &[
        ("hello", "who are you?", "hello%!(EXTRA string=who are you?)"),
        ("Summarize: %s", "text", "Summarize: text"),
        ("%v|%s", "ab", "ab|%!s(MISSING)"),
        ("%q", "a\"b\u{a}\u{1}é\u{a0}\u{200b}\u{feff}😀`<", "\"a\\\"b\\n\\x01é\\u00a0\\u200b\\ufeff😀`<\""),
        ("%+q", "é😀\u{9}", "\"\\u00e9\\U0001f600\\t\""),
        ("%#q", "plain`no", "\"plain`no\""),
        ("%#q", "plain text", "`plain text`"),
        ("%x", "héllo", "68c3a96c6c6f"),
        ("% X", "abc", "61 62 63"),
        ("%# x", "abc", "0x61 0x62 0x63"),
        ("%#x", "abc", "0x616263"),
        ("%8.2x|", "abc", "    6162|"),
        ("%-8x|", "abc", "616263  |"),
        ("%x|%5x|", "", "|%!x(MISSING)|"),
        ("%5s|%-5s|%05s|%.2s|%5.1s|%-05s", "héllo", "héllo|%!s(MISSING)|%!s(MISSING)|%!s(MISSING)|%!s(MISSING)|%!s(MISSING)"),
        ("%05s|", "ab", "000ab|"),
        ("%-05s|", "ab", "ab   |"),
        ("%d", "x", "%!d(string=x)"),
        ("%5d", "x", "%!d(string=    x)"),
        ("%T %5T", "x", "string %!T(MISSING)"),
        ("%p", "x", "%!p(string=x)"),
        ("%w", "x", "%!w(string=x)"),
        ("%s %s", "x", "x %!s(MISSING)"),
        ("%[1]s %[1]q", "x", "x \"x\""),
        ("%[2]s", "x", "%!s(BADINDEX)"),
        ("%[0]s", "x", "%!s(BADINDEX)"),
        ("%[1]5s|", "x", "%!s(BADINDEX)|"),
        ("%[x]s", "x", "%!s(BADINDEX)"),
        ("%[1", "x", "%!(NOVERB)"),
        ("%*s", "x", "%!(BADWIDTH)%!s(MISSING)"),
        ("%.*s", "x", "%!(BADPREC)%!s(MISSING)"),
        ("%", "x", "%!(NOVERB)%!(EXTRA string=x)"),
        ("abc%", "x", "abc%!(NOVERB)%!(EXTRA string=x)"),
        ("%%", "x", "%%!(EXTRA string=x)"),
        ("%5%|%s", "x", "%|x"),
        ("%-", "x", "%!(NOVERB)%!(EXTRA string=x)"),
        ("%.s|", "xyz", "|"),
        ("%.", "xyz", "%!.(string=xyz)"),
        ("%.0s|", "xyz", "|"),
        ("%é", "x", "%!é(string=x)"),
        ("%!", "x", "%!!(string=x)"),
        ("%#v", "a\"b", "\"a\\\"b\""),
        ("%+v", "ab", "ab"),
        ("%10.3v|", "abcdef", "       abc|"),
        ("%S", "x", "%!S(string=x)"),
        ("%[1]s %s", "x", "x %!s(MISSING)"),
        ("%[2]s %s", "x", "%!s(BADINDEX) x"),
        ("%99999999s", "x", "%!(NOVERB)%!(EXTRA string=x)"),
        ("%-6.1q|", "éa", "\"é\"   |"),
        ("%.1x", "abc", "61"),
        ("%#.0x|", "abc", "|"),
        ("%[1]s%!(EXTRA)", "x", "x%!!(MISSING)(EXTRA)"),
        ("%v%%%v", "x", "x%%!v(MISSING)"),
        ("%.9999999s|", "xy", "xy|"),
        ("%1.2.3s", "xyz", "%!.(string=xy)3s"),
        ("%-+# 0s", "x", "x"),
        ("%q", "\u{7f}\u{7}\u{8}\u{c}\u{b}\u{d}\u{85}\u{2028}\u{e000}", "\"\\x7f\\a\\b\\f\\v\\r\\u0085\\u2028\\ue000\""),
        ("%+q", "\u{a0}", "\"\\u00a0\""),
        ("%#q", "tab\u{9}here", "`tab\u{9}here`"),
        ("%#q", "\u{feff}bom", "\"\\ufeffbom\""),
        ("%#+q", "é`", "\"\\u00e9`\""),
        ("%[1]*s", "x", "%!(BADWIDTH)%!s(MISSING)"),
        ("%[3]*s", "x", "%!(BADWIDTH)%!s(BADINDEX)"),
        ("%5[1]s", "x", "    x"),
        ("% s", "x", "x"),
    ];

    #[test]
    fn formats_as_go_does() {
        for (format, arg, want) in CASES {
            assert_eq!(sprintf(format, arg), *want, "Sprintf({format:?}, {arg:?})");
        }
    }
}
