//! `builtin:generator`: a source of made-up records, with the parameters of Conduit's
//! generator connector.
//!
//! Records carry a random key (a word, raw), an operation drawn from `operations`, and a
//! payload made from `format.type` and `format.options.*`: `structured` gives an object
//! whose fields have the given types (`int`, `string`, `time`, `bool`, `duration`), `raw`
//! the same object as JSON bytes, `file` the bytes of the file at `format.options.path`.
//! `create` and `snapshot` records have an `after`, `delete` a `before`, `update` both.
//!
//! `collections.<name>.format.*` and `collections.<name>.operations` configure more
//! collections, each with its own format and operations; each record comes from one of
//! them at random and carries its name in `opencdc.collection` (the top-level `format.*`
//! is the unnamed collection, present when `format.type` is set). With `burst.sleepTime`
//! the generator makes records for `burst.generateTime`, then pauses for the sleep time,
//! and so on.
//!
//! Unlike Conduit's generator, this one resumes: the position is the number of records
//! generated so far, so a restarted pipeline continues the count (`recordCount` is a total,
//! not per run).

use culvert_domain::opencdc::{metadata, MetaText};
use culvert_domain::{Change, Data, Metadata, Operation, Position, Record, Structured};
use culvert_plugins::connector::{
    ConnectorPlugin, Destination, PluginError, Prepare, Settings, Source, Specification, IDLE_READ,
};
use culvert_plugins::spec::{parse_duration, Parameter, ParameterType, Validation};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// The version listed and accepted in references (`builtin:generator@v0.10.4`): the version of
/// Conduit's `conduit-connector-generator` that Conduit bundles and this connector matches.
pub const CONDUIT_VERSION: &str = "v0.10.4";

/// The generator plugin.
pub struct Generator {
    spec: Specification,
}

