/// Appends JSON text to a byte buffer; the response writer's toolbox.
pub trait JsonOut {
    fn raw(&mut self, s: &str);
}

impl JsonOut for Vec<u8> {
    #[inline]
    fn raw(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

#[inline]
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    // The most common number by far: an increment's value and its answer
    // are 1 unless the client says otherwise. One digit needs no formatter.
    if let Ok(digit) = u8::try_from(n) {
        if digit < 10 {
            out.push(b'0' + digit);
            return;
        }
    }
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

#[inline]
pub fn write_u128(out: &mut Vec<u8>, n: u128) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

/// The bytes a JSON string cannot hold as they are: `"`, `\\` and the
/// control characters.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        table[c] = true;
        c += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// A JSON string literal: `"` and `\` escaped, control characters escaped,
/// non-ASCII written raw, `/` not escaped (as Karma 1.0 writes it).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Names, op names and keys need no escape: check once, copy once (every
    // logged write writes its series name into its WAL entry). One table
    // load per byte, not three comparisons.
    if !bytes.iter().any(|&c| NEEDS_ESCAPE[usize::from(c)]) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_numbers_in_decimal() {
        for n in [0, 1, 9, 10, 99, 255, 256, 20260531, u64::MAX] {
            let mut out = b"x".to_vec();
            write_u64(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn escapes_like_karma_one() {
        let mut out = Vec::new();
        write_str(&mut out, "quote\"d\\ \n/é\u{1}");
        assert_eq!(String::from_utf8(out).unwrap(), r#""quote\"d\\ \n/é\u0001""#);
    }
}
