//! Records that always fit: a record moved to a retry tier or the DLQ carries headers saying
//! what happened, and a record larger than a producer may write would make that move fail,
//! abort the transaction and replay the same batch forever. Every record echo writes is
//! checked against [`MAX_RECORD_BYTES`] first; a dead letter that does not fit whole is cut
//! down (value first, then the headers the record arrived with, then its key) and says so.
//! Pure, so the rules are tested without a broker.

use sha2::{Digest, Sha256};

use crate::headers::{echo, HeaderList};

/// The largest record echo's producers write (their `message.max.bytes`). Below the broker's
/// default topic limit (1,048,588 bytes), so a record the producer accepts is not refused by
/// the broker at commit time.
pub const MAX_RECORD_BYTES: usize = 1_000_000;

/// Room left for the record's framing inside a batch (lengths, offsets, header counts).
const FRAMING_BYTES: usize = 1_024;

/// The longest error message a dead letter carries; a handler's message can quote input.
const MAX_MESSAGE_BYTES: usize = 4_096;

/// What a record weighs against [`MAX_RECORD_BYTES`].
pub fn record_bytes(key: Option<&[u8]>, value: Option<&[u8]>, headers: &HeaderList) -> usize {
    let headers: usize = headers.0.iter().map(|(k, v)| k.len() + v.len()).sum();
    key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + headers + FRAMING_BYTES
}

/// Whether a record can be written as it is.
pub fn fits(key: Option<&[u8]>, value: Option<&[u8]>, headers: &HeaderList) -> bool {
    record_bytes(key, value, headers) <= MAX_RECORD_BYTES
}

/// A record ready to be written to the DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The original key, unless it alone was too large.
    pub key: Option<Vec<u8>>,
    /// The original value, or as much of its start as fits.
    pub value: Option<Vec<u8>>,
    /// echo's headers (class, reason, origin, size and hash of the value) and, if they fit,
    /// the headers the record arrived with.
    pub headers: HeaderList,
}

/// Builds the dead letter of a record: `headers` already carry the routing headers (class,
/// reason, origin); the value's size and SHA-256 are added, and whatever does not fit is cut.
pub fn dead_letter(key: Option<&[u8]>, value: Option<&[u8]>, headers: HeaderList) -> DeadLetter {
    let mut headers = headers;
    if let Some(message) = headers.get(echo::ERROR_MESSAGE) {
        let capped = capped_message(message);
        headers.set(echo::ERROR_MESSAGE, capped);
    }
    let original = value.unwrap_or_default();
    headers.set(echo::VALUE_BYTES, original.len());
    headers.set(echo::VALUE_SHA256, hex::encode(Sha256::digest(original)));
    let mut letter = DeadLetter {
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers,
    };
    if letter.fits() {
        return letter;
    }
    let mut cuts = Vec::new();
    // The value goes first: its hash identifies it, and it is usually what is too large.
    letter.headers.set(echo::TRUNCATED, "");
    let room = MAX_RECORD_BYTES.saturating_sub(letter.weight_without_value() + 64);
    if let Some(v) = letter.value.as_mut().filter(|v| v.len() > room) {
        let total = v.len();
        v.truncate(room);
        cuts.push(format!("value: kept {room} of {total} bytes"));
    }
    if !letter.fits() {
        let before = letter.headers.0.len();
        letter.headers.0.retain(|(k, _)| k.starts_with("echo_"));
        cuts.push(format!(
            "headers: dropped {} the record arrived with",
            before - letter.headers.0.len()
        ));
        let room = MAX_RECORD_BYTES.saturating_sub(letter.weight_without_value() + 256);
        if let Some(v) = &mut letter.value {
            v.truncate(room);
        }
    }
    if !letter.fits() {
        let total = letter.key.take().map_or(0, |k| k.len());
        cuts.push(format!("key: dropped ({total} bytes)"));
    }
    letter.headers.set(echo::TRUNCATED, cuts.join("; "));
    letter
}

