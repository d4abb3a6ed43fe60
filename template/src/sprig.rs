//! sprig's date, encoding, string, dict, list, math, JSON and environment functions.

use super::*;

impl<'a> Exec<'a> {
    /// The functions not evaluated in `apply`.
    pub(crate) fn apply_sprig(&self, f: Func, call: Option<&'a Call>, args: Args<'a>) -> Res<'a> {
        let n = args.len();
        match f {
            // ---------------------------------------------------------------- dates
            Func::Now => {
                let [] = take(f, args)?;
                Ok(Value::Time(Box::new(Time::now())))
            }
            Func::Date => {
                let [layout, date] = take(f, args)?;
                Ok(owned(date_in_zone(str_arg(f, &layout)?, &date, "Local")))
            }
            Func::DateInZone | Func::DateInZoneSnake => {
                let [layout, date, zone] = take(f, args)?;
                let (layout, zone) = (str_arg(f, &layout)?, str_arg(f, &zone)?);
                Ok(owned(date_in_zone(layout, &date, zone)))
            }
            Func::HtmlDate => {
                let [date] = take(f, args)?;
                Ok(owned(date_in_zone("2006-01-02", &date, "Local")))
            }
            Func::HtmlDateInZone => {
                let [date, zone] = take(f, args)?;
                Ok(owned(date_in_zone("2006-01-02", &date, str_arg(f, &zone)?)))
            }
            Func::DateModify
            | Func::DateModifySnake
            | Func::MustDateModify
            | Func::MustDateModifySnake => {
                let [modification, date] = take(f, args)?;
                let modification = str_arg(f, &modification)?;
                let date = time_arg(f, &date)?;
                match parse_duration(modification) {
                    Ok(d) => Ok(Value::Time(Box::new(date.add(d)))),
                    Err(msg) if matches!(f, Func::MustDateModify | Func::MustDateModifySnake) => {
                        Err(call_err(f, msg))
                    }
                    Err(_) => Ok(Value::Time(Box::new(date.clone()))),
                }
            }
            Func::ToDate | Func::MustToDate => {
                let [layout, text] = take(f, args)?;
                let (layout, text) = (str_arg(f, &layout)?, str_arg(f, &text)?);
                match parse_time(layout, text, &local()) {
                    Ok(t) => Ok(Value::Time(Box::new(t))),
                    Err(msg) if f == Func::MustToDate => Err(call_err(f, msg)),
                    Err(_) => Ok(Value::Time(Box::new(Time::zero()))),
                }
            }
            Func::UnixEpoch => {
                let [date] = take(f, args)?;
                Ok(owned(time_arg(f, &date)?.secs.to_string()))
            }
            Func::Duration => {
                let [secs] = take(f, args)?;
                let secs = match &secs {
                    Value::Str(s) => parse_int_clamped(s),
                    Value::Int(i) => *i,
                    _ => 0,
                };
                Ok(owned(format_duration(secs.wrapping_mul(NANOS_PER_SEC))))
            }
            Func::DurationRound => {
                let [d] = take(f, args)?;
                let d = match &d {
                    Value::Str(s) => parse_duration(s).unwrap_or(0),
                    Value::Int(i) => *i,
                    Value::Time(t) => since(t),
                    _ => 0,
                };
                Ok(owned(duration_round(d)))
            }
            Func::Ago => {
                let [date] = take(f, args)?;
                let t = match &date {
                    Value::Time(t) => (**t).clone(),
                    Value::Int(i) => Time::unix(*i, local()),
                    _ => Time::now(),
                };
                Ok(owned(format_duration(round_to_second(since(&t)))))
            }

            // ---------------------------------------------------------------- crypto and encodings
            Func::Uuidv4 => {
                let [] = take(f, args)?;
                Ok(owned(uuid::Uuid::new_v4().to_string()))
            }
            Func::Sha1sum | Func::Sha256sum | Func::Sha512sum | Func::Adler32sum => {
                use sha2::Digest as _;
                let [s] = take(f, args)?;
                let bytes = str_arg(f, &s)?.as_bytes();
                Ok(owned(match f {
                    Func::Sha1sum => hex(&sha1::Sha1::digest(bytes)),
                    Func::Sha256sum => hex(&sha2::Sha256::digest(bytes)),
                    Func::Sha512sum => hex(&sha2::Sha512::digest(bytes)),
                    _ => adler32(bytes).to_string(),
                }))
            }
            Func::B32enc => {
                let [s] = take(f, args)?;
                Ok(owned(base32_encode(str_arg(f, &s)?.as_bytes())))
            }
            Func::B32dec => {
                let [s] = take(f, args)?;
                // sprig returns the error message as the result.
                Ok(owned(match base32_decode(str_arg(f, &s)?) {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(msg) => msg,
                }))
            }

            // ---------------------------------------------------------------- strings
            Func::Nospace
            | Func::Snakecase
            | Func::Camelcase
            | Func::Kebabcase
            | Func::Swapcase
            | Func::Untitle
            | Func::Initials => {
                let [s] = take(f, args)?;
                let s = str_arg(f, &s)?;
                Ok(owned(match f {
                    Func::Nospace => delete_white_space(s),
                    Func::Snakecase => to_lower_words(s, '_'),
                    Func::Kebabcase => to_lower_words(s, '-'),
                    Func::Camelcase => to_pascal(s),
                    Func::Swapcase => swap_case(s),
                    Func::Untitle => untitle(s),
                    _ => initials(s),
                }))
            }
            Func::Abbrev => {
                let [width, s] = take(f, args)?;
                let width = int_arg(f, &width)?;
                let s = str_own(f, s)?;
                if width < 4 {
                    return Ok(Value::Str(s));
                }
                Ok(owned(abbreviate(&s, 0, width)))
            }
            Func::Abbrevboth => {
                let [left, right, s] = take(f, args)?;
                let (left, right) = (int_arg(f, &left)?, int_arg(f, &right)?);
                let s = str_own(f, s)?;
                if right < 4 || (left > 0 && right < 7) {
                    return Ok(Value::Str(s));
                }
                Ok(owned(abbreviate(&s, left, right)))
            }
            Func::Wrap => {
                let [width, s] = take(f, args)?;
                let width = int_arg(f, &width)?;
                Ok(owned(wrap(str_arg(f, &s)?, width, "", false)))
            }
            Func::WrapWith => {
                let [width, sep, s] = take(f, args)?;
                let width = int_arg(f, &width)?;
                let sep = str_arg(f, &sep)?;
                Ok(owned(wrap(str_arg(f, &s)?, width, sep, true)))
            }
            Func::Indent | Func::Nindent => {
                let [spaces, s] = take(f, args)?;
                let spaces = int_arg(f, &spaces)?;
                let s = str_arg(f, &s)?;
                let spaces = usize::try_from(spaces)
                    .map_err(|_| call_err(f, "strings: negative Repeat count"))?;
                if spaces.saturating_mul(s.len() + 1) > MAX_REPEAT {
                    return Err(call_err(f, "result too large"));
                }
                let pad = " ".repeat(spaces);
                let mut out = String::with_capacity(s.len() + spaces + 1);
                if f == Func::Nindent {
                    out.push('\n');
                }
                out.push_str(&pad);
                out.push_str(&s.replace('\n', &format!("\n{pad}")));
                Ok(owned(out))
            }
            Func::Plural => {
                let [one, many, count] = take(f, args)?;
                let count = int_arg(f, &count)?;
                let chosen = if count == 1 { one } else { many };
                Ok(Value::Str(str_own(f, chosen)?))
            }
            Func::Cat => {
                let parts: Vec<Value<'a>> = args
                    .into_vec()
                    .into_iter()
                    .filter(|v| !matches!(v, Value::Missing | Value::Nil))
                    .collect();
                Ok(owned(sprint_spaced(&parts)))
            }
            Func::Trimall => {
                let [cutset, s] = take(f, args)?;
                let cutset = str_arg(f, &cutset)?;
                let s = str_own(f, s)?;
                Ok(Value::Str(sub_cow(s, |x| {
                    x.trim_matches(|c| cutset.contains(c))
                })))
            }
            Func::SplitList => {
                let [sep, s] = take(f, args)?;
                let (sep, s) = (str_arg(f, &sep)?, str_arg(f, &s)?);
                Ok(str_list(go_split(s, sep, -1)))
            }
            Func::Splitn => {
                let [sep, count, s] = take(f, args)?;
                let sep = str_arg(f, &sep)?;
                let count = int_arg(f, &count)?;
                let s = str_arg(f, &s)?;
                let map = go_split(s, sep, count)
                    .into_iter()
                    .enumerate()
                    .map(|(i, part)| (format!("_{i}"), owned(part)))
                    .collect();
                Ok(Value::Map(MapV::Owned(map)))
            }
            Func::ToStrings => {
                let [v] = take(f, args)?;
                Ok(str_list(to_strings(&v)))
            }
            Func::SortAlpha => {
                let [v] = take(f, args)?;
                let mut items = match list_items(&v) {
                    Some(_) => to_strings(&v),
                    None => vec![strval(&v).into_owned()],
                };
                items.sort_unstable();
                Ok(str_list(items))
            }
            Func::RegexFindAll | Func::MustRegexFindAll => {
                let [pattern, s, count] = take(f, args)?;
                let (pattern, s) = (str_arg(f, &pattern)?, str_arg(f, &s)?);
                let count = int_arg(f, &count)?;
                let re = self.regex(call, pattern).map_err(|m| call_err(f, m))?;
                let limit = usize::try_from(count).unwrap_or(usize::MAX);
                let found: Vec<String> = re
                    .get()
                    .find_iter(s)
                    .take(limit)
                    .map(|m| m.as_str().to_owned())
                    .collect();
                Ok(str_list(found))
            }
            Func::RegexSplit | Func::MustRegexSplit => {
                let [pattern, s, count] = take(f, args)?;
                let (pattern, s) = (str_arg(f, &pattern)?, str_arg(f, &s)?);
                let count = int_arg(f, &count)?;
                let re = self.regex(call, pattern).map_err(|m| call_err(f, m))?;
                Ok(str_list(regex_split(re.get(), pattern, s, count)))
            }
            Func::RegexReplaceAllLiteral | Func::MustRegexReplaceAllLiteral => {
                let [pattern, s, repl] = take(f, args)?;
                let (pattern, s, repl) =
                    (str_arg(f, &pattern)?, str_arg(f, &s)?, str_arg(f, &repl)?);
                let re = self.regex(call, pattern).map_err(|m| call_err(f, m))?;
                Ok(owned(
                    re.get().replace_all(s, regex::NoExpand(repl)).into_owned(),
                ))
            }
            Func::RegexQuoteMeta => {
                let [s] = take(f, args)?;
                Ok(owned(quote_meta(str_arg(f, &s)?)))
            }
            Func::MustRegexMatch => {
                let [pattern, s] = take(f, args)?;
                let (pattern, s) = (str_arg(f, &pattern)?, str_arg(f, &s)?);
                let re = self.regex(call, pattern).map_err(|m| call_err(f, m))?;
                Ok(Value::Bool(re.get().is_match(s)))
            }
            Func::MustRegexFind => self
                .apply(Func::RegexFind, call, args)
                .map_err(|e| rename(e, f)),
            Func::MustRegexReplaceAll => self
                .apply(Func::RegexReplaceAll, call, args)
                .map_err(|e| rename(e, f)),

            // ---------------------------------------------------------------- dicts
            Func::Dict => {
                let mut map = BTreeMap::new();
                let mut it = args.into_vec().into_iter();
                while let Some(key) = it.next() {
                    let key = strval(&key).into_owned();
                    let value = it.next().unwrap_or(Value::Str(Cow::Borrowed("")));
                    map.insert(key, value);
                }
                Ok(new_dict(map))
            }
            Func::Get => {
                let [m, key] = take(f, args)?;
                let key = str_arg(f, &key)?;
                Ok(map_arg(f, &m)?
                    .get(key)
                    .unwrap_or(Value::Str(Cow::Borrowed(""))))
            }
            Func::Set => {
                let [m, key, value] = take(f, args)?;
                let key = str_arg(f, &key)?.to_owned();
                let dict = as_dict(f, &m)?;
                dict.borrow_mut().insert(key, value);
                Ok(Value::Map(MapV::Dict(dict)))
            }
            Func::Unset => {
                let [m, key] = take(f, args)?;
                let key = str_arg(f, &key)?;
                let dict = as_dict(f, &m)?;
                dict.borrow_mut().remove(key);
                Ok(Value::Map(MapV::Dict(dict)))
            }
            Func::Pluck => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let key = str_arg(f, &args[0])?;
                let mut found = Vec::new();
                for m in &args[1..] {
                    if let Some(v) = map_arg(f, m)?.get(key) {
                        found.push(v);
                    }
                }
                Ok(Value::List(List::Owned(found)))
            }
            Func::Pick | Func::Omit => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let m = map_arg(f, &args[0])?;
                let mut keys = Vec::with_capacity(n - 1);
                for k in &args[1..] {
                    keys.push(str_arg(f, k)?);
                }
                let map = m
                    .entries()
                    .into_iter()
                    .filter(|(k, _)| keys.contains(&k.as_ref()) == (f == Func::Pick))
                    .map(|(k, v)| (k.into_owned(), v))
                    .collect();
                Ok(new_dict(map))
            }
            Func::Values => {
                let [m] = take(f, args)?;
                let values = map_arg(f, &m)?
                    .entries()
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect();
                Ok(Value::List(List::Owned(values)))
            }
            Func::Merge | Func::MustMerge | Func::MergeOverwrite | Func::MustMergeOverwrite => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let overwrite = matches!(f, Func::MergeOverwrite | Func::MustMergeOverwrite);
                let dst = as_dict(f, &args[0])?;
                for src in &args[1..] {
                    let src = map_arg(f, src)?;
                    merge_into(&dst, src, overwrite);
                }
                Ok(Value::Map(MapV::Dict(dst)))
            }
            Func::Dig => {
                if n < 3 {
                    return Err(call_err(f, "dig needs at least three arguments"));
                }
                let (keys, tail) = args.split_at(n - 2);
                let default = tail[0].clone();
                let mut current = map_arg(f, &tail[1])?.clone();
                for (i, key) in keys.iter().enumerate() {
                    let key = str_arg(f, key)?;
                    let Some(step) = current.get(key) else {
                        return Ok(default);
                    };
                    if i + 1 == keys.len() {
                        return Ok(step);
                    }
                    current = match step {
                        Value::Map(m) => m,
                        other => {
                            return Err(call_err(
                                f,
                                format!(
                                    "interface conversion: interface {{}} is {}, not map[string]interface {{}}",
                                    type_name(&other)
                                ),
                            ))
                        }
                    };
                }
                Ok(default)
            }
            Func::DeepCopy | Func::MustDeepCopy => {
                let [v] = take(f, args)?;
                Ok(deep_copy(&v))
            }

            // ---------------------------------------------------------------- lists
            Func::Tuple => Ok(Value::List(List::Owned(args.into_vec()))),
            Func::First | Func::MustFirst | Func::Last | Func::MustLast => {
                let [v] = take(f, args)?;
                let what = if matches!(f, Func::First | Func::MustFirst) {
                    "first"
                } else {
                    "last"
                };
                let items = items_arg(f, &v, &format!("find {what} on"))?;
                let picked = if what == "first" {
                    items.into_iter().next()
                } else {
                    items.into_iter().next_back()
                };
                Ok(picked.unwrap_or(Value::Nil))
            }
            Func::Rest | Func::MustRest | Func::Initial | Func::MustInitial => {
                let [v] = take(f, args)?;
                let rest = matches!(f, Func::Rest | Func::MustRest);
                let what = if rest {
                    "find rest on"
                } else {
                    "find initial on"
                };
                let mut items = items_arg(f, &v, what)?;
                if !items.is_empty() {
                    if rest {
                        items.remove(0);
                    } else {
                        items.pop();
                    }
                }
                Ok(Value::List(List::Owned(items)))
            }
            Func::Append | Func::Push | Func::MustAppend | Func::MustPush => {
                let [l, v] = take(f, args)?;
                let mut items = items_arg(f, &l, "push on")?;
                items.push(v);
                Ok(Value::List(List::Owned(items)))
            }
            Func::Prepend | Func::MustPrepend => {
                let [l, v] = take(f, args)?;
                let mut items = items_arg(f, &l, "prepend on")?;
                items.insert(0, v);
                Ok(Value::List(List::Owned(items)))
            }
            Func::Concat => {
                let mut all = Vec::new();
                for l in args.iter() {
                    match list_items(l) {
                        Some(items) => all.extend(items),
                        None => {
                            return Err(call_err(
                                f,
                                format!("Cannot concat type {} as list", kind_name(l)),
                            ))
                        }
                    }
                }
                Ok(Value::List(List::Owned(all)))
            }
            Func::Reverse | Func::MustReverse => {
                let [l] = take(f, args)?;
                let mut items = items_arg(f, &l, "find reverse on")?;
                items.reverse();
                Ok(Value::List(List::Owned(items)))
            }
            Func::Uniq | Func::MustUniq => {
                let [l] = take(f, args)?;
                let mut out: Vec<Value<'a>> = Vec::new();
                for item in items_arg(f, &l, "find uniq on")? {
                    if !out.iter().any(|seen| deep_equal(seen, &item)) {
                        out.push(item);
                    }
                }
                Ok(Value::List(List::Owned(out)))
            }
            Func::Without | Func::MustWithout => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let items = items_arg(f, &args[0], "find without on")?;
                let omit = &args[1..];
                let kept = items
                    .into_iter()
                    .filter(|item| !omit.iter().any(|o| deep_equal(o, item)))
                    .collect();
                Ok(Value::List(List::Owned(kept)))
            }
            Func::Has | Func::MustHas => {
                let [needle, haystack] = take(f, args)?;
                if matches!(haystack, Value::Missing | Value::Nil) {
                    return Ok(Value::Bool(false));
                }
                let items = items_arg(f, &haystack, "find has on")?;
                Ok(Value::Bool(items.iter().any(|i| deep_equal(&needle, i))))
            }
            Func::Compact | Func::MustCompact => {
                let [l] = take(f, args)?;
                let items = items_arg(f, &l, "compact on")?;
                Ok(Value::List(List::Owned(
                    items.into_iter().filter(truthy).collect(),
                )))
            }
            Func::Chunk | Func::MustChunk => {
                let [size, l] = take(f, args)?;
                let size = int_arg(f, &size)?;
                let items = items_arg(f, &l, "chunk")?;
                if size <= 0 {
                    return Err(call_err(f, "runtime error: integer divide by zero"));
                }
                let chunks = items
                    .chunks(size as usize)
                    .map(|c| Value::List(List::Owned(c.to_vec())))
                    .collect();
                Ok(Value::List(List::Owned(chunks)))
            }
            Func::Until => {
                let [count] = take(f, args)?;
                let count = int_arg(f, &count)?;
                let step = if count < 0 { -1 } else { 1 };
                Ok(int_list(until_step(0, count, step)?))
            }
            Func::UntilStep => {
                let [start, stop, step] = take(f, args)?;
                let (start, stop, step) =
                    (int_arg(f, &start)?, int_arg(f, &stop)?, int_arg(f, &step)?);
                Ok(int_list(until_step(start, stop, step)?))
            }
            Func::Seq => {
                let mut p = Vec::with_capacity(n);
                for v in args.iter() {
                    p.push(int_arg(f, v)?);
                }
                let list = match p[..] {
                    [end] => {
                        let inc = if end < 1 { -1 } else { 1 };
                        until_step(1, end + inc, inc)?
                    }
                    [start, end] => {
                        let step = if end < start { -1 } else { 1 };
                        until_step(start, end + step, step)?
                    }
                    [start, step, end] => {
                        let mut inc = 1;
                        if end < start {
                            inc = -1;
                            if step > 0 {
                                return Ok(owned(String::new()));
                            }
                        }
                        until_step(start, end + inc, step)?
                    }
                    _ => Vec::new(),
                };
                let text: Vec<String> = list.iter().map(i64::to_string).collect();
                Ok(owned(text.join(" ")))
            }

            // ---------------------------------------------------------------- JSON
            Func::FromJson | Func::MustFromJson => {
                let [s] = take(f, args)?;
                match serde_json::from_str::<serde_json::Value>(str_arg(f, &s)?) {
                    Ok(v) => Ok(json_to_value(v)),
                    Err(e) if f == Func::MustFromJson => Err(call_err(f, json_error(&e))),
                    Err(_) => Ok(Value::Nil),
                }
            }
            Func::MustToJson
            | Func::ToPrettyJson
            | Func::MustToPrettyJson
            | Func::ToRawJson
            | Func::MustToRawJson => {
                let [v] = take(f, args)?;
                let mut out = String::new();
                if write_json(&mut out, &v).is_err() {
                    if f == Func::ToPrettyJson {
                        return Ok(owned(String::new()));
                    }
                    return Err(call_err(f, unsupported_json(&v)));
                }
                Ok(owned(match f {
                    Func::ToPrettyJson | Func::MustToPrettyJson => json_indent(&out),
                    Func::ToRawJson | Func::MustToRawJson => json_unescape_html(&out),
                    _ => out,
                }))
            }

            // ---------------------------------------------------------------- math
            Func::Add1 => {
                let [v] = take(f, args)?;
                Ok(Value::Int(to_int64(&v).wrapping_add(1)))
            }
            Func::Biggest => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                Ok(Value::Int(args.iter().map(to_int64).max().unwrap_or(0)))
            }
            Func::Add1f | Func::Addf | Func::Subf | Func::Mulf | Func::Divf => {
                let (first, rest, op): (f64, Vec<f64>, DecOp) = match f {
                    Func::Add1f => {
                        let [v] = take(f, args)?;
                        (to_float64(&v), vec![1.0], DecOp::Add)
                    }
                    Func::Addf => (0.0, args.iter().map(to_float64).collect(), DecOp::Add),
                    _ => {
                        if n == 0 {
                            return Err(arity_at_least(f, 1, 0));
                        }
                        let op = match f {
                            Func::Subf => DecOp::Sub,
                            Func::Mulf => DecOp::Mul,
                            _ => DecOp::Div,
                        };
                        (
                            to_float64(&args[0]),
                            args[1..].iter().map(to_float64).collect(),
                            op,
                        )
                    }
                };
                let mut acc = Dec::from_f64(first).map_err(|m| call_err(f, m))?;
                for x in rest {
                    let x = Dec::from_f64(x).map_err(|m| call_err(f, m))?;
                    acc = acc.apply(x, op).map_err(|m| call_err(f, m))?;
                }
                Ok(Value::Float(acc.value()))
            }
            Func::Maxf | Func::Minf => {
                if n == 0 {
                    return Err(arity_at_least(f, 1, 0));
                }
                let mut it = args.iter().map(to_float64);
                let first = it.next().unwrap_or(0.0);
                Ok(Value::Float(it.fold(first, |acc, x| {
                    if f == Func::Maxf {
                        go_max(acc, x)
                    } else {
                        -go_max(-acc, -x)
                    }
                })))
            }
            Func::Floor | Func::Ceil => {
                let [v] = take(f, args)?;
                let x = to_float64(&v);
                Ok(Value::Float(if f == Func::Floor {
                    x.floor()
                } else {
                    x.ceil()
                }))
            }
            Func::Round => {
                if !(2..=3).contains(&n) {
                    return Err(Fail::new(format!(
                        "wrong number of args for round: want at least 2 got {n}"
                    )));
                }
                let value = to_float64(&args[0]);
                let places = int_arg(f, &args[1])? as f64;
                let round_on = args.get(2).map_or(0.5, to_float64);
                let pow = 10f64.powf(places);
                let digit = pow * value;
                let frac = digit.fract();
                let r = if frac >= round_on {
                    digit.ceil()
                } else {
                    digit.floor()
                };
                Ok(Value::Float(r / pow))
            }
            Func::ToDecimal => {
                let [v] = take(f, args)?;
                let text = strval(&v);
                Ok(Value::Int(i64::from_str_radix(&text, 8).unwrap_or(0)))
            }

            // ---------------------------------------------------------------- flow control
            Func::All => Ok(Value::Bool(args.iter().all(truthy))),
            Func::Any => Ok(Value::Bool(args.iter().any(truthy))),
            Func::FailFn => {
                let [msg] = take(f, args)?;
                Err(call_err(f, str_arg(f, &msg)?))
            }

            // ---------------------------------------------------------------- environment
            Func::Env => {
                let [name] = take(f, args)?;
                Ok(owned(getenv(str_arg(f, &name)?)))
            }
            Func::Expandenv => {
                let [s] = take(f, args)?;
                Ok(owned(expand(str_arg(f, &s)?, getenv)))
            }
            other => Err(Fail::new(format!(
                "function {:?} has no implementation",
                other.name()
            ))),
        }
    }
}

