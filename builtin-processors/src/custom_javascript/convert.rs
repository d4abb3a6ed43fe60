//! Structured data across the border between Rust and JavaScript, without JSON text.
//!
//! `custom.javascript` used to hand structured data to the script as
//! `JSON.parse(serde_json::to_string(data))` and take it back as
//! `serde_json::from_str(JSON.stringify(object))`. Printing and parsing that text (QuickJS's
//! `JSON.stringify` in particular, which looks every property name up afresh) was most of
//! the processor's cost per record. The functions here build the same values directly:
//!
//! * [`to_js`] makes the objects `JSON.parse` would make of serde_json's text;
//! * [`Capture`] reads back what `serde_json` would parse out of `JSON.stringify`'s text,
//!   walking plain objects and arrays itself and asking `JSON.stringify` for anything else
//!   (objects with `toJSON`, dates, boxed values, proxies, class instances, BigInts), so that
//!   the result, errors and the order in which getters and `toJSON` run stay the same.

use rquickjs::object::{Filter, Property};
use rquickjs::{Array, Atom, Ctx, Function, Object, Value};
use serde_json::{Map, Number};
use std::cell::RefCell;

/// serde_json's nesting limit: text with an array or object this deep does not parse.
const SERDE_NESTING_LIMIT: usize = 128;

/// Arrays longer than this are left to `JSON.stringify` (see [`Walk::plain`]).
const LONG_ARRAY: u32 = 1 << 16;

/// Structured data as the object `JSON.parse` makes of its JSON text.
pub(super) fn to_js<'js>(
    ctx: &Ctx<'js>,
    map: &Map<String, serde_json::Value>,
) -> rquickjs::Result<Value<'js>> {
    if nesting_over(map, SERDE_NESTING_LIMIT) {
        // Deeper than any text serde_json itself reads back: go through the text as before
        // (QuickJS's parser checks its stack; this recursion would not).
        let text = serde_json::to_string(map).map_err(|e| rquickjs::Error::IntoJs {
            from: "structured data",
            to: "object",
            message: Some(e.to_string()),
        })?;
        return ctx.json_parse(text);
    }
    object_to_js(ctx, map)
}

/// Whether `map` nests objects or arrays `limit` deep or more (itself counting as one).
fn nesting_over(map: &Map<String, serde_json::Value>, limit: usize) -> bool {
    fn over(value: &serde_json::Value, limit: usize) -> bool {
        match value {
            serde_json::Value::Array(items) => {
                limit <= 1 || items.iter().any(|item| over(item, limit - 1))
            }
            serde_json::Value::Object(map) => {
                limit <= 1 || map.values().any(|item| over(item, limit - 1))
            }
            _ => false,
        }
    }
    limit <= 1 || map.values().any(|item| over(item, limit - 1))
}

fn object_to_js<'js>(
    ctx: &Ctx<'js>,
    map: &Map<String, serde_json::Value>,
) -> rquickjs::Result<Value<'js>> {
    let object = Object::new(ctx.clone())?;
    for (key, value) in map {
        // Defined, not assigned, as `JSON.parse` does: a key `__proto__` is an own
        // property and setters on `Object.prototype` do not run.
        object.prop(key.as_str(), json_property(ctx, value)?)?;
    }
    Ok(object.into_value())
}

/// A member as `JSON.parse` defines it: writable, enumerable and configurable.
fn json_property<'js>(
    ctx: &Ctx<'js>,
    value: &serde_json::Value,
) -> rquickjs::Result<Property<Value<'js>>> {
    Ok(Property::from(value_to_js(ctx, value)?)
        .writable()
        .enumerable()
        .configurable())
}

