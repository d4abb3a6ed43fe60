//! YAML documents as trees that remember where each node was written, so that every
//! problem in a configuration file can name its line and column. Merge keys (`<<: *anchor`,
//! YAML 1.1, which Conduit's YAML decoder applies) are resolved as the tree is built.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where something is in a file (1-based line and column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1.
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A YAML value and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it starts.
    pub at: Location,
}

/// The kinds of YAML value the configuration format uses.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar as written (plain, quoted or block); `quoted` if it was in quotes or a
    /// block, i.e. certainly a string.
    Scalar {
        /// The text.
        text: String,
        /// Whether it was quoted.
        quoted: bool,
    },
    /// A mapping, in the order written (keys are scalars).
    Map(Vec<(Node, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
}

impl Node {
    /// Whether this is an explicit or implicit null (`~`, `null`, empty).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if text.is_empty() || text == "~" || text.eq_ignore_ascii_case("null"))
    }

    /// A short name of the node's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a sequence",
        }
    }
}

/// A YAML syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub at: Location,
    /// What.
    pub message: String,
}

/// Every document of a YAML stream, and the syntax error that ended it early, if any (the
/// documents before the error are kept).
pub fn parse(text: &str) -> (Vec<Node>, Option<SyntaxError>) {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    let error = parser.load(&mut builder, true).err().map(|e| {
        let marker = e.marker();
        SyntaxError {
            at: location(marker),
            message: e.info().to_owned(),
        }
    });
    let mut documents = builder.documents;
    if error.is_some() && builder.in_document {
        // The document being built when the error struck is incomplete: drop it.
        documents.truncate(builder.before_document);
    }
    // A bad merge key fails its document as a syntax error does (Conduit's decoder refuses
    // the document); the documents before it are kept.
    match (builder.merge_error, error) {
        (Some((kept, merge)), error) if error.as_ref().is_none_or(|e| merge.at < e.at) => {
            documents.truncate(kept);
            (documents, Some(merge))
        }
        (_, error) => (documents, error),
    }
}

/// Whether `key` is the merge key: a plain (unquoted) `<<`.
fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar { text, quoted: false } if text == "<<")
}

