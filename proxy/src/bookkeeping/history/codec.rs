//! The bytes the usage history is kept in, in memory and on disk: unsigned LEB128 integers and
//! length-prefixed strings. Reading never panics and never allocates more than it was given.

use super::histogram::DecodeError;

#[derive(Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub fn with_capacity(capacity: usize) -> Writer {
        Writer {
            bytes: Vec::with_capacity(capacity),
        }
    }

    pub fn uint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Length, then the bytes.
    pub fn blob(&mut self, bytes: &[u8]) {
        self.uint(bytes.len() as u64);
        self.raw(bytes);
    }

    pub fn text(&mut self, text: &str) {
        self.blob(text.as_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.bytes.split_first().ok_or(DecodeError)?;
            self.bytes = rest;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError);
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError)
    }

    /// A `u32` written with [`Writer::uint`].
    pub fn id(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.uint()?).map_err(|_| DecodeError)
    }

    /// A count of items each at least `min_bytes` long: no larger than the bytes left allow,
    /// so that a damaged count cannot make the reader reserve memory it was never given.
    pub fn count(&mut self, min_bytes: usize) -> Result<usize, DecodeError> {
        let count = usize::try_from(self.uint()?).map_err(|_| DecodeError)?;
        if count.saturating_mul(min_bytes.max(1)) > self.bytes.len() {
            return Err(DecodeError);
        }
        Ok(count)
    }

    pub fn raw(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.bytes.len() {
            return Err(DecodeError);
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    pub fn blob(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.uint()?).map_err(|_| DecodeError)?;
        self.raw(len)
    }

    pub fn text(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.blob()?).map_err(|_| DecodeError)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_strings_round_trip() {
        let mut w = Writer::default();
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            w.uint(v);
        }
        w.text("gpt-4o/世界");
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes);
        for v in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(r.uint(), Ok(v));
        }
        assert_eq!(r.text(), Ok("gpt-4o/世界"));
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_or_overlong_input_is_an_error() {
        assert_eq!(Reader::new(&[0x80]).uint(), Err(DecodeError));
        assert_eq!(Reader::new(&[0xff; 11]).uint(), Err(DecodeError));
        assert_eq!(Reader::new(&[5, b'a']).text(), Err(DecodeError));
        assert_eq!(Reader::new(&[200, 1]).count(1), Err(DecodeError));
    }
}
