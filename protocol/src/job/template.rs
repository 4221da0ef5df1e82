//! Job files as templates (issue 17): `{{.name}}` placeholders filled from
//! `--template-vars NAME=VALUE` and `--template-envs REGEX`, as
//! `bacalhau job run` fills them, before the file is parsed.
//!
//! Only plain substitution is supported: `{{.name}}` and `{{ .name }}`,
//! and Bacalhau's documented default, `{{or (index . "name") "default"}}`
//! (the default when the value is missing or empty, as Go's `or` does).
//! Anything else Go's templates offer (pipelines, conditionals, loops,
//! functions, trim markers) is an error naming the construct, so a file is
//! never run half-rendered.
//!
//! ```
//! use std::collections::BTreeMap;
//! use protocol::job::template::render;
//! let values = BTreeMap::from([("image".to_string(), "ubuntu:24.04".to_string())]);
//! assert_eq!(render("Image: {{ .image }}\n", &values).unwrap(), "Image: ubuntu:24.04\n");
//! assert!(render("Image: {{ .tag }}\n", &values).unwrap_err().to_string().contains("--template-vars tag="));
//! ```

use std::collections::BTreeMap;
use std::fmt;

/// Why a template cannot be rendered, and where (1-based line and column
/// of its `{{`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Line of the placeholder.
    pub line: usize,
    /// Column of the placeholder.
    pub column: usize,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for TemplateError {}

impl From<TemplateError> for super::JobErrors {
    fn from(e: TemplateError) -> super::JobErrors {
        super::JobErrors(vec![super::JobError {
            path: String::new(),
            location: Some(super::Location {
                line: e.line,
                column: e.column,
            }),
            message: e.message,
        }])
    }
}

/// The first placeholder of `text`, if it has one: the file is a template.
pub fn first_placeholder(text: &str) -> Option<(usize, usize)> {
    text.find("{{").map(|at| position(text, at))
}

/// `text` with every `{{.name}}` replaced by `values[name]`.
pub fn render(text: &str, values: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = text[rest..].find("{{") {
        let start = rest + found;
        out.push_str(&text[rest..start]);
        let error = |message: String| {
            let (line, column) = position(text, start);
            TemplateError {
                line,
                column,
                message,
            }
        };
        let Some(len) = text[start + 2..].find("}}") else {
            return Err(error(
                "`{{` is not closed with `}}`: close the placeholder, or write the braces \
                 another way if they are not one"
                    .into(),
            ));
        };
        let inner = &text[start + 2..start + 2 + len];
        let value = match or_index_default(inner) {
            Some((name, default)) => match values.get(name) {
                Some(value) if !value.is_empty() => value.as_str(),
                _ => default,
            },
            None => {
                let name = placeholder_name(inner).map_err(error)?;
                values.get(name).ok_or_else(|| {
                    error(format!(
                        "the template has no value for `{name}`: give one with \
                         --template-vars {name}=VALUE (or --template-envs with a pattern \
                         matching an environment variable {name})"
                    ))
                })?
            }
        };
        out.push_str(value);
        rest = start + 2 + len + 2;
    }
    out.push_str(&text[rest..]);
    Ok(out)
}

/// `or (index . "NAME") "DEFAULT"` (spaces free): the name and the default.
/// Quoted strings are plain: a backslash escape is not this form.
fn or_index_default(inner: &str) -> Option<(&str, &str)> {
    let rest = inner.trim().strip_prefix("or")?;
    let rest = rest.strip_prefix(char::is_whitespace)?.trim_start();
    let rest = rest.strip_prefix('(')?.trim_start().strip_prefix("index")?;
    let rest = rest.strip_prefix(char::is_whitespace)?.trim_start();
    let rest = rest.strip_prefix('.')?;
    let rest = rest.strip_prefix(char::is_whitespace)?.trim_start();
    let (name, rest) = quoted(rest)?;
    let rest = rest.trim_start().strip_prefix(')')?;
    let rest = rest.strip_prefix(char::is_whitespace)?.trim_start();
    let (default, rest) = quoted(rest)?;
    rest.trim().is_empty().then_some((name, default))
}

/// A `"..."` string at the start of `text` without escapes, and the rest.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    let end = body.find('"')?;
    let value = &body[..end];
    (!value.contains('\\')).then_some((value, &body[end + 1..]))
}

