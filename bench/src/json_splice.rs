//! One top-level member of a pretty-printed JSON object (results.json)
//! read or replaced as text, so that `run` and `soak` each rewrite their
//! own part and every key keeps its place (serde_json's `Value` would sort
//! them all).

use std::ops::Range;

/// Each top-level member: its key and the byte range of its value.
fn members(text: &str) -> Option<Vec<(String, Range<usize>)>> {
    let bytes = text.as_bytes();
    let open = text.find('{')?;
    let mut members = Vec::new();
    let mut i = open + 1;
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut key: Option<String> = None;
    let mut key_start = None;
    let mut value_start = None;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                if depth == 0 && value_start.is_none() {
                    if let Some(start) = key_start.take() {
                        key = Some(serde_json::from_str(text.get(start..=i)?).ok()?);
                    }
                }
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                if depth == 0 && value_start.is_none() && key.is_none() {
                    key_start = Some(i);
                }
            }
            b':' if depth == 0 && value_start.is_none() => value_start = Some(i + 1),
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth > 0 => depth -= 1,
            b',' | b'}' if depth == 0 => {
                if let (Some(k), Some(start)) = (key.take(), value_start.take()) {
                    let raw = text.get(start..i)?;
                    let lead = raw.len() - raw.trim_start().len();
                    let trail = raw.len() - raw.trim_end().len();
                    members.push((k, start + lead..i - trail));
                }
                if b == b'}' {
                    return Some(members);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The raw text of `key`'s value, if `text` is an object that has it.
pub fn get<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let (_, range) = members(text)?.into_iter().find(|(k, _)| k == key)?;
    text.get(range)
}

/// `text` with `key`'s value replaced by `value` (pretty JSON at indent 0),
/// or the member added at the end; `None` when `text` is no JSON object.
pub fn set(text: &str, key: &str, value: &str) -> Option<String> {
    let members = members(text)?;
    let indented = value.trim_end().replace('\n', "\n  ");
    if let Some((_, range)) = members.iter().find(|(k, _)| k == key) {
        return Some(format!(
            "{}{indented}{}",
            text.get(..range.start)?,
            text.get(range.end..)?
        ));
    }
    let close = text.rfind('}')?;
    let head = text.get(..close)?.trim_end();
    let separator = if members.is_empty() { "" } else { "," };
    Some(format!(
        "{head}{separator}\n  {}: {indented}\n}}\n",
        serde_json::to_string(key).ok()?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_replaced_or_added_in_place() {
        let text = "{\n  \"b\": {\n    \"x\": \"}\\\",{\"\n  },\n  \"a\": [1, 2],\n  \"c\": 3\n}";
        assert_eq!(get(text, "a"), Some("[1, 2]"));
        assert_eq!(get(text, "c"), Some("3"));
        assert_eq!(get(text, "b"), Some("{\n    \"x\": \"}\\\",{\"\n  }"));
        let replaced = set(text, "a", "{\n  \"n\": 1\n}").unwrap();
        assert_eq!(
            replaced,
            "{\n  \"b\": {\n    \"x\": \"}\\\",{\"\n  },\n  \"a\": {\n    \"n\": 1\n  },\n  \"c\": 3\n}"
        );
        let added = set(text, "soak", "true").unwrap();
        assert!(
            added.ends_with("\"c\": 3,\n  \"soak\": true\n}\n"),
            "{added}"
        );
        let value: serde_json::Value = serde_json::from_str(&added).unwrap();
        assert_eq!(value["soak"], true);
        assert_eq!(set("{}", "k", "1").unwrap(), "{\n  \"k\": 1\n}\n");
        assert_eq!(set("[1]", "k", "1"), None);
    }
}