/// The server process's environment variable, "" when unset (Go's `os.Getenv`) or when it
/// is one of the server's own settings ([`server_setting`]).
pub(crate) fn getenv(name: &str) -> String {
    if server_setting(name) {
        return String::new();
    }
    std::env::var_os(name)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether `name` is one of the server's own settings (`CULVERT_*`, in any case), which
/// templates never see: among them the secrets key and the API's tokens.
pub(crate) fn server_setting(name: &str) -> bool {
    name.get(..8)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("CULVERT_"))
}

/// An error of one function reported under another's name (the `must` variants).
fn rename(mut e: Fail, f: Func) -> Fail {
    if let Some(rest) = e.msg.strip_prefix("error calling ") {
        if let Some((_, msg)) = rest.split_once(": ") {
            e.msg = format!("error calling {}: {msg}", f.name());
        }
    }
    e
}

fn time_arg<'v>(f: Func, v: &'v Value<'_>) -> Result<&'v Time, Fail> {
    match v {
        Value::Time(t) => Ok(t),
        other => Err(wrong_type(f, "time.Time", other)),
    }
}

/// sprig's `dateInZone`: ints are Unix seconds, anything but a time is the current time;
/// an unknown zone is UTC.
pub(crate) fn date_in_zone(layout: &str, date: &Value<'_>, zone: &str) -> String {
    let t = match date {
        Value::Time(t) => (**t).clone(),
        Value::Int(i) => Time::unix(*i, local()),
        _ => Time::now(),
    };
    let loc = load_location(zone).unwrap_or_else(|_| Location::utc());
    format_time(&t.in_loc(loc), layout)
}

