//! A reader of the Prometheus text exposition format (and OpenMetrics text, which the
//! server's `/metrics` speaks): the samples, each with its name, labels and value.
//! Comments (`# HELP`, `# TYPE`, `# EOF`) and blank lines are skipped; a timestamp or an
//! exemplar after the value is ignored. Enough for `culvert top`, which reads its own
//! server's document; a line it cannot read is an error naming the line.

use std::collections::BTreeMap;

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name, with its suffix (`_count`, `_sum`, `_bucket`, `_total`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, or `""`.
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// Every sample of a document, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(i, line)| {
            parse_sample(line).map_err(|problem| format!("line {}: {problem}: {line:?}", i + 1))
        })
        .collect()
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .ok_or("no value")?;
    let (name, mut rest) = line.split_at(end);
    if !valid_name(name) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = parse_labels(body, &mut labels)?;
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The labels of `body` (what follows `{`); returns what follows the closing `}`.
fn parse_labels<'a>(
    body: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    let mut rest = body.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("a label without a value")?;
        let key = rest[..eq].trim();
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let quoted = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value without quotes")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let after = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break &quoted[i + 1..],
                (_, '\\') => match chars.next().ok_or("an unterminated escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_with_labels_and_skips_comments() {
        let text = "# HELP conduit_pipelines Pipelines by status.\n\
            # TYPE conduit_pipelines gauge\n\
            conduit_pipelines{status=\"running\"} 2\n\
            \n\
            conduit_connector_bytes_count{pipeline_name=\"a \\\"b\\\"\\\\c\\nd\",plugin=\"builtin:file\",type=\"destination\",component_id=\"out\"} 5000\n\
            conduit_connector_bytes_sum{pipeline_name=\"demo\"} 1.5e3 1700000000\n\
            conduit_connector_bytes_bucket{le=\"+Inf\",pipeline_name=\"demo\",} +Inf\n\
            process_cpu_seconds_total 0.25 # {trace_id=\"x\"} 1\n\
            # EOF\n";
        let samples = parse(text).unwrap();
        assert_eq!(samples.len(), 5);
        assert_eq!(samples[0].name, "conduit_pipelines");
        assert_eq!(samples[0].label("status"), "running");
        assert_eq!(samples[0].value, 2.0);
        assert_eq!(samples[1].label("pipeline_name"), "a \"b\"\\c\nd");
        assert_eq!(samples[1].label("component_id"), "out");
        assert_eq!(samples[1].value, 5000.0);
        assert_eq!(samples[2].value, 1500.0);
        assert_eq!(samples[3].label("le"), "+Inf");
        assert_eq!(samples[3].value, f64::INFINITY);
        assert_eq!(samples[4].name, "process_cpu_seconds_total");
        assert!(samples[4].labels.is_empty());
        assert_eq!(samples[4].label("missing"), "");
    }

    #[test]
    fn names_the_line_it_cannot_read() {
        for (text, problem) in [
            ("ok 1\nbroken\n", "line 2: no value"),
            ("m{a=\"x} 1\n", "line 1: an unterminated label value"),
            ("m{a=x} 1\n", "line 1: a label value without quotes"),
            ("m{1a=\"x\"} 1\n", "line 1: bad label name"),
            ("m{a=\"\\t\"} 1\n", "line 1: bad escape"),
            ("m one\n", "line 1: bad value"),
            ("9m 1\n", "line 1: bad metric name"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(problem), "{text:?}: {error}");
        }
    }
}
