//! Field checks shared by the messages: lengths, counts, characters.

use super::MessageError;

/// Free text shown to people (reasons): at most `max` bytes, no control
/// characters but newline and tab.
pub(super) fn text(field: &str, value: &str, max: usize) -> Result<(), MessageError> {
    length(field, value, max)?;
    match value
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        Some(found) => Err(MessageError::BadCharacter {
            field: field.into(),
            found,
        }),
        None => Ok(()),
    }
}

/// A token such as an address: non-empty, at most `max` bytes, no control
/// characters or whitespace.
pub(super) fn token(field: &str, value: &str, max: usize) -> Result<(), MessageError> {
    if value.is_empty() {
        return Err(MessageError::Empty {
            field: field.into(),
        });
    }
    length(field, value, max)?;
    match value.chars().find(|c| c.is_control() || c.is_whitespace()) {
        Some(found) => Err(MessageError::BadCharacter {
            field: field.into(),
            found,
        }),
        None => Ok(()),
    }
}

/// A list of tokens: at most `max_count` of at most `max_len` bytes each.
pub(super) fn tokens(
    field: &str,
    values: &[String],
    max_count: usize,
    max_len: usize,
) -> Result<(), MessageError> {
    count(field, values.len(), max_count)?;
    for (i, v) in values.iter().enumerate() {
        token(&format!("{field}[{i}]"), v, max_len)?;
    }
    Ok(())
}

pub(super) fn count(field: &str, count: usize, max: usize) -> Result<(), MessageError> {
    if count > max {
        return Err(MessageError::TooMany {
            field: field.into(),
            count,
            max,
        });
    }
    Ok(())
}

fn length(field: &str, value: &str, max: usize) -> Result<(), MessageError> {
    if value.len() > max {
        return Err(MessageError::TooLong {
            field: field.into(),
            len: value.len(),
            max,
        });
    }
    Ok(())
}