/// Nanoseconds from `t` to now (`time.Since`).
fn since(t: &Time) -> i64 {
    let now = Time::now();
    let diff = (i128::from(now.secs) - i128::from(t.secs)) * i128::from(NANOS_PER_SEC)
        + i128::from(now.nanos)
        - i128::from(t.nanos);
    i64::try_from(diff).unwrap_or(if diff < 0 { i64::MIN } else { i64::MAX })
}

/// `Duration.Round(time.Second)`: half away from zero.
fn round_to_second(d: i64) -> i64 {
    let m = NANOS_PER_SEC;
    let r = d % m;
    if d < 0 {
        let r = -r;
        if r + r < m {
            return d + r;
        }
        d.checked_sub(m - r).unwrap_or(i64::MIN)
    } else {
        if r + r < m {
            return d - r;
        }
        d.checked_add(m - r).unwrap_or(i64::MAX)
    }
}

/// sprig's `durationRound`: the most significant unit only (`2h`, `3mo`).
fn duration_round(d: i64) -> String {
    let u = d.unsigned_abs();
    const HOUR: u64 = 3_600_000_000_000;
    let units: [(u64, &str); 6] = [
        (HOUR * 24 * 365, "y"),
        (HOUR * 24 * 30, "mo"),
        (HOUR * 24, "d"),
        (HOUR, "h"),
        (60_000_000_000, "m"),
        (1_000_000_000, "s"),
    ];
    for (size, name) in units {
        if u > size {
            return format!("{}{name}", u / size);
        }
    }
    "0s".into()
}

