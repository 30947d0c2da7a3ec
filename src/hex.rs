//! Lower-case hex of bytes (project hashes, cache keys, lock names).

/// `bytes` as lower-case hex. Hashes are made for every box a listing shows, so this
/// writes into one buffer instead of formatting each byte.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_like_format() {
        let bytes: Vec<u8> = (0..=255).collect();
        let want: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::encode(&bytes), want);
        assert_eq!(super::encode(&[]), "");
    }
}