/// The name of a plain placeholder's inside (`.name`, spaces around), or
/// what the construct is.
fn placeholder_name(inner: &str) -> Result<&str, String> {
    if inner.starts_with('-') || inner.ends_with('-') {
        return Err(format!(
            "`{{{{{inner}}}}}` trims whitespace (`{{{{-`, `-}}}}`), which skrei's templates do \
             not support: write `{{{{ .name }}}}`"
        ));
    }
    let trimmed = inner.trim();
    if let Some(name) = trimmed.strip_prefix('.')
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Ok(name);
    }
    let first = trimmed.split_whitespace().next().unwrap_or("");
    let construct = if trimmed.contains('|') {
        "a pipeline (`|`)".to_owned()
    } else if matches!(first, "if" | "else" | "end" | "with") {
        format!("a conditional (`{first}`)")
    } else if matches!(first, "range" | "break" | "continue") {
        format!("a loop (`{first}`)")
    } else if matches!(first, "define" | "template" | "block") {
        format!("a nested template (`{first}`)")
    } else if trimmed.starts_with("/*") {
        "a comment".to_owned()
    } else if trimmed.starts_with('$') {
        "a variable (`$`)".to_owned()
    } else if trimmed.starts_with('.') && trimmed.contains('.') && trimmed[1..].contains('.') {
        "a field path (`.a.b`)".to_owned()
    } else if trimmed.is_empty() {
        "an empty placeholder".to_owned()
    } else {
        format!("a function or expression (`{first}`)")
    };
    Err(format!(
        "`{{{{{inner}}}}}` is {construct}: skrei's templates only substitute values, \
         `{{{{.name}}}}`, `{{{{ .name }}}}` or `{{{{or (index . \"name\") \"default\"}}}}`; \
         render the file another way first"
    ))
}

/// 1-based line and column (in characters) of byte `at`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_placeholders_are_filled() {
        let v = values(&[("image", "ubuntu:24.04"), ("n", "3")]);
        assert_eq!(
            render(
                "Image: {{.image}}\nCount: {{ .n }}\nx: \"{{.n}}{{.n}}\"",
                &v
            )
            .unwrap(),
            "Image: ubuntu:24.04\nCount: 3\nx: \"33\""
        );
        assert_eq!(render("no placeholders", &v).unwrap(), "no placeholders");
        // A value is not rendered again.
        let v = values(&[("a", "{{.b}}")]);
        assert_eq!(render("{{.a}}", &v).unwrap(), "{{.b}}");
    }

    #[test]
    fn other_constructs_are_named_with_their_place() {
        let v = values(&[("x", "1")]);
        for (text, construct) in [
            ("a: {{ .x | upper }}", "a pipeline"),
            ("{{ if .x }}y{{ end }}", "a conditional (`if`)"),
            ("{{range .x}}{{end}}", "a loop (`range`)"),
            ("{{- .x -}}", "trims whitespace"),
            (
                "{{ printf \"%d\" 1 }}",
                "a function or expression (`printf`)",
            ),
            ("{{ $x := 1 }}", "a variable"),
            ("{{ .a.b }}", "a field path"),
            ("{{}}", "an empty placeholder"),
            ("{{/* c */}}", "a comment"),
            ("a: {{ .x", "is not closed"),
        ] {
            let err = render(text, &v).unwrap_err();
            assert!(err.message.contains(construct), "{text}: {err}");
        }
        let err = render("a: 1\nb: x {{ .y }}", &v).unwrap_err();
        assert_eq!((err.line, err.column), (2, 6));
        assert!(err.message.contains("--template-vars y=VALUE"), "{err}");
    }

    #[test]
    fn the_first_placeholder_is_found() {
        assert_eq!(first_placeholder("a: 1\n  b: {{.x}}"), Some((2, 6)));
        assert_eq!(first_placeholder("a: '{'"), None);
    }

    // Bacalhau's documented default: the value when given and not empty,
    // the default otherwise; near misses are still refused by name.
    #[test]
    fn or_index_defaults() {
        let v = values(&[("start", "9am"), ("blank", "")]);
        let t = |text: &str| render(text, &v);
        assert_eq!(t(r#"a: {{or (index . "start") "now"}}"#).unwrap(), "a: 9am");
        assert_eq!(
            t(r#"a: {{ or (index . "end") "later" }}"#).unwrap(),
            "a: later"
        );
        assert_eq!(t(r#"a: {{or (index . "blank") "x"}}"#).unwrap(), "a: x");
        assert_eq!(t(r#"a: "{{or (index . "end") ""}}""#).unwrap(), "a: \"\"");
        for bad in [
            r#"{{or (index . "end") "a\"b"}}"#,
            r#"{{or (index . "end")}}"#,
            r#"{{or (index .Values "end") "x"}}"#,
            r#"{{and (index . "end") "x"}}"#,
        ] {
            let err = t(bad).unwrap_err().to_string();
            assert!(err.contains("only substitute values"), "{bad}: {err}");
        }
    }
}
