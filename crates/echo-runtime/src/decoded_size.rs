//! What an Avro body would decode into, measured against its writer schema before it is
//! decoded. Avro states lengths and counts up front (a varint), so a 20-byte record can claim a
//! 2 GB string or a billion-element array, and a decoder that believes it allocates first and
//! fails later. This walk reads the body as the decoder would but allocates nothing: every
//! length is checked against the bytes actually left, every block of items is charged what
//! its decoded values would weigh before a single item is read, and the walk stops at the
//! first byte past the budget. Pure, so the rules are tested without a registry.

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, ResolvedSchema, UuidSchema};
use apache_avro::types::Value;
use apache_avro::Schema;

/// What one decoded value weighs before any bytes it owns (an item of an array, a field).
const VALUE_BYTES: usize = std::mem::size_of::<Value>();

/// How deep values may nest (records in arrays in unions…). echo's records nest a few levels;
/// a recursive writer schema would otherwise let each byte open one more level until the
/// decoder's stack overflows.
pub const MAX_DEPTH: usize = 32;

/// Why a body is not decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Oversized {
    /// Decoded, it would weigh more than the budget.
    #[error("the record would decode into more than the limit of {budget} bytes")]
    OverBudget {
        /// The budget, in bytes.
        budget: usize,
    },
    /// Values nest deeper than [`MAX_DEPTH`].
    #[error("the record nests deeper than the limit of {MAX_DEPTH} levels")]
    TooDeep,
    /// A length, count or fixed size claims more bytes than the body has left, or the body
    /// ends inside a value: no decoder could read it.
    #[error("the record claims {claimed} bytes where {left} are left")]
    Truncated {
        /// Bytes the body claims (or at least needs) next.
        claimed: u64,
        /// Bytes actually left.
        left: usize,
    },
    /// Bytes that no value of the schema starts with (a negative length, a union branch
    /// that does not exist, a varint longer than 64 bits).
    #[error("malformed record: {0}")]
    Malformed(String),
}

/// Returns what `body`, written with `schema`, would weigh decoded (approximately: values,
/// strings, bytes and map keys), or why it is refused: over `budget` bytes, nested deeper than
/// [`MAX_DEPTH`], or claiming more than it holds.
pub fn measure(schema: &Schema, body: &[u8], budget: usize) -> Result<usize, Oversized> {
    let resolved = ResolvedSchema::try_from(schema)
        .map_err(|e| Oversized::Malformed(format!("writer schema: {e}")))?;
    let mut walk = Walk {
        names: resolved.get_names(),
        body,
        at: 0,
        weight: 0,
        budget,
    };
    walk.value(schema, 0)?;
    Ok(walk.weight)
}

/// One walk through a body: where it is and what it has charged.
struct Walk<'a, 's> {
    /// Named types, so references (`Schema::Ref`) resolve.
    names: &'a HashMap<Name, &'s Schema>,
    /// The Avro body (without the Confluent framing).
    body: &'a [u8],
    /// Offset of the next unread byte.
    at: usize,
    /// Decoded weight so far, in bytes.
    weight: usize,
    /// The most `weight` may reach.
    budget: usize,
}

impl Walk<'_, '_> {
    /// Bytes left to read.
    fn left(&self) -> usize {
        self.body.len() - self.at
    }

    /// Adds `bytes` to the weight, failing past the budget.
    fn charge(&mut self, bytes: usize) -> Result<(), Oversized> {
        self.weight = self.weight.saturating_add(bytes);
        if self.weight > self.budget {
            return Err(Oversized::OverBudget {
                budget: self.budget,
            });
        }
        Ok(())
    }