/// Go's `strconv.ParseInt(s, 10, 64)` as sprig uses it: out-of-range values are clamped,
/// invalid text is 0.
fn parse_int_clamped(s: &str) -> i64 {
    if let Ok(i) = s.parse::<i64>() {
        return i;
    }
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return if s.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        };
    }
    0
}

/// The niladic methods of `time.Time` a template can call as fields (`(now).Unix`).
pub(crate) fn time_method<'a>(t: &Time, name: &str) -> Result<Value<'a>, Fail> {
    let zone = t.loc.lookup(t.secs);
    let c = civil(t.secs + zone.offset);
    let nanos = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos);
    let clamp = |x: i128| i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX });
    Ok(match name {
        "Unix" => Value::Int(t.secs),
        "UnixMilli" => Value::Int(clamp(nanos.div_euclid(1_000_000))),
        "UnixMicro" => Value::Int(clamp(nanos.div_euclid(1_000))),
        "UnixNano" => Value::Int(clamp(nanos)),
        "Year" => Value::Int(c.year),
        "Month" => owned(format_time(t, "January")),
        "Day" => Value::Int(c.day),
        "Hour" => Value::Int(c.hour),
        "Minute" => Value::Int(c.minute),
        "Second" => Value::Int(c.second),
        "Nanosecond" => Value::Int(i64::from(t.nanos)),
        "YearDay" => Value::Int(c.yday),
        "Weekday" => owned(format_time(t, "Monday")),
        "String" => owned(t.to_go_string()),
        "IsZero" => Value::Bool(t.secs == ZERO_TIME_UNIX && t.nanos == 0),
        "UTC" => Value::Time(Box::new(t.in_loc(Location::utc()))),
        "Local" => Value::Time(Box::new(t.in_loc(local()))),
        _ => {
            return Err(Fail::new(format!(
                "can't evaluate field {name} in type time.Time"
            )))
        }
    })
}

