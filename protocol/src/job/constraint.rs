//! Node labels and job Constraints (Bacalhau's node selection): an
//! operator labels its node (`skrei node --label region=eu`), a job lists
//! Constraints on those labels, and a node bids only when every Constraint
//! holds of its own labels. Operators as Bacalhau writes them: `=`/`==`,
//! `!=`, `exists`, `!` (does not exist), `in`, `notin`, `gt`, `lt`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Most Constraints one job may list.
pub const MAX_CONSTRAINTS: usize = 32;
/// Most values one Constraint may list.
pub const MAX_CONSTRAINT_VALUES: usize = 32;
/// Most labels one node may carry.
pub const MAX_NODE_LABELS: usize = 64;
/// Longest label key or value, in characters.
pub const MAX_LABEL_CHARS: usize = 128;

/// How a Constraint compares a node's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    /// The label has exactly the value (`=`, also written `==`).
    #[serde(rename = "=")]
    Equals,
    /// The label is missing or has another value (`!=`).
    #[serde(rename = "!=")]
    NotEquals,
    /// The node has the label, whatever its value (`exists`).
    #[serde(rename = "exists")]
    Exists,
    /// The node does not have the label (`!`).
    #[serde(rename = "!")]
    DoesNotExist,
    /// The label has one of the values (`in`).
    #[serde(rename = "in")]
    In,
    /// The label is missing or has none of the values (`notin`).
    #[serde(rename = "notin")]
    NotIn,
    /// The label is an integer greater than the value (`gt`).
    #[serde(rename = "gt")]
    GreaterThan,
    /// The label is an integer less than the value (`lt`).
    #[serde(rename = "lt")]
    LessThan,
}

impl Operator {
    /// Reads an operator as a job file writes it; `None` for anything else.
    pub fn parse(text: &str) -> Option<Operator> {
        Some(match text.to_ascii_lowercase().as_str() {
            "=" | "==" => Operator::Equals,
            "!=" => Operator::NotEquals,
            "exists" => Operator::Exists,
            "!" => Operator::DoesNotExist,
            "in" => Operator::In,
            "notin" => Operator::NotIn,
            "gt" => Operator::GreaterThan,
            "lt" => Operator::LessThan,
            _ => return None,
        })
    }
}

/// One Constraint of a job on the labels of the nodes that may run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Constraint {
    /// The label.
    pub key: String,
    /// How it is compared.
    pub operator: Operator,
    /// What it is compared with: one for `=`, `!=`, `gt` and `lt`, none
    /// for `exists` and `!`, at least one for `in` and `notin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl Constraint {
    /// Whether the Constraint holds of a node with `labels`.
    pub fn holds(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = labels.get(&self.key);
        let first = self.values.first();
        let number = |s: &str| s.trim().parse::<i64>().ok();
        match self.operator {
            Operator::Equals => label.is_some() && label == first,
            Operator::NotEquals => label != first,
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::In => label.is_some_and(|l| self.values.contains(l)),
            Operator::NotIn => label.is_none_or(|l| !self.values.contains(l)),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) =
                    (label.and_then(|l| number(l)), first.and_then(|f| number(f)))
                else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }

    /// Checks the key, the values and their number for the operator.
    pub fn check(&self) -> Result<(), String> {
        check_label_key(&self.key)?;
        let n = self.values.len();
        let ok = match self.operator {
            Operator::Exists | Operator::DoesNotExist => n == 0,
            Operator::In | Operator::NotIn => (1..=MAX_CONSTRAINT_VALUES).contains(&n),
            _ => n == 1,
        };
        if !ok {
            let want = match self.operator {
                Operator::Exists | Operator::DoesNotExist => "no Values".to_owned(),
                Operator::In | Operator::NotIn => {
                    format!("1 to {MAX_CONSTRAINT_VALUES} Values")
                }
                _ => "exactly one value in Values".to_owned(),
            };
            return Err(format!("`{self}` takes {want}"));
        }
        for value in &self.values {
            check_label_value(value)?;
        }
        if matches!(self.operator, Operator::GreaterThan | Operator::LessThan)
            && self.values[0].trim().parse::<i64>().is_err()
        {
            return Err(format!("`{self}` compares integers: give a whole number"));
        }
        Ok(())
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map_or("", String::as_str);
        match self.operator {
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::Exists => write!(f, "{key} exists"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(", ")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(", ")),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
        }
    }
}