impl DeadLetter {
    fn fits(&self) -> bool {
        fits(self.key.as_deref(), self.value.as_deref(), &self.headers)
    }

    fn weight_without_value(&self) -> usize {
        record_bytes(self.key.as_deref(), None, &self.headers)
    }
}

/// An error message as echo's headers carry it: at most [`MAX_MESSAGE_BYTES`] (a handler's
/// message can quote its input), cut on a character boundary and marked with `…`.
pub fn capped_message(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    format!("{}…", truncate_utf8(message, MAX_MESSAGE_BYTES))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_utf8(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed() -> HeaderList {
        let mut h = HeaderList::default();
        h.set(echo::ERROR_CLASS, "undecodable");
        h.set(echo::ERROR_MESSAGE, "not Avro");
        h.set(echo::ORIGINAL_TOPIC, "echo.upload.requests");
        h
    }

    #[test]
    fn a_small_record_is_kept_whole_with_its_size_and_hash() {
        let letter = dead_letter(Some(b"k"), Some(b"abc"), routed());
        assert_eq!(letter.value.as_deref(), Some(&b"abc"[..]));
        assert_eq!(letter.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(letter.headers.get(echo::VALUE_BYTES), Some("3"));
        assert_eq!(
            letter.headers.get(echo::VALUE_SHA256),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(letter.headers.get(echo::TRUNCATED), None);
    }

    #[test]
    fn a_value_too_large_to_forward_is_cut_to_fit_and_says_so() {
        let value = vec![7u8; 1_040_000];
        let letter = dead_letter(Some(b"k"), Some(&value), routed());
        assert!(letter.fits());
        let kept = letter.value.as_ref().unwrap().len();
        assert!(kept > 990_000 && kept < value.len(), "{kept}");
        assert_eq!(letter.headers.get(echo::VALUE_BYTES), Some("1040000"));
        assert_eq!(
            letter.headers.get(echo::TRUNCATED),
            Some(format!("value: kept {kept} of 1040000 bytes").as_str())
        );
        assert_eq!(letter.headers.get(echo::ERROR_CLASS), Some("undecodable"));
        assert_eq!(
            letter.headers.get(echo::VALUE_SHA256).unwrap(),
            hex::encode(Sha256::digest(&value))
        );
    }

    #[test]
    fn huge_headers_and_key_are_dropped_but_echo_headers_stay() {
        let mut headers = routed();
        headers.set("client_junk", "x".repeat(900_000));
        let key = vec![b'k'; 200_000];
        let letter = dead_letter(Some(&key), Some(b"v"), headers.clone());
        assert!(letter.fits());
        assert_eq!(letter.headers.get("client_junk"), None);
        assert_eq!(
            letter.headers.get(echo::ORIGINAL_TOPIC),
            Some("echo.upload.requests")
        );
        assert!(letter
            .headers
            .get(echo::TRUNCATED)
            .unwrap()
            .contains("headers: dropped 1"));
        assert_eq!(letter.key.as_deref(), Some(&key[..]));

        let key = vec![b'k'; 1_200_000];
        let letter = dead_letter(Some(&key), Some(b"v"), headers);
        assert!(letter.fits());
        assert_eq!(letter.key, None);
        assert!(letter
            .headers
            .get(echo::TRUNCATED)
            .unwrap()
            .contains("key: dropped (1200000 bytes)"));
    }

    #[test]
    fn a_long_error_message_is_cut_on_a_character_boundary() {
        let mut headers = routed();
        headers.set(echo::ERROR_MESSAGE, "é".repeat(10_000));
        let letter = dead_letter(None, None, headers);
        let message = letter.headers.get(echo::ERROR_MESSAGE).unwrap();
        assert!(message.len() <= MAX_MESSAGE_BYTES + "…".len());
        assert!(message.ends_with('…'));
        assert_eq!(letter.headers.get(echo::VALUE_BYTES), Some("0"));
    }
}
