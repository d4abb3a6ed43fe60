//! Evaluation: walking the tree against a record, and every function's implementation.

use super::*;

impl<'a> Exec<'a> {
    /// The regex for a call's pattern argument: precompiled, or compiled and cached.
    pub(crate) fn regex(&self, call: Option<&'a Call>, pattern: &str) -> Result<Re<'a>, String> {
        if let Some(Some(compiled)) = call.map(|c| &c.regex) {
            return compiled.as_ref().map(Re::Lit).map_err(Clone::clone);
        }
        self.template.regex_cache.get(pattern).map(Re::Cached)
    }

    pub(crate) fn apply(&self, f: Func, call: Option<&'a Call>, args: Args<'a>) -> Res<'a> {
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
            Func::Slice => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let mut it = args.into_vec().into_iter();
                let item = it.next().unwrap_or(Value::Missing);
                let indexes: Vec<Value<'a>> = it.collect();
                slice_value(item, &indexes).map_err(|m| call_err(f, m))
            }
            Func::Html | Func::Js | Func::Urlquery => {
                let text = escaper_text(&args);
                Ok(owned(match f {
                    Func::Html => html_escape(&text),
                    Func::Js => js_escape(&text),
                    _ => query_escape(&text),
                }))
            }
            Func::Call => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let text = match call.and_then(|c| c.args.first()) {
                    Some(op) => &self.template.source[op.span.start..op.span.end],
                    None => "",
                };
                Err(call_err(f, call_error(&args[0], text)))
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
                    keys.extend(map_arg(f, m)?.keys().into_iter().map(Cow::into_owned));
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
            _ => self.apply_sprig(f, call, args),
        }
    }
}

pub(crate) const MAX_REPEAT: usize = 64 << 20;

pub(crate) fn owned<'a>(s: String) -> Value<'a> {
    Value::Str(Cow::Owned(s))
}

pub(crate) fn call_err(f: Func, msg: impl std::fmt::Display) -> Fail {
    Fail::new(format!("error calling {}: {msg}", f.name()))
}

pub(crate) fn arity_at_least(f: Func, want: usize, got: usize) -> Fail {
    Fail::new(format!(
        "wrong number of args for {}: want at least {want} got {got}",
        f.name()
    ))
}

pub(crate) const INLINE_ARGS: usize = 4;

/// A call's evaluated arguments; a few are kept inline so most calls do not allocate.
pub(crate) enum Args<'a> {
    Inline([Value<'a>; INLINE_ARGS], usize),
    Heap(Vec<Value<'a>>),
}

impl<'a> Args<'a> {
    pub(crate) fn with_capacity(n: usize) -> Self {
        if n <= INLINE_ARGS {
            Args::Inline(std::array::from_fn(|_| Value::Missing), 0)
        } else {
            Args::Heap(Vec::with_capacity(n))
        }
    }

    pub(crate) fn push(&mut self, v: Value<'a>) {
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

    pub(crate) fn into_vec(self) -> Vec<Value<'a>> {
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
pub(crate) fn take<'a, const N: usize>(f: Func, args: Args<'a>) -> Result<[Value<'a>; N], Fail> {
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

pub(crate) fn wrong_type(f: Func, want: &str, v: &Value<'_>) -> Fail {
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

pub(crate) fn str_arg<'v>(f: Func, v: &'v Value<'_>) -> Result<&'v str, Fail> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Operation(op) => Ok(op.as_str()),
        other => Err(wrong_type(f, "string", other)),
    }
}

pub(crate) fn str_own(f: Func, v: Value<'_>) -> Result<Cow<'_, str>, Fail> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Operation(op) => Ok(Cow::Borrowed(op.as_str())),
        other => Err(wrong_type(f, "string", &other)),
    }
}

pub(crate) fn int_arg(f: Func, v: &Value<'_>) -> Result<i64, Fail> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Float(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => Ok(*x as i64),
        other => Err(wrong_type(f, "integer", other)),
    }
}

pub(crate) fn map_arg<'v, 'a>(f: Func, v: &'v Value<'a>) -> Result<&'v MapV<'a>, Fail> {
    match v {
        Value::Map(m) => Ok(m),
        other => Err(wrong_type(f, "map[string]interface {}", other)),
    }
}

/// A sub-string computed by `f`, borrowed when the input is.
pub(crate) fn sub_cow<'a>(s: Cow<'a, str>, f: impl for<'x> Fn(&'x str) -> &'x str) -> Cow<'a, str> {
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
pub(crate) fn byte_slice(s: Cow<'_, str>, a: usize, b: usize) -> Cow<'_, str> {
    if s.is_char_boundary(a) && s.is_char_boundary(b) {
        sub_cow(s, |x| &x[a..b])
    } else {
        Cow::Owned(String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned())
    }
}

pub(crate) fn lower(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_uppercase()) {
        return s;
    }
    Cow::Owned(
        s.chars()
            .map(|c| c.to_lowercase().next().unwrap_or(c))
            .collect(),
    )
}

pub(crate) fn upper(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_lowercase()) {
        return s;
    }
    Cow::Owned(s.chars().map(upper_char).collect())
}

pub(crate) fn upper_char(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Go's `strings.Title`: upper-case the first letter of each word.
pub(crate) fn title(s: &str) -> String {
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
pub(crate) fn strval<'a>(v: &Value<'a>) -> Cow<'a, str> {
    match v {
        Value::Str(s) => s.clone(),
        Value::Operation(op) => Cow::Borrowed(op.as_str()),
        Value::Position(p) => String::from_utf8_lossy(p),
        Value::Time(t) => Cow::Owned(t.to_go_string()),
        Value::Missing | Value::Nil | Value::NilData => Cow::Borrowed("<nil>"),
        other => {
            let mut out = String::new();
            fmt_value(&mut out, 'v', &Spec::default(), other, 0);
            Cow::Owned(out)
        }
    }
}

/// Go's `strconv.Atoi` as sprig uses it: 0 for invalid input, clamped on overflow.
pub(crate) fn atoi(s: &str) -> i64 {
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
pub(crate) const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// A float converted like Go's `int64(f)` on amd64: truncated; NaN and out-of-range
/// values give the minimum int.
pub(crate) fn float_to_int(f: f64) -> i64 {
    if !(-TWO_POW_63..TWO_POW_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// sprig's `int`/`int64` (spf13/cast): 0 when the value cannot be converted.
pub(crate) fn to_int64(v: &Value<'_>) -> i64 {
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
pub(crate) fn to_float64(v: &Value<'_>) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's `strconv.ParseFloat`: also accepts `_` between digits.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
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
pub(crate) fn index_value<'a>(item: Value<'a>, ix: &Value<'a>) -> Result<Value<'a>, String> {
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

pub(crate) fn int_eq_float(i: i64, f: f64) -> bool {
    f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) && f as i64 == i
}

pub(crate) fn comparable(v: &Value<'_>) -> bool {
    matches!(
        v,
        Value::Bool(_)
            | Value::Int(_)
            | Value::Float(_)
            | Value::Str(_)
            | Value::Operation(_)
            | Value::Time(_)
    )
}

/// `eq` of two values; nil and no value equal only each other; ints and floats compare
/// numerically; the operation equals its name and its number.
pub(crate) fn eq_values(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
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
        (Value::Time(x), Value::Time(y)) => x.same(y),
        _ => {
            for (ok, name) in [(comparable(a), type_name(a)), (comparable(b), type_name(b))] {
                if !ok {
                    return Err(format!("non-comparable type {name}"));
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
pub(crate) fn lt_values(a: &Value<'_>, b: &Value<'_>) -> Result<bool, String> {
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