impl Generator {
    /// The plugin with its specification.
    pub fn new() -> Self {
        let field_types = "The options for the raw and structured formats: pairs of field name \
             and type, where the type is one of int, string, time, bool, duration.";
        let operations = "Comma-separated record operations to generate: create, update, \
             delete, snapshot.";
        let formats =
            || Validation::Inclusion(vec!["raw".into(), "structured".into(), "file".into()]);
        Self {
            spec: Specification {
                name: "generator",
                summary: "Generates records (structured, raw or from a file) at a given rate.",
                description: "A source of made-up records for trying pipelines out and for \
                    load tests. It resumes from its position: recordCount counts all runs.",
                version: CONDUIT_VERSION,
                author: "Culvert",
                source: Some(vec![
                    Parameter::new(
                        "format.type",
                        ParameterType::String,
                        "The format of the generated payload data (raw, structured, file).",
                    )
                    .validate(formats()),
                    Parameter::new("format.options.*", ParameterType::String, field_types),
                    Parameter::new(
                        "format.options.path",
                        ParameterType::String,
                        "Path to the input file (only for format type file).",
                    ),
                    Parameter::new("operations", ParameterType::String, operations)
                        .default_value("create")
                        .validate(Validation::Required),
                    Parameter::new(
                        "collections.*.format.type",
                        ParameterType::String,
                        "The format of the collection's payload data (raw, structured, file).",
                    )
                    .validate(formats()),
                    Parameter::new(
                        "collections.*.format.options.*",
                        ParameterType::String,
                        field_types,
                    ),
                    Parameter::new(
                        "collections.*.format.options.path",
                        ParameterType::String,
                        "Path to the collection's input file (only for format type file).",
                    ),
                    Parameter::new(
                        "collections.*.operations",
                        ParameterType::String,
                        operations,
                    )
                    .default_value("create")
                    .validate(Validation::Required),
                    Parameter::new(
                        "burst.sleepTime",
                        ParameterType::Duration,
                        "The time the generator sleeps between bursts (none: no bursts).",
                    ),
                    Parameter::new(
                        "burst.generateTime",
                        ParameterType::Duration,
                        "How long a burst generates records; only with burst.sleepTime.",
                    )
                    .default_value("1s"),
                    Parameter::new(
                        "rate",
                        ParameterType::Float,
                        "The maximum rate in records per second (0 means no limit).",
                    ),
                    Parameter::new(
                        "recordCount",
                        ParameterType::Int,
                        "Number of records to generate in all (0 means no end).",
                    )
                    .validate(Validation::GreaterThan(-1.0)),
                    Parameter::new(
                        "readTime",
                        ParameterType::Duration,
                        "The time it takes to 'read' a record. Deprecated: use rate.",
                    ),
                ]),
                destination: None,
                standalone: false,
            },
        }
    }
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectorPlugin for Generator {
    fn specification(&self) -> &Specification {
        &self.spec
    }

    fn new_source(&self, settings: &Settings) -> Result<Box<dyn Source>, PluginError> {
        Ok(Box::new(GeneratorSource::new(settings)?))
    }

    fn new_destination(&self, _settings: &Settings) -> Result<Box<dyn Destination>, PluginError> {
        Err(PluginError::Other(
            "the generator has no destination".into(),
        ))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FieldType {
    Int,
    String,
    Time,
    Bool,
    Duration,
}

#[derive(Debug)]
enum Format {
    Structured(Vec<(String, FieldType)>),
    Raw(Vec<(String, FieldType)>),
    File(Vec<u8>),
}

/// One collection: its name (empty for the top-level one), payload format and operations.
#[derive(Debug)]
struct Collection {
    name: String,
    format: Format,
    operations: Vec<Operation>,
    /// Whether its payloads have a time field (so a record needs its instant as text).
    has_time: bool,
}

/// A running generator.
pub struct GeneratorSource {
    collections: Vec<Collection>,
    /// Time between records (`None`: as fast as asked).
    interval: Option<Duration>,
    /// When the next record may be made, under a rate limit.
    next_at: Option<tokio::time::Instant>,
    /// Bursts: (sleep between bursts, length of a burst).
    burst: Option<(Duration, Duration)>,
    /// The end of the current burst.
    burst_until: Option<tokio::time::Instant>,
    /// Total to make (0: no end).
    record_count: u64,
    /// Records made so far, this run and earlier ones (the position).
    count: u64,
    /// Structured payloads as maps (processors will read them), not JSON text.
    as_maps: bool,
    rng: SmallRng,
    /// The text of the last record's instant, and what it is made from.
    times: TimeText,
}

fn invalid(key: &str, problem: String) -> PluginError {
    PluginError::InvalidSettings(culvert_plugins::spec::InvalidSettings(vec![
        culvert_plugins::spec::SettingError {
            key: key.to_owned(),
            problem,
        },
    ]))
}

impl Collection {
    /// The collection whose settings start with `prefix` (`""` or `collections.NAME.`).
    fn new(name: &str, prefix: &str, settings: &Settings) -> Result<Self, PluginError> {
        let key = |k: &str| format!("{prefix}{k}");
        let get = |k: &str| settings.get(&key(k)).map(String::as_str).unwrap_or("");
        let options = key("format.options.");
        let mut fields = Vec::new();
        for (setting, value) in settings {
            let Some(field) = setting.strip_prefix(&options) else {
                continue;
            };
            if field == "path" {
                continue;
            }
            let ty = match value.as_str() {
                "int" => FieldType::Int,
                "string" => FieldType::String,
                "time" => FieldType::Time,
                "bool" => FieldType::Bool,
                "duration" => FieldType::Duration,
                other => {
                    return Err(invalid(
                        setting,
                        format!(
                            "unknown field type {other:?}: want int, string, time, bool or \
                             duration"
                        ),
                    ))
                }
            };
            fields.push((field.to_owned(), ty));
        }
        // Sorted by name: the payload's text is then canonical (see `Structured`).
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let format = match get("format.type") {
            "structured" | "raw" if fields.is_empty() => {
                return Err(invalid(
                    &key("format.options.*"),
                    format!("at least one field is needed, e.g. {options}id: int"),
                ))
            }
            "structured" => Format::Structured(fields),
            "raw" => Format::Raw(fields),
            "file" => {
                let path = get("format.options.path");
                if path.is_empty() {
                    return Err(invalid(
                        &key("format.options.path"),
                        "required when the format type is file".into(),
                    ));
                }
                let bytes = std::fs::read(path).map_err(|e| {
                    invalid(
                        &key("format.options.path"),
                        format!("cannot read {path:?}: {e}"),
                    )
                })?;
                Format::File(bytes)
            }
            other => {
                return Err(invalid(
                    &key("format.type"),
                    format!("{other:?} must be one of raw, structured, file"),
                ))
            }
        };
        let operations = match get("operations") {
            "" => "create",
            text => text,
        }
        .split(',')
        .map(str::trim)
        .map(|name| {
            Operation::parse(name).ok_or_else(|| {
                invalid(
                    &key("operations"),
                    format!("unknown operation {name:?}: want create, update, delete or snapshot"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
        let has_time = match &format {
            Format::Structured(fields) | Format::Raw(fields) => {
                fields.iter().any(|(_, ty)| *ty == FieldType::Time)
            }
            Format::File(_) => false,
        };
        Ok(Self {
            name: name.to_owned(),
            format,
            operations,
            has_time,
        })
    }

    /// A payload side in this collection's format; structured data as a map if `as_map`,
    /// else as JSON text. Time fields are `now`.
    fn data(&self, rng: &mut SmallRng, as_map: bool, now: &Now<'_>) -> Data {
        let fields = match &self.format {
            Format::File(bytes) => return Data::Raw(bytes.clone()),
            Format::Structured(fields) if as_map => {
                // Collected, not inserted one by one: the map is built in bulk from the
                // fields (sorted by name), without a search down the tree per field.
                return Data::Structured(
                    fields
                        .iter()
                        .map(|(name, ty)| (name.clone(), Random::draw(rng, *ty, now).into()))
                        .collect(),
                );
            }
            Format::Structured(fields) | Format::Raw(fields) => fields,
        };
        // Written straight to JSON text, values drawn as they are written: no map, and no
        // string per field (the fields are sorted by name, so the text is canonical).
        let drawn = Drawn {
            fields,
            rng: std::cell::RefCell::new(rng),
            now,
        };
        match self.format {
            Format::Structured(_) => {
                Data::Structured(Structured::from_serialized(&drawn).expect("JSON of plain values"))
            }
            _ => Data::Raw(serde_json::to_vec(&drawn).expect("JSON of plain values")),
        }
    }
}

/// A collection's fields with random values, drawn as they are serialised (in field order,
/// one value per field).
struct Drawn<'a, 'r> {
    fields: &'a [(String, FieldType)],
    rng: std::cell::RefCell<&'r mut SmallRng>,
    now: &'a Now<'a>,
}

impl serde::Serialize for Drawn<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut rng = self.rng.borrow_mut();
        let rng = &mut **rng;
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (name, ty) in self.fields {
            map.serialize_entry(name, &Random::draw(rng, *ty, self.now))?;
        }
        map.end()
    }
}

impl GeneratorSource {
    fn new(settings: &Settings) -> Result<Self, PluginError> {
        let get = |key: &str| settings.get(key).map(String::as_str).unwrap_or("");
        let mut collections = Vec::new();
        if !get("format.type").is_empty() {
            collections.push(Collection::new("", "", settings)?);
        }
        let names: std::collections::BTreeSet<&str> = settings
            .keys()
            .filter_map(|k| k.strip_prefix("collections."))
            .filter_map(|rest| rest.split_once('.').map(|(name, _)| name))
            .collect();
        for name in names {
            collections.push(Collection::new(
                name,
                &format!("collections.{name}."),
                settings,
            )?);
        }
        if collections.is_empty() {
            return Err(invalid(
                "format.type",
                "invalid configuration, please configure at least one collection using \
                 `format.type` or `collections.*.format.type`"
                    .into(),
            ));
        }
        let rate: f64 = match get("rate") {
            "" => 0.0,
            text => text
                .parse()
                .map_err(|_| invalid("rate", format!("{text:?} is not a number")))?,
        };
        if !(rate >= 0.0 && rate.is_finite()) {
            return Err(invalid("rate", format!("{rate} must be 0 or more")));
        }
        if rate > 0.0 && !get("readTime").is_empty() {
            return Err(invalid(
                "readTime",
                "cannot specify both \"readTime\" and \"rate\", \"readTime\" is deprecated, \
                 please only specify \"rate\""
                    .into(),
            ));
        }
        let mut interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
        if interval.is_none() && !get("readTime").is_empty() {
            interval = parse_duration(get("readTime")).filter(|d| !d.is_zero());
        }
        let duration = |key: &str| match get(key) {
            "" => Ok(None),
            text => parse_duration(text)
                .map(Some)
                .ok_or_else(|| invalid(key, format!("{text:?} is not a duration"))),
        };
        let burst = match duration("burst.sleepTime")?.filter(|d| !d.is_zero()) {
            None => None,
            Some(sleep) => match duration("burst.generateTime")? {
                Some(generate) if !generate.is_zero() => Some((sleep, generate)),
                _ => {
                    return Err(invalid(
                        "burst.generateTime",
                        "\"burst.generateTime\" should be greater than 0".into(),
                    ))
                }
            },
        };
        let record_count = match get("recordCount") {
            "" => 0,
            text => text
                .parse::<i64>()
                .map_err(|_| invalid("recordCount", format!("{text:?} is not an integer")))?
                .max(0) as u64,
        };
        Ok(Self {
            collections,
            interval,
            next_at: None,
            burst,
            burst_until: None,
            record_count,
            count: 0,
            as_maps: false,
            rng: SmallRng::from_entropy(),
            times: TimeText::default(),
        })
    }

    /// Under `burst.*`: the end of the current burst, or `Err(())` when between bursts
    /// after waiting (at most [`IDLE_READ`]) for the next one. Cancel-safe (it only sleeps).
    async fn burst_window(&mut self) -> Result<Option<tokio::time::Instant>, ()> {
        let Some((sleep, generate)) = self.burst else {
            return Ok(None);
        };
        let now = tokio::time::Instant::now();
        let mut until = *self.burst_until.get_or_insert(now + generate);
        if now >= until {
            while until <= now {
                until += sleep + generate;
            }
            self.burst_until = Some(until);
        }
        if !idle_until(until - generate).await {
            return Err(());
        }
        Ok(Some(until))
    }

    fn record(&mut self) -> Record {
        self.count += 1;
        let collection = match self.collections.len() {
            1 => &self.collections[0],
            n => &self.collections[self.rng.gen_range(0..n)],
        };
        let rng = &mut self.rng;
        // One clock read per record: its time fields and its metadata say the same instant.
        let now = Now::read(&mut self.times, collection.has_time);
        let operation = collection.operations[rng.gen_range(0..collection.operations.len())];
        let payload = match operation {
            Operation::Create | Operation::Snapshot => Change {
                before: None,
                after: Some(collection.data(rng, self.as_maps, &now)),
            },
            Operation::Update => Change {
                before: Some(collection.data(rng, self.as_maps, &now)),
                after: Some(collection.data(rng, self.as_maps, &now)),
            },
            Operation::Delete => Change {
                before: Some(collection.data(rng, self.as_maps, &now)),
                after: None,
            },
        };
        // As Conduit's generator: made now (`opencdc.createdAt`); read now too (the engine
        // sets `opencdc.readAt` only where a source left it empty).
        let now = now.unix_nanos();
        // Room for what is added on the way: the source connector's id (the engine) and the
        // payload's schema subject and version (the SDK's schema extraction, on by default).
        let mut metadata = Metadata::with_capacity(6);
        metadata.insert(metadata::key(metadata::CREATED_AT), now.clone());
        metadata.insert(metadata::key(metadata::READ_AT), now);
        if !collection.name.is_empty() {
            metadata.insert(
                metadata::key(metadata::COLLECTION),
                collection.name.as_str(),
            );
        }
        Record {
            position: Position(self.count.to_string().into_bytes()),
            operation,
            metadata,
            key: Some(Data::Raw(Word::draw(rng).as_bytes().to_vec())),
            payload,
        }
    }
}

/// Sleep until `at`, but at most [`IDLE_READ`]: whether `at` has come.
async fn idle_until(at: tokio::time::Instant) -> bool {
    let cap = tokio::time::Instant::now() + IDLE_READ;
    tokio::time::sleep_until(at.min(cap)).await;
    at <= cap
}

/// The instant a record is made, read from the clock once for all its uses.
struct Now<'t> {
    at: chrono::DateTime<chrono::Utc>,
    /// As a time field's value: RFC 3339 in UTC, with as many fraction digits as it needs
    /// (empty unless asked for).
    rfc3339: &'t str,
}

impl<'t> Now<'t> {
    /// The clock now; its RFC 3339 text too if `as_text` (made in `times`).
    fn read(times: &'t mut TimeText, as_text: bool) -> Self {
        let at = chrono::Utc::now();
        let rfc3339 = if as_text { times.format(at) } else { "" };
        Self { at, rfc3339 }
    }

    /// As metadata's timestamps: nanoseconds since the Unix epoch, in decimal.
    fn unix_nanos(&self) -> MetaText {
        // Only an instant after 2262 has no nanosecond count in an i64.
        // itoa's digits, inline in the text (19 of them until 2286): a fifth of the
        // instructions of compact_str's own number formatting.
        MetaText::from(
            itoa::Buffer::new().format(self.at.timestamp_nanos_opt().unwrap_or_default()),
        )
    }
}

/// Instants as RFC 3339 text in UTC with as many fraction digits as they need (0, 3, 6 or
/// 9), byte for byte as chrono's `to_rfc3339_opts(SecondsFormat::AutoSi, true)` writes
/// them, but with chrono formatting the date and time of day only once per second: records
/// made in the same second share them, and only the fraction is written for each.
#[derive(Default)]
struct TimeText {
    /// The second (since the Unix epoch) `prefix` is for.
    second: Option<i64>,
    /// That second as `YYYY-MM-DDTHH:MM:SS` (chrono's text up to its fraction).
    prefix: String,
    /// The last instant's text.
    text: String,
}

impl TimeText {
    fn format(&mut self, at: chrono::DateTime<chrono::Utc>) -> &str {
        use chrono::SecondsFormat;
        let nanos = at.timestamp_subsec_nanos();
        if nanos >= 1_000_000_000 {
            // A leap second (never read from the clock): chrono's own text, not cached, as
            // it shares its timestamp with the second before it.
            self.text = at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            return &self.text;
        }
        let second = at.timestamp();
        if self.second != Some(second) {
            let whole = at.to_rfc3339_opts(SecondsFormat::Secs, true);
            self.prefix.clear();
            self.prefix
                .push_str(whole.strip_suffix('Z').unwrap_or(&whole));
            self.second = Some(second);
        }
        // chrono's AutoSi: no fraction for a whole second, else milli-, micro- or
        // nanoseconds, whichever is the first to hold it exactly.
        let (digits, value) = match nanos {
            0 => (0, 0),
            n if n % 1_000_000 == 0 => (3, n / 1_000_000),
            n if n % 1_000 == 0 => (6, n / 1_000),
            n => (9, n),
        };
        self.text.clear();
        self.text.push_str(&self.prefix);
        if digits > 0 {
            // Zero-padded to `digits`: the digits of 10^digits + value after its leading 1
            // (at most 1,999,999,999: a u32).
            let mut buffer = itoa::Buffer::new();
            let padded = buffer.format(10u32.pow(digits) + value);
            self.text.push('.');
            self.text.push_str(&padded[1..]);
        }
        self.text.push('Z');
        &self.text
    }
}

/// A random value of a field type: written as JSON text ([`Drawn`]) or made a JSON value
/// (for a map).
enum Random<'n> {
    Int(i32),
    Word(Word),
    Time(&'n str),
    Bool(bool),
    Duration(i64),
}

impl<'n> Random<'n> {
    fn draw(rng: &mut SmallRng, ty: FieldType, now: &Now<'n>) -> Self {
        match ty {
            FieldType::Int => Self::Int(rng.gen()),
            FieldType::String => Self::Word(Word::draw(rng)),
            FieldType::Time => Self::Time(now.rfc3339),
            FieldType::Bool => Self::Bool(rng.gen()),
            FieldType::Duration => Self::Duration(rng.gen_range(0..i64::MAX)),
        }
    }
}

impl serde::Serialize for Random<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(n) => serializer.serialize_i32(*n),
            Self::Word(word) => serializer.serialize_str(word.as_str()),
            Self::Time(time) => serializer.serialize_str(time),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Duration(d) => serializer.serialize_i64(*d),
        }
    }
}

impl From<Random<'_>> for serde_json::Value {
    fn from(random: Random<'_>) -> Self {
        match random {
            Random::Int(n) => n.into(),
            Random::Word(word) => word.as_str().into(),
            Random::Time(time) => time.into(),
            Random::Bool(b) => b.into(),
            Random::Duration(d) => d.into(),
        }
    }
}

/// A word of 2 to 4 two-letter syllables, held without a heap allocation.
struct Word {
    bytes: [u8; 8],
    len: usize,
}

impl Word {
    fn draw(rng: &mut SmallRng) -> Self {
        const SYLLABLES: [&[u8; 2]; 16] = [
            b"ka", b"lo", b"mi", b"nu", b"pe", b"ra", b"si", b"to", b"va", b"ze", b"bo", b"du",
            b"fi", b"go", b"he", b"ju",
        ];
        // One draw makes the whole word: four bits per syllable (16 syllables, uniform), and
        // the length from the top 32 bits (uniform over 2..=4 but for a bias of 2^-32).
        let bits = rng.gen::<u64>();
        let n = 2 + (bits >> 32) as usize % 3;
        let mut bytes = [0; 8];
        for i in 0..n {
            bytes[2 * i..2 * i + 2].copy_from_slice(SYLLABLES[(bits >> (4 * i)) as usize & 0xf]);
        }
        Self { bytes, len: 2 * n }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn as_str(&self) -> &str {
        // ASCII syllables only.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Source for GeneratorSource {
    async fn open(&mut self, position: Option<Position>) -> Result<(), PluginError> {
        self.count = match position {
            None => 0,
            Some(p) => std::str::from_utf8(&p.0)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| PluginError::InvalidPosition {
                    position: String::from_utf8_lossy(&p.0).into_owned(),
                    reason: "a generator position is a record count".into(),
                })?,
        };
        Ok(())
    }

    async fn read(&mut self, max: usize) -> Result<Vec<Record>, PluginError> {
        // Cancel-safety: records are made only after the last await, so a dropped read has
        // taken nothing; waits are bounded by IDLE_READ (an empty batch then).
        let mut wanted = max.max(1) as u64;
        if self.record_count > 0 {
            let left = self.record_count.saturating_sub(self.count);
            if left == 0 {
                // All made: nothing more, ever (the pipeline stays up until stopped).
                tokio::time::sleep(IDLE_READ).await;
                return Ok(Vec::new());
            }
            wanted = wanted.min(left);
        }
        let Ok(burst_until) = self.burst_window().await else {
            return Ok(Vec::new());
        };
        // The first record's turn (under the rate limit, if any).
        let now = tokio::time::Instant::now();
        let first_at = match self.interval {
            Some(_) => self.next_at.map_or(now, |at| at.max(now)),
            None => now,
        };
        if let Some(until) = burst_until.filter(|until| first_at >= *until) {
            // This burst is over before its turn: the next read waits for the next burst.
            idle_until(until).await;
            return Ok(Vec::new());
        }
        if first_at > now && !idle_until(first_at).await {
            return Ok(Vec::new());
        }
        let mut records = Vec::with_capacity(wanted as usize);
        // Without a rate limit or bursts every record's turn is now: no clock read per record.
        let paced = self.interval.is_some() || burst_until.is_some();
        while (records.len() as u64) < wanted {
            if paced {
                let now = tokio::time::Instant::now();
                // When the next record would be made (under the rate limit, if any).
                let at = match self.interval {
                    Some(_) => self.next_at.map_or(now, |at| at.max(now)),
                    None => now,
                };
                if at > now || burst_until.is_some_and(|until| at >= until) {
                    // Not its turn yet, or the burst is over: the next read waits.
                    break;
                }
                if let Some(interval) = self.interval {
                    // After an idle spell, do not burst to catch up.
                    let floor = now.checked_sub(interval).unwrap_or(now);
                    self.next_at = Some(at.max(floor) + interval);
                }
            }
            records.push(self.record());
        }
        Ok(records)
    }

    fn prepare(&mut self, context: Prepare) {
        self.as_maps = context.records_processed;
    }

    async fn ack(&mut self, _position: Position) -> Result<(), PluginError> {
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use culvert_plugins::spec;
    use proptest::prelude::*;

    /// Instants over four centuries with every kind of fraction: none, whole milli- and
    /// microseconds, any nanoseconds.
    fn instant() -> impl Strategy<Value = chrono::DateTime<chrono::Utc>> {
        let fraction = prop_oneof![
            Just(0u32),
            (0u32..1_000).prop_map(|n| n * 1_000_000),
            (0u32..1_000_000).prop_map(|n| n * 1_000),
            0u32..1_000_000_000,
        ];
        (-5_000_000_000i64..8_000_000_000, fraction).prop_map(|(second, nanos)| {
            chrono::DateTime::from_timestamp(second, nanos).expect("in range")
        })
    }

    proptest! {
        /// The per-second text gives chrono's bytes, whether the second is new or the last
        /// one again (a later instant in it, or the very same).
        #[test]
        fn time_text_is_chronos(
            first in instant(),
            later in 0u32..1_000_000_000,
            next in instant(),
        ) {
            let chrono = |at: chrono::DateTime<chrono::Utc>| {
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            };
            let same_second = chrono::DateTime::from_timestamp(first.timestamp(), later)
                .expect("in range");
            let mut times = TimeText::default();
            for at in [first, same_second, first, next] {
                let want = chrono(at);
                prop_assert_eq!(times.format(at), want.as_str());
            }
        }
    }

    #[test]
    fn time_text_of_a_leap_second_is_chronos() {
        use chrono::{NaiveDate, TimeZone as _};
        let leap = chrono::Utc.from_utc_datetime(
            &NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
                .expect("a leap second"),
        );
        let before = chrono::DateTime::from_timestamp(leap.timestamp(), 250_000_000).unwrap();
        let mut times = TimeText::default();
        assert_eq!(times.format(before), "2016-12-31T23:59:59.250Z");
        assert_eq!(times.format(leap), "2016-12-31T23:59:60.500Z");
        assert_eq!(times.format(before), "2016-12-31T23:59:59.250Z");
    }

    fn source(pairs: &[(&str, &str)]) -> Result<Box<dyn Source>, PluginError> {
        let plugin = Generator::new();
        let settings: Settings = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let settings = spec::validate(plugin.spec.source.as_ref().unwrap(), &settings)?;
        plugin.new_source(&settings)
    }

    /// Structured payloads are JSON text unless processors will read them; either way they
    /// are the same data of the same shape.
    #[tokio::test]
    async fn structured_payloads_are_text_unless_processors_read_them() {
        let settings = [
            ("format.type", "structured"),
            ("format.options.zeta", "int"),
            ("format.options.alpha", "string"),
            ("format.options.at", "time"),
            ("format.options.ok", "bool"),
            ("format.options.wait", "duration"),
            ("recordCount", "50"),
        ];
        for processed in [false, true] {
            let mut s = source(&settings).unwrap();
            s.prepare(Prepare {
                records_processed: processed,
                ..Prepare::default()
            });
            s.open(None).await.unwrap();
            for r in s.read(50).await.unwrap() {
                let Some(Data::Structured(after)) = &r.payload.after else {
                    panic!("structured payload expected: {r:?}");
                };
                assert_eq!(after.json_text().is_none(), processed);
                let keys: Vec<&str> = after.keys().map(String::as_str).collect();
                assert_eq!(keys, ["alpha", "at", "ok", "wait", "zeta"]);
                assert!(after["alpha"].is_string() && after["at"].is_string());
                assert!(after["ok"].is_boolean() && after["zeta"].is_i64());
                assert!(after["wait"].as_i64().is_some_and(|d| d >= 0));
                let word = after["alpha"].as_str().unwrap();
                assert!((4..=8).contains(&word.len()), "{word}");
                // Written the same either way (text is canonical; debug builds check it).
                let json = serde_json::to_string(after).unwrap();
                assert_eq!(json, serde_json::to_string(after.as_map()).unwrap());
                // One instant per record: its time field is when metadata says it was made.
                let at = chrono::DateTime::parse_from_rfc3339(after["at"].as_str().unwrap())
                    .unwrap()
                    .timestamp_nanos_opt()
                    .unwrap()
                    .to_string();
                assert_eq!(
                    Some(at.as_str()),
                    r.metadata.get(metadata::CREATED_AT),
                    "{r:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn makes_structured_records_up_to_the_count_and_resumes() {
        let mut s = source(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("format.options.name", "string"),
            ("recordCount", "5"),
        ])
        .unwrap();
        s.open(None).await.unwrap();
        let batch = s.read(3).await.unwrap();
        assert_eq!(batch.len(), 3);
        let r = &batch[2];
        assert_eq!(r.position, Position(b"3".to_vec()));
        assert_eq!(r.operation, Operation::Create);
        let Some(Data::Structured(after)) = &r.payload.after else {
            panic!("structured payload expected: {r:?}");
        };
        assert!(
            after["id"].is_i64() && after["name"].is_string(),
            "{after:?}"
        );
        assert!(matches!(r.key, Some(Data::Raw(_))));
        assert_eq!(s.read(10).await.unwrap().len(), 2, "only the count is made");
        // Further reads find nothing, ever.
        assert!(s.read(1).await.unwrap().is_empty());

        let mut again = source(&[
            ("format.type", "raw"),
            ("format.options.id", "int"),
            ("recordCount", "5"),
            ("operations", "update,delete"),
        ])
        .unwrap();
        again.open(Some(Position(b"4".to_vec()))).await.unwrap();
        let rest = again.read(10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].position, Position(b"5".to_vec()));
        assert!(matches!(
            rest[0].operation,
            Operation::Update | Operation::Delete
        ));
        assert!(matches!(rest[0].payload.before, Some(Data::Raw(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_records() {
        let mut s = source(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("rate", "10"),
        ])
        .unwrap();
        s.open(None).await.unwrap();
        let start = tokio::time::Instant::now();
        let mut n = 0;
        while n < 21 {
            n += s.read(100).await.unwrap().len();
        }
        // 21 records at 10/s: the first at once, the 21st two seconds later.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let error = |pairs: &[(&str, &str)]| source(pairs).err().expect("refused").to_string();
        assert!(error(&[("format.type", "csv")]).contains("\"format.type\""));
        assert!(error(&[("format.type", "structured")]).contains("format.options"));
        assert!(
            error(&[("format.type", "structured"), ("format.options.id", "uuid")])
                .contains("\"format.options.id\": unknown field type")
        );
        assert!(error(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("operations", "create,upsert")
        ])
        .contains("\"operations\""));
        assert!(error(&[("format.type", "file")]).contains("format.options.path"));
        assert!(error(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("burst.sleepTime", "1s"),
            ("burst.generateTime", "0s")
        ])
        .contains("\"burst.generateTime\" should be greater than 0"));
        assert!(error(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("rate", "5"),
            ("readTime", "1s")
        ])
        .contains("cannot specify both"));
        assert!(error(&[("operations", "create")]).contains("at least one collection"));
        assert!(error(&[
            ("collections.users.format.type", "structured"),
            ("collections.users.format.options.id", "uuid")
        ])
        .contains("\"collections.users.format.options.id\": unknown field type"));
        assert!(error(&[("collections.users.format.options.id", "int")])
            .contains("\"collections.users.format.type\""));
        assert!(error(&[
            ("collections.users.format.type", "raw"),
            ("collections.users.format.options.id", "int"),
            ("collections.users.operations", "merge")
        ])
        .contains("\"collections.users.operations\""));
    }

    #[tokio::test]
    async fn collections_have_their_own_format_and_operations() {
        let mut s = source(&[
            ("format.type", "structured"),
            ("format.options.id", "int"),
            ("collections.users.format.type", "structured"),
            ("collections.users.format.options.name", "string"),
            ("collections.users.operations", "update"),
            ("collections.orders.format.type", "raw"),
            ("collections.orders.format.options.total", "int"),
            ("collections.orders.operations", "delete,snapshot"),
        ])
        .unwrap();
        s.open(None).await.unwrap();
        let records = s.read(600).await.unwrap();
        let mut seen = std::collections::BTreeMap::new();
        for r in &records {
            let collection = r.metadata.get(metadata::COLLECTION);
            *seen.entry(collection).or_insert(0) += 1;
            match collection {
                None => {
                    assert_eq!(r.operation, Operation::Create);
                    assert!(
                        matches!(&r.payload.after, Some(Data::Structured(m)) if m.contains_key("id"))
                    );
                }
                Some("users") => {
                    assert_eq!(r.operation, Operation::Update);
                    assert!(
                        matches!(&r.payload.after, Some(Data::Structured(m)) if m.contains_key("name"))
                    );
                    assert!(r.payload.before.is_some());
                }
                Some("orders") => {
                    assert!(matches!(
                        r.operation,
                        Operation::Delete | Operation::Snapshot
                    ));
                    let side = r.payload.after.as_ref().or(r.payload.before.as_ref());
                    assert!(
                        matches!(side, Some(Data::Raw(bytes)) if bytes.starts_with(b"{\"total\":"))
                    );
                }
                Some(other) => panic!("unknown collection {other}"),
            }
        }
        assert_eq!(seen.len(), 3, "every collection is drawn from: {seen:?}");
        let positions: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8(r.position.0.clone()).unwrap())
            .collect();
        assert_eq!(positions[599], "600", "one count across collections");
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_alternate_generating_and_sleeping() {
        let mut s = source(&[
            ("format.type", "raw"),
            ("format.options.id", "int"),
            ("rate", "10"),
            ("burst.sleepTime", "3s"),
            ("burst.generateTime", "1s"),
        ])
        .unwrap();
        s.open(None).await.unwrap();
        let start = tokio::time::Instant::now();
        // At 10/s a 1 s burst makes 10 records, then 3 s of sleep: records 11-20 come in
        // the second burst, from 4 s to 5 s.
        let mut times = Vec::new();
        while times.len() < 20 {
            for _ in s.read(100).await.unwrap() {
                times.push(start.elapsed());
            }
        }
        assert!(
            times[..10].iter().all(|t| *t < Duration::from_secs(1)),
            "{times:?}"
        );
        assert!(
            times[10..]
                .iter()
                .all(|t| *t >= Duration::from_secs(4) && *t < Duration::from_secs(5)),
            "{times:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn reads_are_cancel_safe() {
        use culvert_plugins::testing::{check_cancel_safety, CancelSafety};
        let count = 20_000;
        let expected: Vec<Vec<u8>> = (1..=count).map(|n| n.to_string().into_bytes()).collect();
        // Under a rate limit and bursts every read waits, so the harness has await points
        // at which to drop it.
        for settings in [
            vec![("rate", "100000")],
            vec![
                ("rate", "100000"),
                ("burst.sleepTime", "20ms"),
                ("burst.generateTime", "30ms"),
            ],
        ] {
            let mut settings = settings;
            let count = count.to_string();
            settings.extend([
                ("format.type", "raw"),
                ("format.options.id", "int"),
                ("recordCount", count.as_str()),
            ]);
            let report = check_cancel_safety(
                || source(&settings).unwrap(),
                &expected,
                |r| r.position.0.clone(),
                &CancelSafety::default(),
            )
            .await
            .unwrap_or_else(|violation| panic!("{settings:?}: {violation}"));
            assert!(report.cancelled >= 2_000, "{settings:?}: {report:?}");
        }
    }
}