fn value_to_js<'js>(ctx: &Ctx<'js>, value: &serde_json::Value) -> rquickjs::Result<Value<'js>> {
    Ok(match value {
        serde_json::Value::Null => Value::new_null(ctx.clone()),
        serde_json::Value::Bool(b) => Value::new_bool(ctx.clone(), *b),
        serde_json::Value::Number(n) => number_to_js(ctx, n),
        serde_json::Value::String(s) => rquickjs::String::from_str(ctx.clone(), s)?.into_value(),
        serde_json::Value::Array(items) => {
            let array = Array::new(ctx.clone())?;
            for (i, item) in items.iter().enumerate() {
                let index = u32::try_from(i).map_err(|_| rquickjs::Error::Allocation)?;
                array.as_object().prop(index, json_property(ctx, item)?)?;
            }
            array.into_value()
        }
        serde_json::Value::Object(map) => object_to_js(ctx, map)?,
    })
}

/// A number as JavaScript reads serde_json's text of it: the nearest double. (Small
/// integers become QuickJS's int values, as its parser makes them; `-0.0` stays negative.)
fn number_to_js<'js>(ctx: &Ctx<'js>, n: &Number) -> Value<'js> {
    if let Some(i) = n.as_i64().and_then(|i| i32::try_from(i).ok()) {
        return Value::new_int(ctx.clone(), i);
    }
    let f = match (n.as_u64(), n.as_i64(), n.as_f64()) {
        // `as` rounds to nearest, as a parser does.
        (Some(u), _, _) => u as f64,
        (_, Some(i), _) => i as f64,
        (_, _, Some(f)) => f,
        _ => f64::NAN,
    };
    Value::new_float(ctx.clone(), f)
}

/// Where the members of a captured object come from: what `JSON.stringify` is told the
/// member's key is, when it is asked to help.
#[derive(Clone)]
enum Key<'js> {
    Atom(Atom<'js>),
    Index(u32),
}

/// Structured data the script returned, converted by the native `capture` during the
/// script's `exportRecord` (so in the order `JSON.stringify` ran before) and kept here until
/// Rust builds the record: each call of `capture` answers the slot of its result.
#[derive(Default)]
pub(super) struct Capture {
    slots: RefCell<Vec<Option<Map<String, serde_json::Value>>>>,
}

impl Capture {
    /// Forget what an earlier record left.
    pub(super) fn clear(&self) {
        self.slots.borrow_mut().clear();
    }

    /// The data in `slot`: none if it was not a JSON object (the record then fails).
    pub(super) fn take(&self, slot: usize) -> Option<Map<String, serde_json::Value>> {
        self.slots.borrow_mut().get_mut(slot).and_then(Option::take)
    }

    /// Convert `value` (an object, not an array or a view of bytes) to what
    /// `serde_json::from_str(JSON.stringify(value))` gives, and answer its slot.
    /// `object_proto` and `array_proto` are `Object.prototype` and `Array.prototype`,
    /// `member` the prelude's `(k, v) => JSON.stringify({[k]: v})`, `stringify`
    /// `JSON.stringify`.
    pub(super) fn capture<'js>(
        &self,
        ctx: &Ctx<'js>,
        value: Value<'js>,
        protos: (Object<'js>, Object<'js>),
        member: Function<'js>,
        stringify: Function<'js>,
    ) -> rquickjs::Result<i32> {
        self.capture_within(ctx, value, protos, member, stringify, super::MEMORY_LIMIT)
    }

    /// [`Capture::capture`], with `budget` bytes of JSON text at most (see [`Walk::budget`]).
    pub(super) fn capture_within<'js>(
        &self,
        ctx: &Ctx<'js>,
        value: Value<'js>,
        protos: (Object<'js>, Object<'js>),
        member: Function<'js>,
        stringify: Function<'js>,
        budget: usize,
    ) -> rquickjs::Result<i32> {
        let mut walk = Walk {
            ctx,
            object_proto: &protos.0,
            array_proto: &protos.1,
            member: &member,
            to_json: Atom::from_predefined(ctx.clone(), rquickjs::atom::PredefinedAtom::ToJSON),
            length: Atom::from_predefined(ctx.clone(), rquickjs::atom::PredefinedAtom::Length),
            invalid: false,
            budget,
        };
        let fast = match value.as_object() {
            Some(object) if !value.is_proxy() => walk.plain(object, 1)?,
            _ => None,
        };
        let data = match fast {
            Some(serde_json::Value::Object(map)) if !walk.invalid => Some(map),
            Some(_) => None,
            // Not a plain object: the text, as it always was.
            None => {
                let text: Option<String> = stringify.call((value,))?;
                match text
                    .as_deref()
                    .map(serde_json::from_str::<serde_json::Value>)
                {
                    Some(Ok(serde_json::Value::Object(map))) => Some(map),
                    _ => None,
                }
            }
        };
        let mut slots = self.slots.borrow_mut();
        slots.push(data);
        i32::try_from(slots.len() - 1).map_err(|_| rquickjs::Error::Allocation)
    }
}