/// Go's `fmt.Sprint` with a space between all operands (`%v %v ...`, as sprig's `cat`).
fn sprint_spaced(parts: &[Value<'_>]) -> String {
    let mut out = String::new();
    for (i, v) in parts.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        fmt_value(&mut out, 'v', &Spec::default(), v, 0);
    }
    out
}

/// Go's `strings.SplitN` (`n < 0`: all parts).
fn go_split(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    if sep.is_empty() {
        let chars: Vec<&str> = s
            .char_indices()
            .map(|(i, c)| &s[i..i + c.len_utf8()])
            .collect();
        if chars.len() <= limit {
            return chars.into_iter().map(str::to_owned).collect();
        }
        let mut out: Vec<String> = chars[..limit - 1].iter().map(|x| (*x).to_owned()).collect();
        let used: usize = out.iter().map(String::len).sum();
        out.push(s[used..].to_owned());
        return out;
    }
    s.splitn(limit, sep).map(str::to_owned).collect()
}

/// Go's `Regexp.Split`.
fn regex_split(re: &Regex, pattern: &str, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if !pattern.is_empty() && s.is_empty() {
        return vec![String::new()];
    }
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for m in re.find_iter(s).take(limit) {
        if n > 0 && out.len() == limit - 1 {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            out.push(s[beg..end].to_owned());
        }
        beg = m.end();
    }
    if end != s.len() {
        out.push(s[beg..].to_owned());
    }
    out
}

