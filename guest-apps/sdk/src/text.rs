//! Numbers, label parameters and `name=value` commands as bytes, without
//! `core::fmt`.
//!
//! An operational app reports readings as short text (`reading=1234 seq=7`)
//! and takes commands as short text (`interval=30`). Formatting them with
//! `core::fmt` would link kilobytes of code into a component that travels
//! in a QR code, so these few functions do the only formatting and parsing
//! an app needs: unsigned decimals, `name=value` pairs and a fixed-size
//! message buffer. Nothing here allocates or panics on any input.
//!
//! Only `core` is used, so the main workspace compiles this file on the host
//! too and runs its tests there (`cargo test -p enrollment-apps`).

/// Enough digits for any `u64` (18446744073709551615 has 20).
pub const MAX_DIGITS: usize = 20;

/// Writes `n` in decimal into the end of `buf` and returns the digits (no
/// sign, no leading zeros; `0` is `"0"`).
pub fn decimal(n: u64, buf: &mut [u8; MAX_DIGITS]) -> &[u8] {
    let mut n = n;
    let mut start = MAX_DIGITS;
    loop {
        start -= 1;
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

/// Reads an unsigned decimal: 1 to 20 ASCII digits, nothing else (no sign,
/// no spaces), at most `u64::MAX`.
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(n)
}

/// Reads an unsigned decimal as [`parse_u64`] does, at most `u32::MAX`.
pub fn parse_u32(digits: &[u8]) -> Option<u32> {
    u32::try_from(parse_u64(digits)?).ok()
}

/// A decimal with at most `places` digits after its point, as a whole
/// number of `10^-places`: `parse_fixed(b"13.5", 1)` is `Some(135)`,
/// `parse_fixed(b"16", 1)` is `Some(160)`, `parse_fixed(b"7", 0)` is
/// `Some(7)`. `None` for anything else: no digit before the point, a point
/// without a digit after it, more than `places` digits after it, a sign,
/// spaces, more than `u32::MAX`.
#[inline(never)]
pub fn parse_fixed(text: &[u8], places: u32) -> Option<u32> {
    let mut value: u64 = 0;
    let mut whole = 0;
    // Digits after the point, once there is one.
    let mut fraction: Option<u32> = None;
    for &b in text {
        if b == b'.' && fraction.is_none() {
            fraction = Some(0);
            continue;
        }
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + u64::from(d);
        match &mut fraction {
            Some(n) => *n += 1,
            None => whole += 1,
        }
        if value > u64::from(u32::MAX) {
            return None;
        }
    }
    let fraction = match fraction {
        Some(0) => return None,
        Some(n) => n,
        None => 0,
    };
    if whole == 0 || fraction > places {
        return None;
    }
    for _ in fraction..places {
        value *= 10;
        if value > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(value as u32)
}

/// A label parameter's value (`None`: the label has none) as a number in
/// `min..=max`: ASCII spaces around it ignored, read by [`parse_fixed`] with
/// `places` decimals, `default` when absent. `None` if it is absent without
/// a default, malformed or out of range.
///
/// Both worlds wrap it as `param_number` (`phone::param_number`,
/// `device::param_number`), which read the value from the label.
#[inline(never)]
pub fn bounded(value: Option<&[u8]>, places: u32, default: Option<u32>, min: u32, max: u32) -> Option<u32> {
    let n = match value {
        Some(text) => parse_fixed(text.trim_ascii(), places)?,
        None => default?,
    };
    (min..=max).contains(&n).then_some(n)
}

/// Splits a command `name=value` at its first `=`; `None` without one or
/// with an empty name.
pub fn split_command(command: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = command.iter().position(|&b| b == b'=')?;
    let (name, value) = (&command[..at], &command[at + 1..]);
    (!name.is_empty()).then_some((name, value))
}

/// The value of `command` if it is `name=VALUE`, as a `u32`
/// ([`parse_u32`]): e.g. `command_u32(b"interval=30", "interval")` is
/// `Some(30)`. `None` for any other command or a value that is not a number.
pub fn command_u32(command: &[u8], name: &str) -> Option<u32> {
    match split_command(command)? {
        (n, value) if n == name.as_bytes() => parse_u32(value),
        _ => None,
    }
}

/// A message of at most `N` bytes, built in place: `name=value` fields
/// separated by single spaces.
///
/// Bytes beyond `N` are dropped and [`Message::overflowed`] says so: size
/// `N` to the longest message the app sends (a field takes its name, `=`,
/// up to 20 digits and a space). A [`super::record::Writer`] underneath.
#[derive(Default)]
pub struct Message<const N: usize>(super::record::Writer<N>);

impl<const N: usize> Message<N> {
    /// An empty message.
    pub const fn new() -> Self {
        Message(super::record::Writer::new())
    }

    /// Appends raw bytes.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.bytes(bytes);
        self
    }

    /// Appends `n` in decimal.
    pub fn push_decimal(&mut self, n: u64) -> &mut Self {
        let mut buf = [0; MAX_DIGITS];
        self.push(decimal(n, &mut buf))
    }

    /// Appends the field `name=n`, after a space unless it is the first.
    pub fn field(&mut self, name: &str, n: u64) -> &mut Self {
        if !self.0.as_bytes().is_empty() {
            self.push(b" ");
        }
        self.push(name.as_bytes()).push(b"=").push_decimal(n)
    }

    /// The message so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Whether bytes were dropped because the message was full.
    pub fn overflowed(&self) -> bool {
        self.0.overflowed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_writes_every_magnitude() {
        let mut buf = [0; MAX_DIGITS];
        for (n, text) in [(0, "0"), (7, "7"), (10, "10"), (1234, "1234"), (u64::from(u32::MAX), "4294967295")] {
            assert_eq!(decimal(n, &mut buf), text.as_bytes());
        }
        assert_eq!(decimal(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn parse_reads_what_decimal_writes_and_nothing_else() {
        let mut buf = [0; MAX_DIGITS];
        for n in [0, 1, 9, 10, 99, 60, 86_400, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(parse_u64(decimal(n, &mut buf)), Some(n));
        }
        assert_eq!(parse_u64(b"007"), Some(7));
        for bad in [&b""[..], b"-1", b"+1", b" 1", b"1 ", b"1.5", b"0x10", b"18446744073709551616", b"99999999999999999999999"] {
            assert_eq!(parse_u64(bad), None, "{:?}", core::str::from_utf8(bad));
        }
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
    }

    #[test]
    fn fixed_decimals_scale_by_their_places_and_refuse_anything_else() {
        assert_eq!(parse_fixed(b"13.5", 1), Some(135));
        assert_eq!(parse_fixed(b"16", 1), Some(160));
        assert_eq!(parse_fixed(b"7", 0), Some(7));
        assert_eq!(parse_fixed(b"0.05", 2), Some(5));
        assert_eq!(parse_fixed(b"4294967295", 0), Some(u32::MAX));
        for (bad, places) in [
            (&b""[..], 1),
            (b".5", 1),
            (b"13.", 1),
            (b"13.", 0),
            (b"13.55", 1),
            (b"1.5", 0),
            (b"1.2.3", 2),
            (b"-1", 0),
            (b" 1", 0),
            (b"4294967296", 0),
            (b"429496730", 1),
        ] {
            assert_eq!(parse_fixed(bad, places), None, "{:?} with {places}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn a_bounded_parameter_is_trimmed_defaulted_and_range_checked() {
        assert_eq!(bounded(Some(b" 180 "), 0, None, 30, 900), Some(180));
        assert_eq!(bounded(None, 0, Some(180), 30, 900), Some(180));
        assert_eq!(bounded(None, 0, None, 30, 900), None, "required");
        assert_eq!(bounded(Some(b"29"), 0, Some(180), 30, 900), None, "below");
        assert_eq!(bounded(Some(b"901"), 0, None, 30, 900), None, "above");
        assert_eq!(bounded(Some(b"10.5"), 1, None, 1, 160), Some(105));
        assert_eq!(bounded(Some(b"ten"), 0, Some(1), 0, 9), None, "a bad value is not the default");
    }

    #[test]
    fn commands_split_at_the_first_equals_sign() {
        assert_eq!(split_command(b"interval=30"), Some((&b"interval"[..], &b"30"[..])));
        assert_eq!(split_command(b"a=b=c"), Some((&b"a"[..], &b"b=c"[..])));
        assert_eq!(split_command(b"flag="), Some((&b"flag"[..], &b""[..])));
        assert_eq!(split_command(b"=30"), None);
        assert_eq!(split_command(b"interval"), None);
        assert_eq!(split_command(b""), None);

        assert_eq!(command_u32(b"interval=30", "interval"), Some(30));
        assert_eq!(command_u32(b"interval=30", "interva"), None);
        assert_eq!(command_u32(b"intervals=30", "interval"), None);
        assert_eq!(command_u32(b"interval=", "interval"), None);
        assert_eq!(command_u32(b"interval=thirty", "interval"), None);
        assert_eq!(command_u32(b"interval=30\n", "interval"), None);
        assert_eq!(command_u32(b"interval=99999999999", "interval"), None);
    }

    #[test]
    fn a_message_joins_fields_with_spaces_and_says_when_it_overflowed() {
        let mut m = Message::<32>::new();
        m.field("reading", 1234).field("seq", 7);
        assert_eq!(m.as_bytes(), b"reading=1234 seq=7");
        assert!(!m.overflowed());

        let mut small = Message::<8>::new();
        small.push(b"seq=").push_decimal(123_456);
        assert_eq!(small.as_bytes(), b"seq=1234");
        assert!(small.overflowed());
        assert_eq!(Message::<0>::default().push(b"x").as_bytes(), b"");
    }
}