/// One conversion under way.
struct Walk<'a, 'js> {
    ctx: &'a Ctx<'js>,
    object_proto: &'a Object<'js>,
    array_proto: &'a Object<'js>,
    member: &'a Function<'js>,
    to_json: Atom<'js>,
    length: Atom<'js>,
    /// Set when the JSON text would not have parsed (a lone surrogate, nesting beyond
    /// serde_json's limit): the data is then not structured data, as before.
    invalid: bool,
    /// What is left of the script's memory limit for the JSON text this walk stands in
    /// for, counted from below (the text is at least this long). `JSON.stringify` would
    /// have run out of memory building longer text; so does the walk, rather than fill
    /// Rust's memory (a sparse `new Array(1e9)` is a small object but a huge text).
    budget: usize,
}

impl<'js> Walk<'_, 'js> {
    /// Count `bytes` of JSON text against [`Walk::budget`]: out of memory once it is spent.
    fn charge(&mut self, bytes: usize) -> rquickjs::Result<()> {
        self.budget = self
            .budget
            .checked_sub(bytes)
            .ok_or(rquickjs::Error::Allocation)?;
        Ok(())
    }

    /// A plain object or array (its prototype the usual one, no `toJSON`, not a proxy)
    /// converted member by member, at nesting `level` (1 for the data itself); `None` for
    /// any other object, which `JSON.stringify` must convert.
    ///
    /// (A boxed number, string or boolean whose prototype was replaced by `Object.prototype`
    /// would pass for a plain object here; `JSON.stringify` would print its primitive.)
    fn plain(
        &mut self,
        object: &Object<'js>,
        level: usize,
    ) -> rquickjs::Result<Option<serde_json::Value>> {
        let array = object.as_value().is_array();
        let plain = match object.get_prototype() {
            None => !array,
            Some(proto) if array => proto == *self.array_proto,
            Some(proto) => proto == *self.object_proto,
        };
        if !plain {
            return Ok(None);
        }
        // An array's length (a plain value, no getter). Long ones go to `JSON.stringify`:
        // sparse, they cost little memory in JavaScript but an entry each here, while its
        // text stays within the script's memory limit, as it always did.
        let length = if array {
            let length: Value = object.get(self.length.clone())?;
            let length = length.as_number().unwrap_or(0.0);
            if length > f64::from(LONG_ARRAY) {
                return Ok(None);
            }
            length as u32
        } else {
            0
        };
        self.charge(2)?; // {} or []
                         // `JSON.stringify` calls `toJSON` first; leave such objects to it.
        let to_json: Value = object.get(self.to_json.clone())?;
        if !to_json.is_undefined() {
            return Ok(None);
        }
        if array {
            let mut items = Vec::with_capacity(length.min(1024) as usize);
            for index in 0..length {
                let item: Value = object.get(index)?;
                let item = self.member(Key::Index(index), item, level + 1)?;
                if item.is_none() {
                    self.charge(5)?; // null,
                }
                items.push(item.unwrap_or(serde_json::Value::Null));
            }
            return Ok(Some(serde_json::Value::Array(items)));
        }
        let mut map = Map::new();
        for key in object.own_keys::<Atom>(Filter::default()) {
            let key = key?;
            let item: Value = object.get(key.clone())?;
            // (`Atom::to_string` neither checks the UTF-8 nor reads past a NUL.)
            let name = key.to_js_string()?.to_string();
            let item = self.member(Key::Atom(key), item, level + 1)?;
            match name {
                Ok(name) => {
                    if let Some(item) = item {
                        self.charge(name.len() + 3)?; // "name":
                        map.insert(name, item);
                    }
                }
                // A lone surrogate: JSON.stringify escapes it, serde_json refuses it.
                Err(_) => self.invalid = true,
            }
        }
        Ok(Some(serde_json::Value::Object(map)))
    }

    /// A member's value (as an object or array it would be at nesting `level`); `None` when
    /// `JSON.stringify` leaves it out (undefined, functions, symbols).
    fn member(
        &mut self,
        key: Key<'js>,
        value: Value<'js>,
        level: usize,
    ) -> rquickjs::Result<Option<serde_json::Value>> {
        // Each charge: the least text the value takes, with its separator.
        if let Some(i) = value.as_int() {
            self.charge(2)?;
            return Ok(Some(serde_json::Value::Number(i.into())));
        }
        if let Some(s) = value.as_string() {
            return Ok(Some(match s.to_string() {
                Ok(s) => {
                    self.charge(s.len() + 3)?;
                    serde_json::Value::String(s)
                }
                Err(_) => {
                    self.invalid = true;
                    serde_json::Value::Null
                }
            }));
        }
        if let Some(b) = value.as_bool() {
            self.charge(5)?;
            return Ok(Some(serde_json::Value::Bool(b)));
        }
        if value.is_null() {
            self.charge(5)?;
            return Ok(Some(serde_json::Value::Null));
        }
        if let Some(f) = value.as_float() {
            self.charge(2)?;
            return Ok(Some(self.float(f)));
        }
        if value.is_undefined() || value.is_symbol() {
            return Ok(None);
        }
        if level < SERDE_NESTING_LIMIT && !value.is_proxy() && !value.is_function() {
            if let Some(object) = value.as_object() {
                if let Some(converted) = self.plain(object, level)? {
                    return Ok(Some(converted));
                }
            }
        }
        self.stringified(key, value, level)
    }

    /// A double as serde_json reads JSON.stringify's text of it.
    fn float(&mut self, f: f64) -> serde_json::Value {
        if !f.is_finite() {
            return serde_json::Value::Null;
        }
        match serde_json::from_str::<Number>(&js_number_text(f)) {
            Ok(n) => serde_json::Value::Number(n),
            Err(_) => {
                self.invalid = true;
                serde_json::Value::Null
            }
        }
    }

    /// A member `JSON.stringify` converts: its text of `{[key]: value}`, parsed. Nesting
    /// beyond serde_json's limit counts from the member's own level.
    fn stringified(
        &mut self,
        key: Key<'js>,
        value: Value<'js>,
        level: usize,
    ) -> rquickjs::Result<Option<serde_json::Value>> {
        let key = match key {
            Key::Atom(atom) => atom.to_value()?,
            Key::Index(index) => Value::new_number(self.ctx.clone(), f64::from(index)),
        };
        let text: String = self.member.call((key, value))?;
        self.charge(text.len())?;
        let Ok(wrapper) = serde_json::from_str::<Map<String, serde_json::Value>>(&text) else {
            self.invalid = true;
            return Ok(None);
        };
        let item = wrapper.into_iter().next().map(|(_, item)| item);
        if let Some(item) = &item {
            let depth = nesting(item);
            if depth > 0 && level - 1 + depth >= SERDE_NESTING_LIMIT {
                self.invalid = true;
            }
        }
        Ok(item)
    }
}

/// How deep arrays and objects nest in a value (0 for anything else).
fn nesting(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

/// A finite double as JavaScript's `String(f)` (and so `JSON.stringify`) writes it: the
/// fewest digits that read back as `f`, plain from 1e-6 to below 1e21, else `1e+21` style.
pub(super) fn js_number_text(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: `d.ddde<exp>`.
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    // The decimal point goes after `n` digits.
    let n = exponent + 1;
    let mut out = String::with_capacity(k as usize + 8);
    if f < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', n.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n - 1 < 0 { '-' } else { '+' });
        out.push_str(&(n - 1).unsigned_abs().to_string());
    }
    out
}
