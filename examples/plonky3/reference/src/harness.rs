//! Seeds, deterministic randomness and digests shared by `gate` and `bench`.

/// A 32-byte seed, written as 64 hexadecimal digits on the command line.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Seed(pub [u8; 32]);

impl Seed {
    /// Parses exactly 64 hex digits (either case).
    pub fn parse_hex(s: &str) -> Result<Seed, String> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("seed must be 64 hexadecimal digits, got {:?}", s));
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Seed(out))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// An independent generator for the stream named `(label, index)` under this seed.
    pub fn rng(&self, label: &str, index: u64) -> Rng {
        let mut material = self.0.to_vec();
        material.extend_from_slice(label.as_bytes());
        material.push(0);
        material.extend_from_slice(&index.to_le_bytes());
        Rng::from_bytes(&crate::sha256::digest(&material))
    }
}

/// xoshiro256** (Blackman–Vigna): fast, good statistical quality; not for secrets.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn from_bytes(bytes: &[u8; 32]) -> Rng {
        let mut s = [0u64; 4];
        for (i, w) in s.iter_mut().enumerate() {
            *w = u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)` (n > 0), by rejection.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// A uniform field element (canonical value below p).
    pub fn field(&mut self) -> u64 {
        self.below(crate::P)
    }
}

/// A fast 256-bit digest of a `u32` stream: four independent multiply–rotate lanes, finished with
/// SHA-256. Used to derive verification challenges from a whole output (Fiat–Shamir), so a kernel
/// cannot know which entries will be checked before it has produced all of them.
pub fn digest_u32s(words: &[u32]) -> [u8; 32] {
    const K: [u64; 4] =
        [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9, 0xd6e8_feb8_6659_fd93];
    let mut lanes = [0x243f_6a88_85a3_08d3u64, 0x1319_8a2e_0370_7344, 0xa409_3822_299f_31d0, 0x082e_fa98_ec4e_6c89];
    let mut chunks = words.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..4 {
            let w = (c[2 * l] as u64) | ((c[2 * l + 1] as u64) << 32);
            lanes[l] = (lanes[l] ^ w).wrapping_mul(K[l]).rotate_left(29);
        }
    }
    let mut tail = Vec::new();
    for &w in chunks.remainder() {
        tail.extend_from_slice(&w.to_le_bytes());
    }
    let mut material = Vec::with_capacity(64 + tail.len());
    for l in lanes {
        material.extend_from_slice(&l.to_le_bytes());
    }
    material.extend_from_slice(&(words.len() as u64).to_le_bytes());
    material.extend_from_slice(&tail);
    crate::sha256::digest(&material)
}

/// Escapes a string for a JSON string literal.
pub fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_and_streams_differ() {
        let hex = "00ff".repeat(16);
        let seed = Seed::parse_hex(&hex).unwrap();
        assert_eq!(seed.to_hex(), hex);
        assert!(Seed::parse_hex("abc").is_err());
        assert!(Seed::parse_hex(&"g".repeat(64)).is_err());
        let a = seed.rng("x", 0).next_u64();
        assert_ne!(a, seed.rng("x", 1).next_u64());
        assert_ne!(a, seed.rng("y", 0).next_u64());
        assert_eq!(a, seed.rng("x", 0).next_u64());
    }

    #[test]
    fn digest_sees_every_word() {
        let mut v: Vec<u32> = (0..1001).collect();
        let d = digest_u32s(&v);
        for i in [0, 7, 500, 999, 1000] {
            v[i] ^= 1;
            assert_ne!(digest_u32s(&v), d, "word {i}");
            v[i] ^= 1;
        }
        assert_eq!(digest_u32s(&v), d);
    }
}