fn str_list<'a>(items: Vec<String>) -> Value<'a> {
    Value::List(List::Owned(items.into_iter().map(owned).collect()))
}

fn int_list<'a>(items: Vec<i64>) -> Value<'a> {
    Value::List(List::Owned(items.into_iter().map(Value::Int).collect()))
}

/// sprig's `untilStep`.
fn until_step(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, Fail> {
    const MAX_ITEMS: i128 = 10_000_000;
    let count = if stop < start {
        if step >= 0 {
            return Ok(Vec::new());
        }
        (i128::from(start) - i128::from(stop) + i128::from(-step) - 1) / i128::from(-step)
    } else {
        if step <= 0 {
            return Ok(Vec::new());
        }
        (i128::from(stop) - i128::from(start) + i128::from(step) - 1) / i128::from(step)
    };
    if count > MAX_ITEMS {
        return Err(Fail::new(format!(
            "error calling untilStep: more than {MAX_ITEMS} items"
        )));
    }
    Ok((0..count as i64)
        .map(|i| start.wrapping_add(i.wrapping_mul(step)))
        .collect())
}

/// sprig's `strslice`: a list's non-nil items as strings, or the value itself.
fn to_strings(v: &Value<'_>) -> Vec<String> {
    match list_items(v) {
        Some(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Missing | Value::Nil))
            .map(|i| strval(i).into_owned())
            .collect(),
        None if matches!(v, Value::Missing | Value::Nil) => Vec::new(),
        None => vec![strval(v).into_owned()],
    }
}

