//! Bounds on a submitted schema, checked before it is parsed.
//!
//! Parsing and compatibility checks recurse over a schema, so a schema nested thousands of
//! levels deep could exhaust a worker's stack, and a huge one its memory and time. echo's
//! own schemas are a few KiB and under ten levels deep; these limits leave ample room.

use crate::error::RegistryError;

/// Most bytes of schema text accepted.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;

/// Most levels of JSON nesting (objects and arrays) in a schema text. A nested record costs
/// three (record, `fields`, field), an array, map or union one or two.
pub const MAX_DEPTH: usize = 64;

/// Refuses a schema text over [`MAX_SCHEMA_BYTES`] or nested deeper than [`MAX_DEPTH`]
/// with 42201, the code of an invalid schema.
pub fn check(text: &str) -> Result<(), RegistryError> {
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(RegistryError::InvalidSchema(format!(
            "Invalid schema: {} bytes, more than the {MAX_SCHEMA_BYTES} this registry accepts",
            text.len()
        )));
    }
    if nesting_exceeds(text, MAX_DEPTH) {
        return Err(RegistryError::InvalidSchema(format!(
            "Invalid schema: nested more than {MAX_DEPTH} levels deep"
        )));
    }
    Ok(())
}

/// Whether the JSON `text` nests objects and arrays deeper than `max`: one pass over the
/// bytes, brackets inside strings ignored, no recursion. Malformed JSON is left to the parser.
fn nesting_exceeds(text: &str, max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays(levels: usize) -> String {
        let mut text = r#""string""#.to_owned();
        for _ in 0..levels {
            text = format!(r#"{{"type":"array","items":{text}}}"#);
        }
        text
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert!(!nesting_exceeds(&nested_arrays(MAX_DEPTH), MAX_DEPTH));
        assert!(nesting_exceeds(&nested_arrays(MAX_DEPTH + 1), MAX_DEPTH));
        assert!(!nesting_exceeds(r#"{"doc":"[[[[{{\"[["}"#, 1));
        assert!(nesting_exceeds(&"[".repeat(100_000), MAX_DEPTH));
    }

    #[test]
    fn size_and_depth_are_invalid_schemas() {
        assert!(check(&nested_arrays(MAX_DEPTH)).is_ok());
        let deep = check(&nested_arrays(MAX_DEPTH + 1)).unwrap_err();
        assert_eq!(deep.error_code(), 42201);
        let padded = format!(
            r#"{{"type":"string","doc":"{}"}}"#,
            "x".repeat(MAX_SCHEMA_BYTES)
        );
        assert_eq!(check(&padded).unwrap_err().error_code(), 42201);
    }
}
