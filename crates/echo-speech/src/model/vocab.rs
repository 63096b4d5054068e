//! Token vocabulary for the ggml header.
//!
//! whisper.cpp wants every regular token as its raw bytes, in id order; it
//! appends the special tokens (`<|endoftext|>`, language, task and timestamp
//! tokens) itself. The Hugging Face `tokenizer.json` stores byte-level BPE
//! tokens as GPT-2 "byte-to-unicode" strings, so each string is mapped back to
//! the bytes it stands for.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};

/// GPT-2 `bytes_to_unicode` inverted: maps each printable stand-in char back
/// to its byte.
fn unicode_to_byte() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = printable.clone();
    let mut n = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable
        .into_iter()
        .zip(chars)
        .map(|(b, c)| (char::from_u32(c).expect("valid scalar"), b as u8))
        .collect()
}

/// The first special token; every id below it is a regular BPE token.
const END_OF_TEXT: &str = "<|endoftext|>";

/// Returns the bytes of the regular tokens (ids below `<|endoftext|>`) of a
/// `tokenizer.json`, cross-checked against CTranslate2's `vocabulary.txt`
/// (one token per line, same id order).
pub(crate) fn regular_tokens(tokenizer_json: &[u8], vocabulary_txt: &[u8]) -> Result<Vec<Vec<u8>>> {
    let json: serde_json::Value =
        serde_json::from_slice(tokenizer_json).context("tokenizer.json is not JSON")?;
    let vocab = json
        .pointer("/model/vocab")
        .and_then(|v| v.as_object())
        .context("tokenizer.json has no model.vocab object")?;
    let n_regular = vocab
        .get(END_OF_TEXT)
        .and_then(|id| id.as_u64())
        .with_context(|| format!("tokenizer.json has no {END_OF_TEXT} token"))?
        as usize;

    let mut by_id: Vec<Option<&str>> = vec![None; n_regular];
    for (token, id) in vocab {
        let id = id.as_u64().context("non-integer token id")? as usize;
        if id < n_regular {
            ensure!(by_id[id].is_none(), "token id {id} appears twice");
            by_id[id] = Some(token.as_str());
        }
    }

    let lines: Vec<&[u8]> = vocabulary_txt.split(|&b| b == b'\n').collect();
    let decoder = unicode_to_byte();
    let mut out = Vec::with_capacity(n_regular);
    for (id, token) in by_id.into_iter().enumerate() {
        let Some(token) = token else {
            bail!("tokenizer.json has no token with id {id}");
        };
        ensure!(
            lines.get(id).copied() == Some(token.as_bytes()),
            "tokenizer.json and vocabulary.txt disagree on token {id}"
        );
        let bytes = token
            .chars()
            .map(|c| {
                decoder
                    .get(&c)
                    .copied()
                    .with_context(|| format!("token {id} has non byte-level char {c:?}"))
            })
            .collect::<Result<Vec<u8>>>()?;
        out.push(bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::unicode_to_byte;

    #[test]
    fn byte_decoder_is_a_bijection_over_bytes() {
        let d = unicode_to_byte();
        assert_eq!(d.len(), 256);
        assert_eq!(d[&'Ġ'], b' ');
        assert_eq!(d[&'Ċ'], b'\n');
        assert_eq!(d[&'!'], b'!');
        let mut bytes: Vec<u8> = d.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }
}
