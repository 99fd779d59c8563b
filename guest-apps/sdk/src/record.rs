//! App-defined records as bytes: a [`Writer`] for the phone half that builds
//! one, a [`Reader`] for the device half that takes it apart.
//!
//! A record (`offer.record(tag, bytes)`, `Item::Record`) is the one hand-over
//! item whose bytes only the app understands. The host already authenticates
//! and frames it (the device half gets exactly the bytes the phone half
//! offered, or the enrollment fails), so an app needs no length prefix or
//! checksum of its own: only its fields, here big-endian. Neither type
//! allocates, formats or panics on any input; the work is done by a few
//! non-generic functions, so every app (and the shipped compression
//! dictionary, which holds the SDK's code) shares the same bytes for them.
//!
//! ```ignore
//! let mut limit = record::Writer::<8>::new();
//! limit.u16(watts).u16(deciamps).u8(volts);
//! offer::record(POWER_LIMIT, limit.as_bytes())?;
//!
//! let mut r = record::Reader::new(&bytes);
//! let (watts, deciamps, volts) = (r.u16()?, r.u16()?, r.u8()?);
//! r.finish()?; // nothing may follow
//! ```
//!
//! Only `core` is used, so the main workspace compiles this file on the host
//! too and runs its tests there (`cargo test -p enrollment-apps`).

/// A record of at most `N` bytes, built in place.
///
/// Bytes beyond `N` are dropped and [`Writer::overflowed`] says so; size `N`
/// to the longest record the app offers.
pub struct Writer<const N: usize> {
    bytes: [u8; N],
    len: usize,
    overflowed: bool,
}

impl<const N: usize> Default for Writer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Writer<N> {
    /// An empty record.
    pub const fn new() -> Self {
        Writer { bytes: [0; N], len: 0, overflowed: false }
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.overflowed |= put(&mut self.bytes, &mut self.len, bytes);
        self
    }

    /// Appends the low byte of `value`.
    pub fn u8(&mut self, value: u32) -> &mut Self {
        self.bytes(&[value as u8])
    }

    /// Appends the low 16 bits of `value`, big-endian.
    pub fn u16(&mut self, value: u32) -> &mut Self {
        self.bytes(&(value as u16).to_be_bytes())
    }

    /// Appends `value`, big-endian.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    /// The record so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Whether bytes were dropped because the record was full.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }
}

/// Copies what fits of `src` into `dst` at `*len`; true if something did not.
#[inline(never)]
fn put(dst: &mut [u8], len: &mut usize, src: &[u8]) -> bool {
    let room = dst.len() - *len;
    let n = src.len().min(room);
    dst[*len..*len + n].copy_from_slice(&src[..n]);
    *len += n;
    n < src.len()
}

/// Reads a record's fields in order; every read is `None` past the end.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The next `n` bytes.
    #[inline(never)]
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    /// The next `n` (at most 4) bytes as a big-endian number.
    #[inline(never)]
    pub fn uint(&mut self, n: usize) -> Option<u32> {
        if n > 4 {
            return None;
        }
        Some(self.take(n)?.iter().fold(0, |v, &b| v << 8 | u32::from(b)))
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u32> {
        self.uint(1)
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> Option<u32> {
        self.uint(2)
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> Option<u32> {
        self.uint(4)
    }

    /// What is left, without reading it.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// `Some(())` if every byte was read: a record with trailing bytes is
    /// not the record the app expects.
    pub fn finish(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_writes_big_endian_fields_and_says_when_it_overflowed() {
        let mut w = Writer::<8>::new();
        w.u8(0x1FF).u16(0x1234).u32(0xDEAD_BEEF);
        assert_eq!(w.as_bytes(), [0xFF, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF]);
        assert!(!w.overflowed());
        w.u16(0xABCD);
        assert_eq!(w.as_bytes(), [0xFF, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0xAB]);
        assert!(w.overflowed());
        assert_eq!(Writer::<0>::default().bytes(b"x").as_bytes(), b"");
    }

    #[test]
    fn a_reader_reads_what_a_writer_wrote_and_nothing_past_the_end() {
        let mut w = Writer::<16>::new();
        w.u8(7).u16(1440).u32(86_400).bytes(b"eui");
        let mut r = Reader::new(w.as_bytes());
        assert_eq!((r.u8(), r.u16(), r.u32()), (Some(7), Some(1440), Some(86_400)));
        assert_eq!(r.finish(), None);
        assert_eq!(r.rest(), b"eui");
        assert_eq!(r.take(4), None, "past the end");
        assert_eq!(r.rest(), b"eui", "a failed read consumes nothing");
        assert_eq!(r.take(3), Some(&b"eui"[..]));
        assert_eq!((r.u8(), r.u16(), r.u32()), (None, None, None));
        assert_eq!(r.finish(), Some(()));
        assert_eq!(Reader::new(&[1, 2, 3, 4, 5]).uint(5), None);
    }
}