/// A label key: 1 to [`MAX_LABEL_CHARS`] letters, digits, `.`, `_`, `-`
/// and `/`, starting with a letter or digit (`region`, `example.com/tier`).
pub fn check_label_key(key: &str) -> Result<(), String> {
    let ok = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && key.chars().count() <= MAX_LABEL_CHARS
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{key}` is not a label key: use letters, digits, `.`, `_`, `-` and `/` \
             (at most {MAX_LABEL_CHARS}), e.g. `region`"
        ))
    }
}

/// A label value: at most [`MAX_LABEL_CHARS`] characters, no control
/// characters, no `,` (which separates labels on the command line).
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_LABEL_CHARS || value.chars().any(|c| c.is_control() || c == ',')
    {
        return Err(format!(
            "`{}` is not a label value: at most {MAX_LABEL_CHARS} characters, no commas or \
             control characters",
            value.escape_debug()
        ));
    }
    Ok(())
}

/// Reads a selector as `bacalhau docker run -s/--constraints` takes it:
/// requirements separated by commas, each `key=value`, `key==value`,
/// `key!=value`, `key in (a, b)`, `key notin (a, b)`, `key` or
/// `key exists`, `!key`, `key>N` or `key<N`.
pub fn parse_selector(text: &str) -> Result<Vec<Constraint>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, ch) in text.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let c = parse_requirement(part)?;
        c.check()?;
        out.push(c);
    }
    if out.len() > MAX_CONSTRAINTS {
        return Err(format!("at most {MAX_CONSTRAINTS} constraints are allowed"));
    }
    Ok(out)
}

fn parse_requirement(part: &str) -> Result<Constraint, String> {
    let constraint = |key: &str, operator, values: Vec<String>| Constraint {
        key: key.trim().to_owned(),
        operator,
        values,
    };
    let set = |list: &str| -> Result<Vec<String>, String> {
        let inner = list
            .trim()
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| format!("`{part}`: write the values in parentheses, `(a, b)`"))?;
        Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
    };
    if let Some(key) = part.strip_prefix('!') {
        return Ok(constraint(key, Operator::DoesNotExist, Vec::new()));
    }
    for (symbol, operator) in [
        ("!=", Operator::NotEquals),
        ("==", Operator::Equals),
        ("=", Operator::Equals),
        (">", Operator::GreaterThan),
        ("<", Operator::LessThan),
    ] {
        if let Some((key, value)) = part.split_once(symbol) {
            return Ok(constraint(key, operator, vec![value.trim().to_owned()]));
        }
    }
    let words: Vec<&str> = part.splitn(3, ' ').collect();
    match words.as_slice() {
        [key] => Ok(constraint(key, Operator::Exists, Vec::new())),
        [key, "exists"] => Ok(constraint(key, Operator::Exists, Vec::new())),
        [key, "in", list] => Ok(constraint(key, Operator::In, set(list)?)),
        [key, "notin", list] => Ok(constraint(key, Operator::NotIn, set(list)?)),
        _ => Err(format!(
            "`{part}` is not a constraint: write e.g. `region=eu`, `region in (eu, us)`, \
             `gpu` or `!gpu`"
        )),
    }
}

/// Reads an operator's `--label KEY=VALUE`.
pub fn parse_node_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE: write e.g. `region=eu`"))?;
    check_label_key(key.trim())?;
    check_label_value(value.trim())?;
    Ok((key.trim().to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn c(key: &str, op: &str, values: &[&str]) -> Constraint {
        Constraint {
            key: key.into(),
            operator: Operator::parse(op).unwrap(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    // Issue 17: every operator Bacalhau's files use, on a node's labels.
    #[test]
    fn constraints_hold_as_bacalhau_defines_them() {
        let node = labels(&[("region", "eu"), ("tier", "3"), ("gpu", "")]);
        let cases = [
            (c("region", "=", &["eu"]), true),
            (c("region", "==", &["us"]), false),
            (c("zone", "=", &[""]), false),
            (c("region", "!=", &["us"]), true),
            (c("zone", "!=", &["us"]), true),
            (c("gpu", "exists", &[]), true),
            (c("zone", "exists", &[]), false),
            (c("zone", "!", &[]), true),
            (c("gpu", "!", &[]), false),
            (c("region", "in", &["us", "eu"]), true),
            (c("zone", "in", &["a"]), false),
            (c("region", "notin", &["us"]), true),
            (c("zone", "notin", &["us"]), true),
            (c("tier", "gt", &["2"]), true),
            (c("tier", "lt", &["2"]), false),
            (c("region", "gt", &["2"]), false),
        ];
        for (constraint, holds) in cases {
            assert_eq!(constraint.holds(&node), holds, "{constraint}");
            assert_eq!(constraint.check(), Ok(()), "{constraint}");
        }
        assert_eq!(Operator::parse("~"), None);
    }

    #[test]
    fn constraints_with_the_wrong_values_say_what_to_write() {
        let said = |c: Constraint| c.check().unwrap_err();
        assert!(said(c("gpu", "exists", &["x"])).contains("takes no Values"));
        assert!(said(c("region", "in", &[])).contains("1 to 32 Values"));
        assert!(said(c("region", "=", &["a", "b"])).contains("exactly one value"));
        assert!(said(c("tier", "gt", &["high"])).contains("whole number"));
        assert!(said(c("-x", "exists", &[])).contains("not a label key"));
        assert!(said(c("a", "=", &["x,y"])).contains("not a label value"));
        assert_eq!(
            parse_node_label("region = eu"),
            Ok(("region".into(), "eu".into()))
        );
        assert!(
            parse_node_label("region")
                .unwrap_err()
                .contains("KEY=VALUE")
        );
    }

    // Issue 17: `skrei docker run -s` takes Bacalhau's selectors; each
    // reads back as it is shown.
    #[test]
    fn selectors_are_read_as_bacalhau_takes_them() {
        let read = |s: &str| -> Vec<String> {
            parse_selector(s)
                .unwrap_or_else(|e| panic!("{s}: {e}"))
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            read("region=eu, tier>2,zone in (a, b),gpu,!spot,arch notin (arm),os!=win"),
            [
                "region=eu",
                "tier>2",
                "zone in (a, b)",
                "gpu exists",
                "!spot",
                "arch notin (arm)",
                "os!=win"
            ]
        );
        assert_eq!(read("region==eu"), ["region=eu"]);
        for shown in [
            "region=eu",
            "zone in (a, b)",
            "gpu exists",
            "!spot",
            "tier<3",
        ] {
            assert_eq!(read(shown), [shown]);
        }
        assert!(
            parse_selector("zone in a")
                .unwrap_err()
                .contains("parentheses")
        );
        assert!(
            parse_selector("a b c d")
                .unwrap_err()
                .contains("is not a constraint")
        );
        assert!(
            parse_selector("tier>high")
                .unwrap_err()
                .contains("whole number")
        );
    }
}