/// The items of a list (raw data and positions are lists of bytes in Go).
pub(crate) fn list_items<'a>(v: &Value<'a>) -> Option<Vec<Value<'a>>> {
    match v {
        Value::List(l) => Some((0..l.len()).filter_map(|i| l.get(i)).collect()),
        Value::Raw(b) | Value::Position(b) => {
            Some(b.iter().map(|&x| Value::Int(i64::from(x))).collect())
        }
        _ => None,
    }
}

/// Go's `reflect.Kind` name of a value.
fn kind_name(v: &Value<'_>) -> &'static str {
    match v {
        Value::Missing | Value::Nil => "invalid",
        Value::NilData | Value::Map(_) => "map",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::Operation(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::Raw(_) | Value::Position(_) | Value::List(_) => "slice",
        Value::Record(_) | Value::Change(_) | Value::Time(_) => "struct",
    }
}

/// A list argument, or sprig's `Cannot <what> type <kind>` error (nil panics in Go).
fn items_arg<'a>(f: Func, v: &Value<'a>, what: &str) -> Result<Vec<Value<'a>>, Fail> {
    if matches!(v, Value::Missing | Value::Nil) {
        return Err(call_err(
            f,
            "runtime error: invalid memory address or nil pointer dereference",
        ));
    }
    list_items(v).ok_or_else(|| call_err(f, format!("Cannot {what} type {}", kind_name(v))))
}