    /// Skips `n` bytes that must be present.
    fn skip(&mut self, n: u64) -> Result<(), Oversized> {
        let left = self.left();
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                self.at += n;
                Ok(())
            }
            _ => Err(Oversized::Truncated { claimed: n, left }),
        }
    }

    /// A zigzag varint, as Avro writes `int` and `long`.
    fn long(&mut self) -> Result<i64, Oversized> {
        let mut raw: u64 = 0;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.body.get(self.at) else {
                return Err(Oversized::Truncated {
                    claimed: 1,
                    left: 0,
                });
            };
            self.at += 1;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err(Oversized::Malformed("a varint longer than 64 bits".into()))
    }

    /// A length that must not be negative.
    fn length(&mut self) -> Result<u64, Oversized> {
        let n = self.long()?;
        u64::try_from(n).map_err(|_| Oversized::Malformed(format!("negative length {n}")))
    }

    /// Length-prefixed bytes (strings, bytes and what is written as them): what the decoded
    /// value owns, so charged first (a claim over the budget is refused as such), and they
    /// must be present.
    fn bytes(&mut self) -> Result<(), Oversized> {
        let n = self.length()?;
        self.charge(usize::try_from(n).unwrap_or(usize::MAX))?;
        self.skip(n)
    }

    /// `size` bytes of a fixed type, owned by the decoded value.
    fn fixed(&mut self, size: usize) -> Result<(), Oversized> {
        self.charge(size)?;
        self.skip(size as u64)
    }

    /// One value of `schema` at nesting `depth`.
    fn value(&mut self, schema: &Schema, depth: usize) -> Result<(), Oversized> {
        if depth > MAX_DEPTH {
            return Err(Oversized::TooDeep);
        }
        self.charge(VALUE_BYTES)?;
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1),
            Schema::Int
            | Schema::Long
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
            | Schema::Enum(_) => self.long().map(drop),
            Schema::Float => self.skip(4),
            Schema::Double => self.skip(8),
            Schema::Duration(_) => self.skip(12),
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes)
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => self.bytes(),
            Schema::Fixed(fixed)
            | Schema::Uuid(UuidSchema::Fixed(fixed))
            | Schema::Decimal(apache_avro::schema::DecimalSchema {
                inner: InnerDecimalSchema::Fixed(fixed),
                ..
            }) => self.fixed(fixed.size),
            Schema::Union(union) => {
                let index = self.long()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| Oversized::Malformed(format!("no union branch {index}")))?;
                self.value(branch, depth + 1)
            }
            Schema::Record(record) => {
                for field in &record.fields {
                    self.charge(std::mem::size_of::<String>() + field.name.len())?;
                    self.value(&field.schema, depth + 1)?;
                }
                Ok(())
            }
            Schema::Array(array) => self.blocks(|walk| walk.value(&array.items, depth + 1)),
            Schema::Map(map) => self.blocks(|walk| {
                walk.charge(std::mem::size_of::<String>())?;
                walk.bytes()?;
                walk.value(&map.types, depth + 1)
            }),
            Schema::Ref { name } => {
                let named = *self
                    .names
                    .get(name)
                    .ok_or_else(|| Oversized::Malformed(format!("unknown type {name}")))?;
                self.value(named, depth + 1)
            }
        }
    }

    /// The blocks of an array or map: each block's count is checked against the budget before
    /// any item is read, so a claimed billion items are refused at once.
    fn blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), Oversized>,
    ) -> Result<(), Oversized> {
        loop {
            let count = match self.long()? {
                0 => return Ok(()),
                // A negative count is followed by the block's size in bytes.
                n if n < 0 => {
                    let size = self.length()?;
                    let left = self.left();
                    if usize::try_from(size).map_or(true, |size| size > left) {
                        return Err(Oversized::Truncated {
                            claimed: size,
                            left,
                        });
                    }
                    n.unsigned_abs()
                }
                n => n.unsigned_abs(),
            };
            let items = usize::try_from(count).unwrap_or(usize::MAX);
            // Each item weighs at least its own value, whatever it holds.
            if self
                .weight
                .saturating_add(items.saturating_mul(VALUE_BYTES))
                > self.budget
            {
                return Err(Oversized::OverBudget {
                    budget: self.budget,
                });
            }
            for _ in 0..items {
                item(self)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Schema {
        Schema::parse_str(json).unwrap()
    }

    /// Avro's zigzag varint of `n`.
    fn varint(n: i64) -> Vec<u8> {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                out.push(byte);
                return out;
            }
            out.push(byte | 0x80);
        }
    }

    const REQUEST: &str = r#"{"type": "record", "name": "R", "fields": [
        {"name": "filename", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "extra", "type": ["null", {"type": "map", "values": "long"}]}
    ]}"#;

    #[test]
    fn a_real_record_measures_about_its_decoded_size() {
        let schema = parse(REQUEST);
        let value = Value::Record(vec![
            ("filename".into(), Value::String("speech.wav".into())),
            (
                "tags".into(),
                Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]),
            ),
            (
                "extra".into(),
                Value::Union(
                    1,
                    Box::new(Value::Map([("k".to_string(), Value::Long(7))].into())),
                ),
            ),
        ]);
        let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        let weight = measure(&schema, &body, 1 << 20).unwrap();
        assert!(weight > body.len() && weight < 2_000, "{weight}");
        assert_eq!(
            measure(&schema, &body, weight - 1),
            Err(Oversized::OverBudget { budget: weight - 1 })
        );
    }

    #[test]
    fn a_string_longer_than_the_budget_or_the_body_is_refused_without_allocating() {
        let schema = parse(REQUEST);
        let mut body = varint(2_000_000_000);
        body.extend(b"abc");
        assert_eq!(
            measure(&schema, &body, 1 << 20),
            Err(Oversized::OverBudget { budget: 1 << 20 })
        );
        let mut body = varint(1_000);
        body.extend(b"abc");
        assert_eq!(
            measure(&schema, &body, 1 << 20),
            Err(Oversized::Truncated {
                claimed: 1_000,
                left: 3
            })
        );
    }

    #[test]
    fn a_billion_items_are_refused_before_the_first_is_read() {
        let schema = parse(REQUEST);
        let mut body = varint(0); // empty filename
        body.extend(varint(1_000_000_000));
        assert_eq!(
            measure(&schema, &body, 1 << 20),
            Err(Oversized::OverBudget { budget: 1 << 20 })
        );
        // Items that take no bytes at all are bounded by the budget alone.
        let nulls = parse(r#"{"type": "array", "items": "null"}"#);
        let mut body = varint(100_000);
        body.extend(varint(0));
        assert!(measure(&nulls, &body, 1 << 30).is_ok());
        assert_eq!(
            measure(&nulls, &body, 1 << 20),
            Err(Oversized::OverBudget { budget: 1 << 20 })
        );
    }

    #[test]
    fn recursion_is_bounded_and_malformed_bytes_are_named() {
        let list = parse(
            r#"{"type": "record", "name": "Node", "fields": [
                {"name": "next", "type": ["null", "Node"]}]}"#,
        );
        // Each 0x02 byte opens one more level.
        assert_eq!(
            measure(&list, &[0x02; 1_000], 1 << 30),
            Err(Oversized::TooDeep)
        );
        let mut ok = vec![0x02; 3];
        ok.push(0x00);
        assert!(measure(&list, &ok, 1 << 20).is_ok());
        assert!(matches!(
            measure(&list, &[0x04], 1 << 20),
            Err(Oversized::Malformed(_))
        ));
        assert!(matches!(
            measure(&parse(r#""string""#), &[0x01], 1 << 20),
            Err(Oversized::Malformed(_))
        ));
    }
}
