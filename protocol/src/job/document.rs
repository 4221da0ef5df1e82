//! A job file as a tree of values that remember where they were written.
//!
//! serde's YAML and JSON readers forget positions once a value is decoded and
//! match keys by exact spelling. Job files need both: Bacalhau matches keys in
//! any case, and a user who typed a wrong field deserves its line and column.
//! So the file is read into this small tree first (YAML 1.2, which also reads
//! JSON), and [`super::decode`] walks it.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{JobError, JobErrors, Location};

/// Deepest nesting accepted; job files are a handful of levels deep, and a
/// bound keeps hostile input from exhausting the stack.
const MAX_DEPTH: usize = 64;

/// One value of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub value: Value,
    pub at: Location,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A scalar as written; `quoted` scalars are always strings.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order (duplicates are the decoder's to report).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Reads one YAML or JSON document.
    pub(crate) fn parse(text: &str) -> Result<Node, JobErrors> {
        let mut parser = Parser::new_from_str(text);
        let mut builder = Builder::default();
        loop {
            let (event, mark) = parser.next_token().map_err(|e| {
                let at = location(*e.marker());
                syntax_error(at, e.info())
            })?;
            match builder.push(event, mark)? {
                Step::More => {}
                Step::Done => break,
            }
        }
        builder.root.ok_or_else(|| {
            JobErrors(vec![JobError {
                path: String::new(),
                location: None,
                message: "the file is empty: write a job, e.g. see examples/ in the skrei \
                          repository"
                    .into(),
            }])
        })
    }

    /// A short name for the kind of value, for "expected X, found Y" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { text, quoted } => {
                if !quoted && is_null(text) {
                    "nothing (null)"
                } else {
                    "a single value"
                }
            }
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// YAML 1.2 core schema nulls; only plain (unquoted) scalars can be null.
pub(crate) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn location(m: Marker) -> Location {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

fn syntax_error(at: Location, info: &str) -> JobErrors {
    JobErrors(vec![JobError {
        path: String::new(),
        location: Some(at),
        message: format!("the file is not valid YAML or JSON: {info}"),
    }])
}

enum Step {
    More,
    Done,
}

/// Collections under construction, innermost last.
enum Open {
    Seq(Node),
    /// A mapping and the key waiting for its value.
    Map(Node, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    root: Option<Node>,
    documents: usize,
}

impl Builder {
    fn push(&mut self, event: Event, mark: Marker) -> Result<Step, JobErrors> {
        let at = location(mark);
        let is_seq = matches!(event, Event::SequenceStart(..));
        match event {
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::StreamEnd => return Ok(Step::Done),
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(one(
                        at,
                        "the file holds more than one YAML document (`---`): put one job in a file",
                    ));
                }
            }
            Event::Alias(_) => {
                return Err(one(
                    at,
                    "YAML aliases (`*name`) are not supported in job files: write the value out",
                ));
            }
            Event::Scalar(text, style, _anchor, tag) => {
                if let Some(tag) = tag {
                    return Err(tag_error(at, &tag.handle, &tag.suffix));
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.add(Node {
                    value: Value::Scalar { text, quoted },
                    at,
                })?;
            }
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) => {
                if let Some(tag) = tag {
                    return Err(tag_error(at, &tag.handle, &tag.suffix));
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(one(
                        at,
                        &format!("values are nested more than {MAX_DEPTH} levels deep"),
                    ));
                }
                let open = if is_seq {
                    Open::Seq(Node {
                        value: Value::Seq(Vec::new()),
                        at,
                    })
                } else {
                    Open::Map(
                        Node {
                            value: Value::Map(Vec::new()),
                            at,
                        },
                        None,
                    )
                };
                self.stack.push(open);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Open::Seq(n)) | Some(Open::Map(n, None)) => n,
                    // The parser never ends a mapping between a key and its value.
                    Some(Open::Map(n, Some(_))) => n,
                    None => return Err(one(at, "unbalanced collection end")),
                };
                self.add(node)?;
            }
        }
        Ok(Step::More)
    }

    /// Places a finished value into its parent, or makes it the root.
    fn add(&mut self, node: Node) -> Result<(), JobErrors> {
        match self.stack.last_mut() {
            None => {
                if self.root.is_some() {
                    return Err(one(node.at, "more than one value at the top of the file"));
                }
                self.root = Some(node);
            }
            Some(Open::Seq(seq)) => {
                if let Value::Seq(items) = &mut seq.value {
                    // The parser marks the start of a block collection late;
                    // its first item is where a reader looks for it.
                    if items.is_empty() {
                        seq.at = node.at;
                    }
                    items.push(node);
                }
            }
            Some(Open::Map(map, pending)) => match pending.take() {
                None => {
                    if !matches!(node.value, Value::Scalar { .. }) {
                        return Err(one(
                            node.at,
                            "a mapping key must be a name, not a list or mapping",
                        ));
                    }
                    if matches!(&map.value, Value::Map(e) if e.is_empty()) {
                        map.at = node.at;
                    }
                    *pending = Some(node);
                }
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        entries.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

fn one(at: Location, message: &str) -> JobErrors {
    JobErrors(vec![JobError {
        path: String::new(),
        location: Some(at),
        message: message.to_string(),
    }])
}

fn tag_error(at: Location, handle: &str, suffix: &str) -> JobErrors {
    one(
        at,
        &format!("YAML tags (`{handle}{suffix}`) are not supported in job files: remove the tag"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> &str {
        match &n.value {
            Value::Scalar { text, .. } => text,
            _ => panic!("not a scalar: {n:?}"),
        }
    }

    #[test]
    fn positions_are_one_based() {
        let doc = Node::parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!()
        };
        assert_eq!(scalar(&entries[0].0), "a");
        assert_eq!(entries[0].0.at, Location { line: 1, column: 1 });
        assert_eq!(entries[0].1.at, Location { line: 1, column: 4 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(items[1].at, Location { line: 4, column: 5 });
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn json_reads_too() {
        let doc = Node::parse("{\"a\": [1, \"b\"],\n \"c\": null}").unwrap();
        let Value::Map(entries) = &doc.value else {
            panic!()
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].0.at.line, 2);
    }

    #[test]
    fn refusals() {
        for (text, needle) in [
            ("a: &x 1\nb: *x\n", "aliases"),
            ("a: !!str 1\n", "tags"),
            ("a: 1\n---\nb: 2\n", "more than one YAML document"),
            ("a: [1, 2\n", "not valid YAML"),
            ("", "empty"),
            ("? [a]\n: 1\n", "mapping key"),
        ] {
            let err = Node::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let text = "[".repeat(10_000);
        let err = Node::parse(&text).unwrap_err().to_string();
        assert!(err.contains("nested") || err.contains("not valid"), "{err}");
    }
}
