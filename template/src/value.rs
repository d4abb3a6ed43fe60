//! Values a template computes with, borrowed from the record where possible, and Go's truthiness and type names.

use super::*;

pub(crate) type JsonMap = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
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
    /// A `time.Time` (from `now`, `toDate`, `dateModify`).
    Time(Box<Time>),
}

#[derive(Debug, Clone)]
pub(crate) enum List<'a> {
    Json(&'a [serde_json::Value]),
    Owned(Vec<Value<'a>>),
}

impl<'a> List<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            List::Json(items) => items.len(),
            List::Owned(items) => items.len(),
        }
    }

    pub(crate) fn get(&self, i: usize) -> Option<Value<'a>> {
        match self {
            List::Json(items) => items.get(i).map(from_json),
            List::Owned(items) => items.get(i).cloned(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum MapV<'a> {
    Json(&'a JsonMap),
    Meta(&'a culvert_domain::Metadata),
    /// The result of `split` (Go's `map[string]string`).
    Owned(BTreeMap<String, Value<'a>>),
    /// A `map[string]interface {}` made by a function (`dict`, `fromJson`, `merge`, ...):
    /// shared, so that `set` and `unset` change it in place as in Go.
    Dict(Dict<'a>),
}

/// A mutable map shared by every copy of the value, like a Go map.
pub(crate) type Dict<'a> = Rc<RefCell<BTreeMap<String, Value<'a>>>>;

pub(crate) fn new_dict<'a>(m: BTreeMap<String, Value<'a>>) -> Value<'a> {
    Value::Map(MapV::Dict(Rc::new(RefCell::new(m))))
}

impl<'a> MapV<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            MapV::Json(m) => m.len(),
            MapV::Meta(m) => m.len(),
            MapV::Owned(m) => m.len(),
            MapV::Dict(m) => m.borrow().len(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<Value<'a>> {
        match self {
            MapV::Json(m) => m.get(key).map(from_json),
            MapV::Meta(m) => m.get(key).map(|v| Value::Str(Cow::Borrowed(v))),
            MapV::Owned(m) => m.get(key).cloned(),
            MapV::Dict(m) => m.borrow().get(key).cloned(),
        }
    }

    /// What `index` returns for a missing key: the zero value of the map's element type.
    pub(crate) fn zero(&self) -> Value<'a> {
        match self {
            MapV::Json(_) | MapV::Dict(_) => Value::Nil,
            MapV::Meta(_) | MapV::Owned(_) => Value::Str(Cow::Borrowed("")),
        }
    }

    pub(crate) fn keys(&self) -> Vec<Cow<'_, str>> {
        let mut keys: Vec<Cow<'_, str>> = match self {
            MapV::Json(m) => m.keys().map(|k| Cow::Borrowed(k.as_str())).collect(),
            MapV::Meta(m) => m.keys().map(Cow::Borrowed).collect(),
            MapV::Owned(m) => m.keys().map(|k| Cow::Borrowed(k.as_str())).collect(),
            MapV::Dict(m) => m.borrow().keys().map(|k| Cow::Owned(k.clone())).collect(),
        };
        keys.sort_unstable();
        keys
    }

    /// Keys and values sorted by key, as Go's `range` visits a map.
    pub(crate) fn range_entries(&self) -> Vec<(Value<'a>, Value<'a>)> {
        let mut entries: Vec<(Value<'a>, Value<'a>)> = match self {
            MapV::Json(m) => {
                let m: &'a JsonMap = m;
                m.iter()
                    .map(|(k, v)| (Value::Str(Cow::Borrowed(k.as_str())), from_json(v)))
                    .collect()
            }
            MapV::Meta(m) => {
                let m: &'a culvert_domain::Metadata = m;
                m.iter()
                    .map(|(k, v)| (Value::Str(Cow::Borrowed(k)), Value::Str(Cow::Borrowed(v))))
                    .collect()
            }
            MapV::Owned(m) => m
                .iter()
                .map(|(k, v)| (Value::Str(Cow::Owned(k.clone())), v.clone()))
                .collect(),
            MapV::Dict(m) => m
                .borrow()
                .iter()
                .map(|(k, v)| (Value::Str(Cow::Owned(k.clone())), v.clone()))
                .collect(),
        };
        fn key<'v>(v: &'v Value<'_>) -> &'v str {
            match v {
                Value::Str(s) => s,
                _ => "",
            }
        }
        if !entries.is_sorted_by(|a, b| key(&a.0) <= key(&b.0)) {
            entries.sort_unstable_by(|a, b| key(&a.0).cmp(key(&b.0)));
        }
        entries
    }

    /// Entries sorted by key, as Go prints and encodes maps.
    pub(crate) fn entries(&self) -> Vec<(Cow<'_, str>, Value<'a>)> {
        let mut entries: Vec<(Cow<'_, str>, Value<'a>)> = match self {
            MapV::Json(m) => m
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), from_json(v)))
                .collect(),
            MapV::Meta(m) => m
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k), Value::Str(Cow::Borrowed(v))))
                .collect(),
            MapV::Owned(m) => m
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), v.clone()))
                .collect(),
            MapV::Dict(m) => m
                .borrow()
                .iter()
                .map(|(k, v)| (Cow::Owned(k.clone()), v.clone()))
                .collect(),
        };
        // Already sorted unless serde_json keeps insertion order (its preserve_order).
        if !entries.is_sorted_by(|a, b| a.0 <= b.0) {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        entries
    }
}

pub(crate) fn from_json(v: &serde_json::Value) -> Value<'_> {
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

pub(crate) fn data_value(data: &Option<Data>) -> Value<'_> {
    match data {
        None => Value::NilData,
        Some(Data::Raw(bytes)) => Value::Raw(bytes),
        Some(Data::Structured(m)) => Value::Map(MapV::Json(m)),
    }
}

pub(crate) fn is_nilish(v: &Value<'_>) -> bool {
    matches!(v, Value::Missing | Value::Nil | Value::NilData)
}

/// Go's truth: false for zero values, nil and empty collections.
pub(crate) fn truthy(v: &Value<'_>) -> bool {
    match v {
        Value::Missing | Value::Nil | Value::NilData => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Raw(b) | Value::Position(b) => !b.is_empty(),
        Value::Operation(_) | Value::Record(_) | Value::Change(_) | Value::Time(_) => true,
        Value::List(l) => l.len() > 0,
        Value::Map(m) => m.len() > 0,
    }
}

pub(crate) fn type_name(v: &Value<'_>) -> &'static str {
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
        Value::Map(MapV::Dict(_)) => "map[string]interface {}",
        Value::Time(_) => "time.Time",
        Value::Record(_) => "opencdc.Record",
        Value::Change(_) => "opencdc.Change",
    }
}

/// Conduit's numbering of operations (`opencdc.Operation` is an int in Go).
pub(crate) fn op_number(op: Operation) -> i64 {
    match op {
        Operation::Create => 1,
        Operation::Update => 2,
        Operation::Delete => 3,
        Operation::Snapshot => 4,
    }
}

/// A field of the value: a map look-up, or a field of the record or its payload.
pub(crate) fn field<'a>(v: Value<'a>, name: &str) -> Result<Value<'a>, Fail> {
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
        Value::Time(t) => time_method(&t, name),
        other => Err(Fail::new(format!(
            "can't evaluate field {name} in type {}",
            type_name(&other)
        ))),
    }
}

impl Base {
    pub(crate) fn eval<'a>(&self, r: &'a Record) -> Result<Value<'a>, Fail> {
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