/// The map as a shared dict: itself when it is one, else a copy (a record's maps are
/// read-only here).
fn as_dict<'a>(f: Func, v: &Value<'a>) -> Result<Dict<'a>, Fail> {
    match map_arg(f, v)? {
        MapV::Dict(d) => Ok(d.clone()),
        other => Ok(Rc::new(RefCell::new(
            other
                .entries()
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v))
                .collect(),
        ))),
    }
}

/// mergo's `Merge` (and `MergeWithOverwrite`) of maps: keys missing or empty in `dst` are
/// filled from `src` (with `overwrite`, every key of `src` wins); maps in both are merged.
fn merge_into<'a>(dst: &Dict<'a>, src: &MapV<'a>, overwrite: bool) {
    for (key, value) in src.entries() {
        let existing = dst.borrow().get(key.as_ref()).cloned();
        match (&existing, &value) {
            (Some(Value::Map(d)), Value::Map(s))
                if truthy(existing.as_ref().unwrap_or(&Value::Nil)) =>
            {
                let nested = match d {
                    MapV::Dict(nd) => nd.clone(),
                    other => {
                        let copy: Dict<'a> = Rc::new(RefCell::new(
                            other
                                .entries()
                                .into_iter()
                                .map(|(k, v)| (k.into_owned(), v))
                                .collect(),
                        ));
                        dst.borrow_mut().insert(
                            key.clone().into_owned(),
                            Value::Map(MapV::Dict(copy.clone())),
                        );
                        copy
                    }
                };
                merge_into(&nested, s, overwrite);
            }
            _ => {
                let replace = overwrite || existing.as_ref().is_none_or(|e| !truthy(e));
                if replace {
                    dst.borrow_mut().insert(key.into_owned(), value);
                }
            }
        }
    }
}

/// A copy whose dicts are new (`deepCopy`).
fn deep_copy<'a>(v: &Value<'a>) -> Value<'a> {
    match v {
        Value::Map(MapV::Dict(d)) => new_dict(
            d.borrow()
                .iter()
                .map(|(k, v)| (k.clone(), deep_copy(v)))
                .collect(),
        ),
        Value::List(List::Owned(items)) => {
            Value::List(List::Owned(items.iter().map(deep_copy).collect()))
        }
        other => other.clone(),
    }
}

/// Go's `reflect.DeepEqual` of two values (types must match: `1` is not `1.0`).
pub(crate) fn deep_equal(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Missing | Value::Nil, Value::Missing | Value::Nil) => true,
        (Value::NilData, Value::NilData) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Raw(x), Value::Raw(y)) | (Value::Position(x), Value::Position(y)) => x == y,
        (Value::Operation(x), Value::Operation(y)) => x == y,
        (Value::Time(x), Value::Time(y)) => x.same(y),
        (Value::Record(x), Value::Record(y)) => std::ptr::eq(*x, *y),
        (Value::Change(x), Value::Change(y)) => std::ptr::eq(*x, *y),
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len()
                && (0..x.len()).all(|i| match (x.get(i), y.get(i)) {
                    (Some(p), Some(q)) => deep_equal(&p, &q),
                    _ => false,
                })
        }
        (Value::Map(x), Value::Map(y)) => {
            let (ex, ey) = (x.entries(), y.entries());
            type_name(a) == type_name(b)
                && ex.len() == ey.len()
                && ex
                    .iter()
                    .zip(ey.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && deep_equal(v1, v2))
        }
        _ => false,
    }
}

/// A decoded JSON value as Go's `json.Unmarshal` into `interface{}` gives it: numbers are
/// float64, objects `map[string]interface {}`.
fn json_to_value<'a>(v: serde_json::Value) -> Value<'a> {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => owned(s),
        J::Array(items) => Value::List(List::Owned(items.into_iter().map(json_to_value).collect())),
        J::Object(m) => new_dict(m.into_iter().map(|(k, v)| (k, json_to_value(v))).collect()),
    }
}

/// A JSON syntax error in Go's words where they are known.
fn json_error(e: &serde_json::Error) -> String {
    if e.is_eof() {
        "unexpected end of JSON input".into()
    } else {
        e.to_string()
    }
}

/// Go's `json: unsupported value: NaN` for the first value JSON cannot hold.
fn unsupported_json(v: &Value<'_>) -> String {
    fn find(v: &Value<'_>) -> Option<f64> {
        match v {
            Value::Float(f) if !f.is_finite() => Some(*f),
            Value::List(l) => (0..l.len()).filter_map(|i| l.get(i)).find_map(|i| find(&i)),
            Value::Map(m) => m.entries().iter().find_map(|(_, i)| find(i)),
            _ => None,
        }
    }
    match find(v) {
        Some(f) => {
            let mut shown = String::new();
            fmt_value(&mut shown, 'v', &Spec::default(), &Value::Float(f), 0);
            format!("json: unsupported value: {shown}")
        }
        None => "json: error calling MarshalJSON for type time.Time: Time.MarshalJSON: year outside of range [0,9999]".into(),
    }
}

/// Go's `math.Max`.
fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y {
        x
    } else {
        y
    }
}

// ---------------------------------------------------------------------------------------
