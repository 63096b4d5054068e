//! Reader for CTranslate2 `model.bin` files (binary format version 6).
//!
//! Layout (little endian), as written by `ctranslate2.specs.ModelSpec.save`:
//!
//! ```text
//! u32 binary_version            (6)
//! u16 len, bytes[len]           spec name, NUL terminated ("WhisperSpec\0")
//! u32 spec_revision             (3 for WhisperSpec)
//! u32 n_variables
//!   n_variables × {
//!     u16 len, bytes[len]       variable name, NUL terminated
//!     u8  rank
//!     u32 dims[rank]
//!     u8  dtype                 (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16)
//!     u32 n_bytes
//!     bytes[n_bytes]            row-major data
//!   }
//! u32 n_aliases
//!   n_aliases × { u16 len, alias name; u16 len, target name }
//! ```

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};

/// Binary format version this reader understands.
const BINARY_VERSION: u32 = 6;

/// Element type of a CTranslate2 variable.
///
/// Only the types that appear in a float16 Whisper model are modelled; anything
/// else is rejected when parsing so that a different model cannot be converted
/// silently wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
}

impl DType {
    fn from_code(code: u8) -> Result<Self> {
        Ok(match code {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            other => bail!("unsupported CTranslate2 dtype code {other}"),
        })
    }

    fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// One named tensor of the model, borrowing its raw bytes from the file.
#[derive(Debug, Clone)]
pub(crate) struct Variable<'a> {
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub data: &'a [u8],
}

impl Variable<'_> {
    /// Number of elements (1 for scalars).
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Reads a scalar integer variable (e.g. `encoder/num_heads`).
    pub fn scalar_int(&self) -> Result<i64> {
        ensure!(
            self.dims.is_empty(),
            "expected a scalar, got dims {:?}",
            self.dims
        );
        Ok(match self.dtype {
            DType::I8 => i64::from(self.data[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([self.data[0], self.data[1]])),
            DType::I32 => i64::from(i32::from_le_bytes(self.data[..4].try_into()?)),
            other => bail!("expected an integer scalar, got {other:?}"),
        })
    }
}

/// A parsed CTranslate2 model: spec name, revision and variables by name
/// (aliases already resolved to their targets).
#[derive(Debug)]
pub(crate) struct Ct2Model<'a> {
    pub spec: String,
    pub revision: u32,
    pub variables: BTreeMap<String, Variable<'a>>,
}

impl<'a> Ct2Model<'a> {
    /// Parses `model.bin` without copying tensor data.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u32()?;
        ensure!(
            version == BINARY_VERSION,
            "unsupported CTranslate2 binary version {version} (expected {BINARY_VERSION})"
        );
        let spec = r.string()?;
        let revision = r.u32()?;
        let n_vars = r.u32()? as usize;
        let mut variables = BTreeMap::new();
        for _ in 0..n_vars {
            let name = r.string()?;
            let rank = r.u8()? as usize;
            let dims = (0..rank)
                .map(|_| r.u32().map(|d| d as usize))
                .collect::<Result<Vec<_>>>()?;
            let dtype = DType::from_code(r.u8()?).with_context(|| format!("variable {name}"))?;
            let n_bytes = r.u32()? as usize;
            let data = r.take(n_bytes)?;
            let expected = dims.iter().product::<usize>() * dtype.size();
            ensure!(
                n_bytes == expected,
                "variable {name}: {n_bytes} bytes for dims {dims:?} of {dtype:?}"
            );
            variables.insert(name, Variable { dims, dtype, data });
        }
        let n_aliases = r.u32()? as usize;
        for _ in 0..n_aliases {
            let alias = r.string()?;
            let target = r.string()?;
            let var = variables
                .get(&target)
                .with_context(|| format!("alias {alias} points to missing {target}"))?
                .clone();
            variables.insert(alias, var);
        }
        ensure!(
            r.pos == bytes.len(),
            "trailing bytes after CTranslate2 model"
        );
        Ok(Ct2Model {
            spec,
            revision,
            variables,
        })
    }

    /// Looks up a variable, failing with its name when absent.
    pub fn var(&self, name: &str) -> Result<&Variable<'a>> {
        self.variables
            .get(name)
            .with_context(|| format!("CTranslate2 model has no variable {name}"))
    }
}

/// Cursor over the file bytes with bounds-checked little-endian reads.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .context("truncated CTranslate2 model file")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into()?))
    }

    /// Length-prefixed, NUL-terminated UTF-8 string.
    fn string(&mut self) -> Result<String> {
        let len = self.u16()? as usize;
        let raw = self.take(len)?;
        let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
        Ok(std::str::from_utf8(raw)
            .context("non UTF-8 name in CTranslate2 model")?
            .to_owned())
    }
}

/// Converts an IEEE 754 half-precision value to single precision (exact).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal half: normalise the mantissa.
            let shift = m.leading_zeros() - 21; // bits needed to bring the top 1 to bit 10
            let m = (m << shift) & 0x3ff;
            let e = 127 - 15 + 1 - shift;
            sign | (e << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_to_single_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