/// The text of a scalar key (`None` for a collection used as a key).
fn key_text(key: &Node) -> Option<&str> {
    match &key.value {
        Value::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

/// Replaces each merge key of a mapping by the entries of the mapping (or mappings, for a
/// sequence) it names, where the merge key was written. A key written in the mapping itself
/// wins over a merged one, and an earlier merged mapping wins over a later one (YAML 1.1's
/// merge type, as Conduit's decoder applies it).
fn resolve_merges(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, SyntaxError> {
    if !entries.iter().any(|(key, _)| is_merge_key(key)) {
        return Ok(entries);
    }
    let mut taken: std::collections::HashSet<String> = entries
        .iter()
        .filter(|(key, _)| !is_merge_key(key))
        .filter_map(|(key, _)| key_text(key).map(str::to_owned))
        .collect();
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if !is_merge_key(&key) {
            out.push((key, value));
            continue;
        }
        let sources = match value.value {
            Value::Map(merged) => vec![merged],
            Value::Seq(items) => items
                .into_iter()
                .map(|item| match item.value {
                    Value::Map(merged) => Ok(merged),
                    other => Err(SyntaxError {
                        at: item.at,
                        message: format!(
                            "a merge key (<<) takes a mapping or a sequence of mappings, \
                             found {} in the sequence",
                            Node {
                                value: other,
                                at: item.at
                            }
                            .kind()
                        ),
                    }),
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(SyntaxError {
                    at: value.at,
                    message: format!(
                        "a merge key (<<) takes a mapping or a sequence of mappings, found {}",
                        Node {
                            value: other,
                            at: value.at
                        }
                        .kind()
                    ),
                })
            }
        };
        for (merged_key, merged_value) in sources.into_iter().flatten() {
            let fresh = key_text(&merged_key).is_none_or(|text| taken.insert(text.to_owned()));
            if fresh {
                out.push((merged_key, merged_value));
            }
        }
    }
    Ok(out)
}

fn location(marker: &Marker) -> Location {
    Location {
        line: marker.line(),
        column: marker.col() + 1,
    }
}

/// Builds trees from the parser's events.
#[derive(Default)]
struct Builder {
    documents: Vec<Node>,
    /// Open collections: the node and, for mappings, a key waiting for its value.
    stack: Vec<(Node, Option<Node>, usize)>,
    anchors: HashMap<usize, Node>,
    in_document: bool,
    /// How many documents were complete when the current one started.
    before_document: usize,
    /// The first bad merge key, and how many documents were complete before its own.
    merge_error: Option<(usize, SyntaxError)>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                self.documents.push(node);
            }
            Some((parent, pending_key, _)) => match &mut parent.value {
                Value::Seq(items) => items.push(node),
                Value::Map(entries) => match pending_key.take() {
                    None => {
                        // A block mapping's start event is marked after its first key:
                        // the mapping starts where that key does.
                        if entries.is_empty() && node.at < parent.at {
                            parent.at = node.at;
                        }
                        *pending_key = Some(node);
                    }
                    Some(key) => entries.push((key, node)),
                },
                Value::Scalar { .. } => unreachable!("only collections are pushed"),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        let at = location(&marker);
        match event {
            Event::DocumentStart => {
                self.in_document = true;
                self.before_document = self.documents.len();
            }
            Event::DocumentEnd => self.in_document = false,
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain)
                    || matches!(&tag, Some(Tag { suffix, .. }) if suffix == "str");
                self.push_value(
                    Node {
                        value: Value::Scalar { text, quoted },
                        at,
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    value: Value::Seq(vec![]),
                    at,
                },
                None,
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Node {
                    value: Value::Map(vec![]),
                    at,
                },
                None,
                anchor,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((mut node, _, anchor)) = self.stack.pop() {
                    if let Value::Map(entries) = &mut node.value {
                        match resolve_merges(std::mem::take(entries)) {
                            Ok(merged) => *entries = merged,
                            Err(error) => {
                                if self.merge_error.is_none() {
                                    self.merge_error = Some((self.before_document, error));
                                }
                            }
                        }
                    }
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    value: Value::Scalar {
                        text: String::new(),
                        quoted: false,
                    },
                    at,
                });
                self.push_value(Node { at, ..node }, 0);
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(node: &Node) -> &str {
        match &node.value {
            Value::Scalar { text, .. } => text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn nodes_know_where_they_are() {
        let (docs, error) =
            parse("version: \"2.2\"\npipelines:\n  - id: one\n    status: running\n");
        assert_eq!(error, None);
        assert_eq!(docs.len(), 1);
        let Value::Map(entries) = &docs[0].value else {
            panic!()
        };
        assert_eq!(scalar(&entries[0].0), "version");
        assert!(matches!(
            &entries[0].1.value,
            Value::Scalar { quoted: true, .. }
        ));
        assert_eq!(
            entries[0].1.at,
            Location {
                line: 1,
                column: 10
            }
        );
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        let Value::Map(pipeline) = &items[0].value else {
            panic!()
        };
        assert_eq!(pipeline[1].0.at, Location { line: 4, column: 5 });
        assert_eq!(scalar(&pipeline[1].1), "running");
    }

    #[test]
    fn several_documents_and_a_syntax_error_keeps_the_good_ones() {
        let (docs, error) = parse("a: 1\n---\nb: 2\n---\nc: [1, 2\n");
        assert_eq!(docs.len(), 2);
        let error = error.expect("a syntax error");
        assert_eq!(error.at.line, 6, "{error:?}");
    }

    fn entries(node: &Node) -> Vec<(String, String)> {
        let Value::Map(entries) = &node.value else {
            panic!("not a mapping: {node:?}")
        };
        entries
            .iter()
            .map(|(k, v)| {
                let value = match &v.value {
                    Value::Scalar { text, .. } => text.clone(),
                    other => format!("{other:?}"),
                };
                (scalar(k).to_owned(), value)
            })
            .collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn merge_keys_bring_in_the_anchored_entries_and_written_keys_win() {
        let (docs, error) = parse(
            "base: &b {level: warn, message: hi}\n\
             more: &m {level: error, extra: x}\n\
             one: {a: 1, <<: *b, message: mine}\n\
             two: {<<: [*b, *m], z: 2}\n\
             nested:\n  - <<: *b\n    id: n\n",
        );
        assert_eq!(error, None);
        let Value::Map(top) = &docs[0].value else {
            panic!()
        };
        assert_eq!(
            entries(&top[2].1),
            pairs(&[("a", "1"), ("level", "warn"), ("message", "mine")])
        );
        // Earlier mappings of the sequence win over later ones.
        assert_eq!(
            entries(&top[3].1),
            pairs(&[
                ("level", "warn"),
                ("message", "hi"),
                ("extra", "x"),
                ("z", "2")
            ])
        );
        let Value::Seq(items) = &top[4].1.value else {
            panic!()
        };
        assert_eq!(
            entries(&items[0]),
            pairs(&[("level", "warn"), ("message", "hi"), ("id", "n")])
        );
    }

    #[test]
    fn a_quoted_merge_key_is_an_ordinary_key() {
        let (docs, error) = parse("base: &b {x: 1}\none: {\"<<\": *b}\n");
        assert_eq!(error, None);
        let Value::Map(top) = &docs[0].value else {
            panic!()
        };
        let Value::Map(one) = &top[1].1.value else {
            panic!()
        };
        assert_eq!(scalar(&one[0].0), "<<");
    }

    #[test]
    fn a_merge_key_on_a_scalar_fails_its_document_only() {
        let (docs, error) = parse("a: 1\n---\nb: {<<: nope}\n---\nc: 3\n");
        let error = error.expect("a bad merge");
        assert_eq!(error.at.line, 3, "{error:?}");
        assert!(error.message.contains("merge key"), "{error:?}");
        assert_eq!(docs.len(), 1, "the document before it is kept: {docs:?}");
        let (_, error) = parse("b: {<<: [{x: 1}, [2]]}\n");
        assert!(error
            .expect("a bad merge")
            .message
            .contains("in the sequence"));
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let (docs, _) = parse("base: &s {a: x}\nother: *s\n");
        let Value::Map(entries) = &docs[0].value else {
            panic!()
        };
        assert_eq!(entries[0].1.value, entries[1].1.value);
        assert_eq!(entries[1].1.at.line, 2);
    }
}
