//! MurmurHash3 (x86, 32-bit), as scikit-learn's `FeatureHasher` uses it.

/// MurmurHash3_x86_32 of `data` with `seed`.
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k = 0u32;
    for (i, &b) in tail.iter().enumerate() {
        k ^= u32::from(b) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "MurmurHash3 mixes in the length mod 2^32"
    )]
    let len = data.len() as u32;
    h ^= len;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The column and sign scikit-learn's `FeatureHasher` gives a token: the signed 32-bit hash's
/// absolute value modulo `n_features`, and its sign when `alternate_sign`.
pub fn hashed_column(token: &str, n_features: usize, alternate_sign: bool) -> (usize, f64) {
    #[expect(
        clippy::cast_possible_wrap,
        reason = "scikit-learn reads the hash as a signed int32"
    )]
    let h = murmur3_32(token.as_bytes(), 0) as i32;
    let column = (h.unsigned_abs() as usize) % n_features;
    let sign = if alternate_sign && h < 0 { -1.0 } else { 1.0 };
    (column, sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_murmur3_values() {
        // Reference values of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }
}
